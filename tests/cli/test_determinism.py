"""Same data, same answer: every analysis prints the same JSON twice (bootstraps and CV folds are seeded and
must not depend on the order a GROUP BY returns rows in)."""

from __future__ import annotations

import warnings


def test_analyses_are_deterministic(run_cli):
    assert run_cli("demo", "--customers", "600", "--seed", "4", "--report", "r.html")[0] == 0
    commands = [
        ["journey"], ["moments", "--outcome", "retained"], ["roadmap", "--outcome", "retained"],
        ["peak-end", "--outcome", "retained"], ["segments"], ["recovery", "--outcome", "retained"],
        ["milestones"], ["recognition"],
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cmd in commands:
            first = run_cli(*cmd, "--json")
            second = run_cli(*cmd, "--json")
            assert first[0] == 0, (cmd, first[2])
            assert first[1] == second[1], f"{' '.join(cmd)} --json differs between two runs on the same data"
