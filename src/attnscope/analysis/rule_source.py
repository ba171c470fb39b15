"""Reading a rule file's text (YAML or JSON) into plain data, keeping where each value was written.

YAML is read with PyYAML's safe loader, from its composed nodes: every mapping key and value keeps
its ``start_mark``, so a problem found later at a path such as ``rules/2/comparison`` (a JSON
pointer) is reported with its line. A key written twice in one mapping is refused (PyYAML would
silently keep the last one). JSON is read with :mod:`json` (``NaN`` refused later, as any
non-finite threshold is) and located through the same YAML composer where it can read it.

Whatever the text, reading it ends in data or a :class:`SourceProblem`, never in an exception of
Python's own: values nested more than :data:`MAX_DEPTH` levels deep are refused (a rule file needs
a handful), and so are YAML aliases that refer to a value holding them or that expand to more than
:data:`MAX_VALUES` values (the "billion laughs": a few lines that would expand to gigabytes
wherever the data is walked, validated or written back), and scalars that cannot be read (an
integer of more than 4,300 digits, a date that does not exist, ``!!bool maybe``), at their lines.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

import yaml

Path = Sequence[str | int]  # a JSON pointer as its parts: ("rules", 2, "comparison")
MAX_DEPTH = 64  # nested lists and mappings; a rule file needs 4 (rules, a rule, a selector, steps)
MAX_VALUES = 1_000_000  # values once aliases are expanded: about what 2 MB of text can hold without them


class SourceProblem(Exception):
    """The text is not YAML/JSON at all, or repeats a key: where and why."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing keys written twice in one mapping, and a scalar it cannot read (a
    date that does not exist, ``!!bool maybe``, an integer of more digits than Python converts) as a
    YAML error at its line rather than Python's own exception."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, KeyError, TypeError, OverflowError) as error:
            raise yaml.constructor.ConstructorError(None, None, _unreadable(node, error), node.start_mark) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise SourceProblem(key_node.start_mark.line + 1, "a mapping key must be text") from None
            if key in seen:
                raise SourceProblem(
                    key_node.start_mark.line + 1, f"key {key!r} is written twice (first on line {seen[key]})"
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _unreadable(node: yaml.Node, error: Exception) -> str:
    """Why the scalar ``node`` cannot be read: ``'2001-13-45' is not a timestamp (month must be …)``."""
    tag = str(node.tag).rpartition(":")[2] or "value"
    written = node.value if isinstance(node.value, str) else ""
    if tag == "int" and len(written) > sys.get_int_max_str_digits() > 0:
        return f"the number {written[:20]}… ({len(written):,} characters) is too long to read"
    shown = repr(written) if len(written) <= 40 else repr(written[:40] + "…")
    return f"{shown} is not a valid {tag}" + ("" if isinstance(error, KeyError) else f" ({error})")


def _compose(text: str) -> tuple[Any, yaml.Node | None]:
    try:
        loader = _Loader(text)  # reads the text at once: a control character is refused here
    except yaml.YAMLError as error:
        raise SourceProblem(None, f"not valid YAML: {' '.join(str(error).split())}") from None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except RecursionError:
        raise SourceProblem(None, "not valid YAML: nested too deeply") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = " ".join(str(error.problem or error.context or "not valid YAML").split())
        raise SourceProblem(None if mark is None else mark.line + 1, f"not valid YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise SourceProblem(None, f"not valid YAML: {' '.join(str(error).split())}") from None
    finally:
        loader.dispose()
    return data, node


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise SourceProblem(None, f"key {key!r} is written twice in one object")
        found[key] = value
    return found


def _long_number(text: str) -> SourceProblem:
    """The problem of a JSON text holding an integer too long for Python to read, at its line."""
    found = re.search(rf"(?<![\d.eE+])\d{{{sys.get_int_max_str_digits() + 1},}}(?![\d.eE])", text)
    line = None if found is None else text.count("\n", 0, found.start()) + 1
    size = "" if found is None else f" ({len(found.group()):,} digits)"
    return SourceProblem(line, f"not valid JSON: a number{size} is too long to read")


def _shape_problem(data: Any) -> tuple[tuple[str | int, ...], str] | None:
    """``(path, message)`` of the first value nested deeper than :data:`MAX_DEPTH`, holding itself
    (a YAML alias inside its own anchor) or expanding to more than :data:`MAX_VALUES` values (aliases
    of aliases); None when the data is a tree of reasonable size. Walks each list and mapping once,
    without recursion."""
    sizes: dict[int, int] = {}  # id of a finished list or mapping: its values, aliases expanded
    open_ids: set[int] = set()  # the lists and mappings being walked: the ancestors of the current one
    stack: list[tuple[Any, tuple[str | int, ...], bool]] = [(data, (), False)]
    while stack:
        value, path, finished = stack.pop()
        if finished:
            open_ids.discard(id(value))
            children = list(value.values()) if isinstance(value, dict) else value
            size = 1 + len(value) * isinstance(value, dict) + sum(sizes.get(id(child), 1) for child in children)
            if size > MAX_VALUES:
                return path, f"aliases expand this to more than {MAX_VALUES:,} values"
            sizes[id(value)] = size
            continue
        if id(value) in sizes:  # an alias of a value already walked
            continue
        if id(value) in open_ids:
            return path, "an alias refers to a value that holds it"
        if len(path) >= MAX_DEPTH:
            return path, f"nested too deeply (more than {MAX_DEPTH} levels)"
        open_ids.add(id(value))
        stack.append((value, path, True))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        stack += [(child, (*path, key), False) for key, child in items if isinstance(child, dict | list)]
    return None


def read_source(text: str, *, json_file: bool = False) -> tuple[Any, Callable[[Path], int | None]]:
    """``(data, line_of)``: the plain data of ``text`` and a function giving the line (1-based) of the
    value at a path, or of the nearest enclosing value written in the text (None when unknown)."""
    kind = "JSON" if json_file else "YAML"
    if json_file:
        try:
            data = json.loads(text, object_pairs_hook=_json_pairs)
        except json.JSONDecodeError as error:
            raise SourceProblem(error.lineno, f"not valid JSON: {error.msg}") from None
        except RecursionError:
            raise SourceProblem(None, "not valid JSON: nested too deeply") from None
        except ValueError:  # an integer of more digits than Python converts
            raise _long_number(text) from None
        try:
            _, node = _compose(text)
        except SourceProblem:  # JSON that PyYAML cannot read (tabs as indentation): no line numbers
            node = None
    else:
        data, node = _compose(text)
    if isinstance(data, dict | list):
        found = _shape_problem(data)
        if found is not None:
            raise SourceProblem(line_of(node, found[0]), f"not valid {kind} for a rule file: {found[1]}")
    return data, lambda path: line_of(node, path)


def line_of(node: yaml.Node | None, path: Path) -> int | None:
    """The line of the node at ``path`` under ``node`` (a key's own line for a mapping value: where
    the reader looks), or of the deepest node on the way that exists."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)]
            if not match:
                return line
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
