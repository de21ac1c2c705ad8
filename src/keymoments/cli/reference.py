"""Generate the CLI reference (docs/cli.md) from the commands' own --help, so docs never drift.

    python -m keymoments.cli.reference > docs/cli.md
"""

from __future__ import annotations

from typing import Any

import typer.main

__all__ = ["render"]


def _walk(cmd: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    out = [(path, cmd)]
    if hasattr(cmd, "commands"):
        for name in sorted(cmd.commands):
            out.extend(_walk(cmd.commands[name], [*path, name]))
    return out


def render() -> str:
    """The whole reference as Markdown."""
    from keymoments.cli import app

    root = typer.main.get_command(app)
    lines = ["# Command-line reference", "", "Generated from `--help` by `python -m keymoments.cli.reference`.", ""]
    for path, cmd in _walk(root, ["keymoments"]):
        if len(path) == 1:
            continue
        ctx = cmd.context_class(cmd, info_name=" ".join(path), terminal_width=100, max_content_width=100)
        text = cmd.get_help(ctx)
        lines += [f"## `{' '.join(path)}`", "", "```text", *[ln.rstrip() for ln in text.splitlines()], "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render())
