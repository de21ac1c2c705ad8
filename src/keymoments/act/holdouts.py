"""Deterministic hash-based holdouts and the sample-ratio check.

A customer's arm is a pure function of their id: ``u = blake2b(salt + ':' + customer_id) / 2**64``; the
customer is held out when ``u < share``. The global holdout (salt ``keymoments-global``) is drawn first and
applies to every playbook; each playbook then draws its own holdout with its own salt (default: its name), so
the two compose as independent draws: a customer's chance of being treated by a playbook with share ``s`` under
a global share ``g`` is ``(1 - g) * (1 - s)``. Holdouts do not depend on the file's seed, so a customer stays in
the same arm across runs and edits of other playbooks.

The sample-ratio check compares the arms' observed counts with the shares they were drawn with (chi-square);
a tiny p-value means assignment or logging is broken and the uplift cannot be trusted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["GLOBAL_SALT", "SampleRatioCheck", "arm_of", "sample_ratio_check", "unit_hash"]

GLOBAL_SALT = "keymoments-global"
_SCALE = float(2**64)


def unit_hash(*parts: object) -> float:
    """A uniform number in [0, 1) from the parts, stable across processes and Python versions."""
    key = ":".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / _SCALE


def arm_of(customer_id: str, *, share: float, salt: str, global_share: float = 0.0) -> str:
    """``'global_holdout'``, ``'holdout'`` or ``'treatment'`` for one customer and playbook."""
    if global_share > 0 and unit_hash(GLOBAL_SALT, customer_id) < global_share:
        return "global_holdout"
    if share > 0 and unit_hash(salt, customer_id) < share:
        return "holdout"
    return "treatment"


@dataclass(frozen=True)
class SampleRatioCheck:
    """Observed vs expected arm counts, the chi-square statistic and its p-value."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    ok: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "observed": self.observed,
            "expected": self.expected,
            "chi2": self.chi2,
            "p_value": self.p_value,
            "ok": self.ok,
        }


def sample_ratio_check(
    counts: dict[str, int], *, share: float, global_share: float = 0.0, alpha: float = 0.001
) -> SampleRatioCheck:
    """Chi-square goodness of fit of the arms' counts against the shares they were drawn with.

    ``counts`` has keys among ``treatment``, ``holdout`` and ``global_holdout`` (missing ones count 0).
    The check fails (``ok=False``) when ``p < alpha``; the default alpha is strict because a sample-ratio
    mismatch is a bug, not a finding.
    """
    from scipy.stats import chisquare

    probs = {
        "global_holdout": global_share,
        "holdout": (1 - global_share) * share,
        "treatment": (1 - global_share) * (1 - share),
    }
    arms = [a for a, p in probs.items() if p > 0]
    n = sum(int(counts.get(a, 0)) for a in probs)
    observed = {a: int(counts.get(a, 0)) for a in arms}
    expected = {a: n * probs[a] for a in arms}
    if n == 0 or len(arms) < 2:
        return SampleRatioCheck(observed, expected, 0.0, 1.0, True)
    res = chisquare([observed[a] for a in arms], [expected[a] for a in arms])
    p = float(res.pvalue)
    return SampleRatioCheck(observed, expected, float(res.statistic), p, p >= alpha)
