"""Reading a rule file's text (YAML or JSON) into plain data, keeping where each value was written.

YAML is read with PyYAML's safe loader, from its composed nodes: every mapping key and value keeps
its ``start_mark``, so a problem found later at a path such as ``rules/2/comparison`` (a JSON
pointer) is reported with its line. A key written twice in one mapping is refused (PyYAML would
silently keep the last one). JSON is read with :mod:`json` (``NaN`` refused later, as any
non-finite threshold is) and located through the same YAML composer where it can read it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import yaml

Path = Sequence[str | int]  # a JSON pointer as its parts: ("rules", 2, "comparison")


class SourceProblem(Exception):
    """The text is not YAML/JSON at all, or repeats a key: where and why."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing keys written twice in one mapping."""

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


def read_source(text: str, *, json_file: bool = False) -> tuple[Any, Callable[[Path], int | None]]:
    """``(data, line_of)``: the plain data of ``text`` and a function giving the line (1-based) of the
    value at a path, or of the nearest enclosing value written in the text (None when unknown)."""
    if json_file:
        try:
            data = json.loads(text, object_pairs_hook=_json_pairs)
        except json.JSONDecodeError as error:
            raise SourceProblem(error.lineno, f"not valid JSON: {error.msg}") from None
        except RecursionError:
            raise SourceProblem(None, "not valid JSON: nested too deeply") from None
        try:
            _, node = _compose(text)
        except SourceProblem:  # JSON that PyYAML cannot read (tabs as indentation): no line numbers
            node = None
    else:
        data, node = _compose(text)
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
