"""Act: playbooks that turn moments into loyalty.

``evaluate`` (the pure :class:`Engine`) -> ``fire`` (:class:`PlaybookRunner` records decisions, cases, ledger
entries and outbox messages in one transaction) -> ``act`` (:class:`OutboxWorker` delivers signed webhooks).

>>> from keymoments.act import Engine, load_library
>>> engine = Engine(load_library(["service-recovery"]))
"""

from keymoments.act.budgets import Ledger, LedgerEntry, locked_store
from keymoments.act.cases import CaseBook
from keymoments.act.engine import Decision, Engine, event_tuple
from keymoments.act.holdouts import arm_of, sample_ratio_check
from keymoments.act.library import library_names, load_library
from keymoments.act.models import BudgetPool, Measure, Playbook, PlaybookFile
from keymoments.act.outbox import OutboxWorker, sign, verify_signature
from keymoments.act.report import playbook_report
from keymoments.act.runner import BacktestResult, LiveResult, LiveStream, PlaybookRunner
from keymoments.act.surprise import predictability
from keymoments.act.uplift import Uplift, uplift
from keymoments.act.yaml_loader import PlaybookYAMLError, load_playbooks, loads_playbooks

__all__ = [
    "BacktestResult",
    "BudgetPool",
    "CaseBook",
    "Decision",
    "Engine",
    "Ledger",
    "LedgerEntry",
    "LiveResult",
    "LiveStream",
    "Measure",
    "OutboxWorker",
    "Playbook",
    "PlaybookFile",
    "PlaybookRunner",
    "PlaybookYAMLError",
    "Uplift",
    "arm_of",
    "event_tuple",
    "library_names",
    "load_library",
    "load_playbooks",
    "loads_playbooks",
    "locked_store",
    "playbook_report",
    "predictability",
    "sample_ratio_check",
    "sign",
    "uplift",
    "verify_signature",
]
