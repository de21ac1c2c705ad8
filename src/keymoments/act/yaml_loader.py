"""Load playbook YAML with errors that point at the line.

The YAML is composed into a node tree first (which keeps every node's line and column), then validated with
pydantic; each validation error's location (``playbooks.0.trigger.type``) is walked down the node tree to the
deepest node that exists, and its line is reported::

    playbooks.yaml:7:15: playbooks[0].trigger.type: 'crises' is not a trigger type; use one of [...]. Did you mean 'crisis'?

A file may hold a whole :class:`PlaybookFile` (with ``playbooks:``) or a single playbook (with ``trigger:``).

YAML from outside is bounded before anything is built from it: at most :data:`MAX_YAML_BYTES`, nested at most
:data:`MAX_DEPTH` deep, and at most :data:`MAX_NODES` values once every alias is expanded (a 590-byte "billion
laughs" file of nested aliases expands to billions of values and would take the validator minutes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from keymoments.act.models import Playbook, PlaybookFile
from keymoments.events import did_you_mean
from keymoments.exceptions import ConfigError

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_YAML_BYTES", "PlaybookYAMLError", "load_playbooks", "loads_playbooks"]

MAX_YAML_BYTES = 1 << 20
MAX_NODES = 50_000
MAX_DEPTH = 64


class PlaybookYAMLError(ConfigError):
    """A playbook file is invalid; ``errors`` lists every problem as ``{line, column, loc, msg}``."""

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


def _node_at(root: yaml.Node, loc: tuple[Any, ...]) -> yaml.Node:
    """The deepest node along ``loc`` (segments that are not keys of the YAML, like union tags, are skipped)."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    node = v
                    break
            else:
                continue
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                node = node.value[part]
            else:
                break
    return node


def _key_node(root: yaml.Node, loc: tuple[Any, ...]) -> yaml.Node | None:
    """For an unknown key, the node of the key itself (so the error points at the typo)."""
    parent = _node_at(root, loc[:-1])
    if isinstance(parent, yaml.MappingNode):
        for k, _v in parent.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(loc[-1]):
                return k
    return None


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _allowed_fields() -> list[str]:
    """Every field name of the playbook models, for 'did you mean' on unknown keys."""
    from pydantic import BaseModel

    from keymoments.act import models as m

    everything: set[str] = set()
    for obj in vars(m).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel):
            everything.update(obj.model_fields)
    return sorted(everything)


def _message(err: dict[str, Any], loc: tuple[Any, ...]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else ""
        return f"unknown field {name!r}.{did_you_mean(name, _allowed_fields())}".rstrip()
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        tag = str(ctx.get("tag", ""))
        expected = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        return f"{tag!r} is not a valid type; use one of {expected}.{did_you_mean(tag, expected)}"
    if kind == "union_tag_not_found":
        return "the 'type' field is missing; every trigger, condition and action names its type"
    msg = str(err.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")


def _clean_loc(loc: tuple[Any, ...], root: yaml.Node) -> tuple[Any, ...]:
    """Drop the discriminated-union tags pydantic puts in locations (they are not keys of the YAML)."""
    out: list[Any] = []
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            hit = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
            if hit is None and part in ("event", "crisis", "good_news", "journey_end", "milestone", "absence", "field",
                                        "history", "journey", "open_case", "compensate", "notify", "recognize",
                                        "webhook", "function-after", "function-before"):
                continue
            out.append(part)
            if hit is not None:
                node = hit
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            out.append(part)
            node = node.value[part]
        else:
            out.append(part)
    return tuple(out)


def _refuse(source: str, node: yaml.Node | None, why: str) -> PlaybookYAMLError:
    line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node is not None else (1, 1)
    return PlaybookYAMLError(f"{source}:{line}:{col}: {why}", [{"line": line, "column": col, "loc": "", "msg": why}])


def _check_size(root: yaml.Node, source: str) -> None:
    """Refuse a node tree deeper than MAX_DEPTH, larger than MAX_NODES once aliases are expanded, or that holds
    itself through an alias; shared nodes (aliases) are sized once, so this takes time linear in the file."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise _refuse(source, node, "an alias refers to a value that holds it; a playbook file cannot be recursive")
        if depth > MAX_DEPTH:
            raise _refuse(source, node, f"the YAML nests more than {MAX_DEPTH} levels deep")
        total = 1
        if isinstance(node, yaml.SequenceNode | yaml.MappingNode):
            open_.add(key)
            children = node.value if isinstance(node, yaml.SequenceNode) else [x for kv in node.value for x in kv]
            for child in children:
                total += size(child, depth + 1)
                if total > MAX_NODES:
                    raise _refuse(
                        source, node,
                        f"the YAML expands to more than {MAX_NODES:,} values once its aliases (*name) are expanded; "
                        "a playbook file needs far fewer, so it is refused (an alias bomb?)",
                    )  # fmt: skip
            open_.discard(key)
        sizes[key] = total
        return total

    size(root, 0)


def loads_playbooks(text: str, source: str = "<string>") -> PlaybookFile:
    """Parse and validate playbook YAML from a string; raise :class:`PlaybookYAMLError` with line numbers."""
    n = len(text.encode("utf-8", "replace"))
    if n > MAX_YAML_BYTES:
        raise PlaybookYAMLError(
            f"{source}: the YAML is {n:,} bytes; a playbook file may be at most {MAX_YAML_BYTES:,}.", []
        )
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            _check_size(root, source)
        data = yaml.safe_load(text)
    except RecursionError:
        raise _refuse(source, None, f"the YAML nests more than {MAX_DEPTH} levels deep") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = exc.problem or str(exc)
        if exc.context and exc.context_mark is not None:
            problem += f" ({exc.context}, line {exc.context_mark.line + 1})"
        raise PlaybookYAMLError(
            f"{source}:{line}:{col}: not valid YAML: {problem}",
            [{"line": line, "column": col, "loc": "", "msg": f"not valid YAML: {problem}"}],
        ) from None
    if root is None or data is None:
        raise PlaybookYAMLError(f"{source}:1:1: the file is empty; it needs 'playbooks:' or a playbook's 'trigger:'", [])
    if not isinstance(data, dict):
        raise PlaybookYAMLError(f"{source}:1:1: the top level must be a mapping, got {type(data).__name__}", [])
    single = "playbooks" not in data and "trigger" in data
    try:
        if single:
            pb = Playbook.model_validate(data)
            return PlaybookFile(playbooks=[pb])
        return PlaybookFile.model_validate(data)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = []
        for err in exc.errors():
            loc = _clean_loc(tuple(err["loc"]), root)
            node: yaml.Node | None = None
            if err.get("type") == "extra_forbidden":
                node = _key_node(root, loc)
            if node is None:
                node = _node_at(root, loc)
            line, col = node.start_mark.line + 1, node.start_mark.column + 1
            errors.append({"line": line, "column": col, "loc": _fmt_loc(loc), "msg": _message(err, loc)})
        errors.sort(key=lambda e: (e["line"], e["column"]))
        lines = [f"{source}:{e['line']}:{e['column']}: {e['loc'] or '(top)'}: {e['msg']}" for e in errors]
        head = f"{len(errors)} problem(s) in {source}:\n" if len(errors) > 1 else ""
        raise PlaybookYAMLError(head + "\n".join(lines), errors) from None


def load_playbooks(path: str | Path) -> PlaybookFile:
    """Load and validate a playbook file (or a built-in playbook by name, e.g. ``service-recovery``)."""
    p = Path(path)
    if not p.exists():
        from keymoments.act.library import library_names, library_path

        lib = library_path(str(path))
        if lib is None:
            raise ConfigError(
                f"Playbook file {str(path)!r} does not exist, and it is not a built-in playbook "
                f"({library_names()}).{did_you_mean(str(path), library_names())}"
            )
        p = lib
    return loads_playbooks(p.read_text(encoding="utf-8"), source=str(p))
