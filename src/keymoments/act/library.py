"""The built-in playbook library: the CX ideas of DESIGN.md as ready-to-run playbook files.

Each file in ``library/`` is a complete playbook file (its budgets included) usable as-is
(``keymoments playbooks backtest service-recovery``); :func:`load_library` merges several into one file.

| name | idea |
|---|---|
| service-recovery | a crisis opens a case with compensation within the empowerment limit |
| going-the-distance | one owner keeps the case until the customer's valence recovers; handoffs counted |
| peak-amplification | call at the happy moment (good news) |
| sign-off-follow-up | a journey that ended low gets a follow-up (peak-end rule) |
| milestone-celebration | the 5th, 10th, 25th… journey is marked |
| surprise-and-delight | random, capped, seeded small gifts from a weekly per-employee budget |
| vulnerable-customer-assistance | words signalling vulnerability open an urgent care case; no holdout |
| employee-recognition | praise with the customer's words, at most monthly per employee |
| unresolved-crisis | proactive: a crisis unresolved in 48 h escalates |
| win-back | proactive: no contact 90 days after a crisis |
"""

from __future__ import annotations

from pathlib import Path

from keymoments.act.models import PlaybookFile
from keymoments.events import did_you_mean
from keymoments.exceptions import NotFoundError

__all__ = ["LIBRARY_DIR", "library_names", "library_path", "load_library"]

LIBRARY_DIR = Path(__file__).with_name("library")


def library_names() -> list[str]:
    """Names of the built-in playbook files."""
    return sorted(p.stem for p in LIBRARY_DIR.glob("*.yaml"))


def library_path(name: str) -> Path | None:
    """The path of a built-in playbook file, or None."""
    p = LIBRARY_DIR / f"{Path(name).stem}.yaml"
    return p if p.exists() and Path(name).parent == Path(".") else None


def load_library(names: list[str] | None = None, *, seed: int = 0, global_holdout: float = 0.0) -> PlaybookFile:
    """Merge built-in playbook files (all by default) into one :class:`PlaybookFile`."""
    from keymoments.act.yaml_loader import load_playbooks

    names = names or library_names()
    budgets: dict[str, object] = {}
    playbooks = []
    for n in names:
        path = library_path(n)
        if path is None:
            raise NotFoundError(f"No built-in playbook {n!r}; available: {library_names()}.{did_you_mean(n, library_names())}")
        f = load_playbooks(path)
        for b in f.budgets:
            budgets.setdefault(b.name, b)
        playbooks.extend(f.playbooks)
    return PlaybookFile(seed=seed, global_holdout=global_holdout, budgets=list(budgets.values()), playbooks=playbooks)
