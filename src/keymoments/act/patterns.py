"""The regular expressions a user writes (a playbook's ``text_pattern`` and its ``regex`` conditions), compiled
by RE2, which matches in time linear in the text: no pattern can make a match backtrack exponentially (Python's
``re`` takes 11 s, doubling per character, for ``^(a+)+$`` on 28 a's and a '!', and holds the GIL meanwhile).

RE2 takes Python's syntax but for backreferences (``\\1``) and lookarounds (``(?=…)``, ``(?<!…)``), which
need backtracking; a pattern that uses them is refused with a message saying so. ``\\w``, ``\\b`` and ``\\d`` are
ASCII in RE2; ``\\pL`` matches any letter. Patterns are capped at :data:`MAX_PATTERN` characters.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

__all__ = ["MAX_PATTERN", "compile_pattern"]

MAX_PATTERN = 2000


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str, *, ignore_case: bool = True) -> Any:
    """Compile ``pattern`` with RE2 (case-insensitive by default); raise ValueError saying what is wrong."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"a pattern may be at most {MAX_PATTERN:,} characters long; this one has {len(pattern):,}")
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        why = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        hint = ""
        if "perl operator" in why or "escape sequence" in why:  # (?=…), (?<!…), \\1: what needs backtracking
            hint = (
                "; patterns run on RE2, which never backtracks and so has no backreferences (\\1) or "
                "lookarounds ((?=…), (?<!…))"
            )
        raise ValueError(f"not a valid regular expression ({why}){hint}") from None
