"""Stack file text -> a validated ``Stack``; every error names the file and the line.

The text is bounded before the YAML parser sees it (size, nesting, no anchors or aliases, so no
"billion laughs"), then composed into nodes whose marks give line numbers, then validated by
pydantic; each pydantic error location (``volumes.0.size``) is walked back through the nodes to
the line of the offending value (or key, for a key that is not accepted).
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from storage.apply.models import MAX_DEPTH, MAX_FILE_BYTES, Stack
from storage.errors import InvalidInput

MAX_ERRORS = 20
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it: same events and marks, faster


def _refuse(source: str, line: int | None, message: str) -> InvalidInput:
    where = f"{source}:{line}" if line else source
    return InvalidInput(f"{where}: {message}", field="stack", line=line)


def _bounded_events(text: str, source: str) -> None:
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            line = event.start_mark.line + 1 if event.start_mark else None
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise _refuse(source, line, "YAML anchors and aliases are not accepted; accepted: plain YAML")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _refuse(source, line, f"nesting deeper than {MAX_DEPTH} levels is not accepted")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _refuse(source, mark.line + 1 if mark else None, f"not valid YAML: {problem}") from None


def parse_yaml(text: str | bytes, source: str = "stack.yaml") -> tuple[Any, yaml.Node | None]:
    """Bounded YAML -> (data, root node). One document only."""
    if isinstance(text, bytes):
        if len(text) > MAX_FILE_BYTES:
            raise _refuse(source, None, f"the file is {len(text)} bytes; accepted: at most {MAX_FILE_BYTES} bytes")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise _refuse(source, None, "the file is not UTF-8 text") from None
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise _refuse(source, None, f"the file is larger than {MAX_FILE_BYTES} bytes; accepted: at most that")
    _bounded_events(text, source)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _refuse(source, mark.line + 1 if mark else None, f"not valid YAML: {problem}") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of more digits than Python converts
        raise _refuse(source, None, f"a value is not accepted: {str(exc)[:200]}") from None
    finally:
        loader.dispose()
    return data, node


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the node at a pydantic error location (the deepest one that exists)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line, node = key.start_mark.line + 1, value
                    if not isinstance(value, yaml.ScalarNode) or value.start_mark.line == key.start_mark.line:
                        line = value.start_mark.line + 1 if isinstance(value, yaml.ScalarNode) else line
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _loc_text(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "stack"


def validate_stack(data: Any, node: yaml.Node | None = None, source: str = "stack.yaml") -> Stack:
    """pydantic validation; InvalidInput lists each problem as ``source:LINE: where: what``."""
    if data is None:
        raise _refuse(source, None, "the stack is empty; accepted: a mapping with at least `version: 1`")
    if not isinstance(data, dict):
        raise _refuse(source, line_of(node, ()), "the file must be a mapping (version, volumes, policies, exports)")
    try:
        return Stack.model_validate(data)
    except ValidationError as exc:
        problems, lines = [], []
        for err in exc.errors()[:MAX_ERRORS]:
            raw = tuple(err["loc"])  # a union's branch names ("int", "str") after "size" are not keys
            loc = tuple(p for i, p in enumerate(raw) if not (i and raw[i - 1] == "size" and p in ("int", "str")))
            line = line_of(node, loc)
            lines.append(line)
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"key {loc[-1]!r} is not accepted here; see `storagectl apply schema`"
            problems.append(f"{source}:{line}: {_loc_text(loc)}: {msg}" if line else f"{source}: {_loc_text(loc)}: {msg}")
        if exc.error_count() > MAX_ERRORS:
            problems.append(f"... and {exc.error_count() - MAX_ERRORS} more")
        raise InvalidInput("; ".join(problems), field="stack", lines=lines, problems=problems) from None


def load_stack(text: str | bytes, source: str = "stack.yaml") -> Stack:
    data, node = parse_yaml(text, source)
    return validate_stack(data, node, source)
