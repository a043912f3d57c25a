"""YAML text to plain Python values that remember where each node was written.

Mappings become `YMap` (a dict) and sequences `YList` (a list); both carry the position of
the node and of each key and item, so that every later check can name FILE:LINE:COLUMN.
"""

from __future__ import annotations

from typing import Any

import attrs
import yaml

try:  # the C loader is several times faster on big files
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pyyaml built without libyaml
    _Loader = yaml.SafeLoader


@attrs.frozen
class Pos:
    file: str
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@attrs.frozen
class Problem(Exception):
    """One thing wrong with a scenario file, at a place."""

    pos: Pos
    message: str

    def __str__(self) -> str:
        return f"{self.pos}: {self.message}"


class YMap(dict):
    pos: Pos
    key_pos: dict[Any, Pos]
    value_pos: dict[Any, Pos]

    def at(self, key: Any) -> Pos:
        """Where the value of `key` was written (the mapping itself when the key is absent)."""
        return self.value_pos.get(key, self.pos)

    def key_at(self, key: Any) -> Pos:
        return self.key_pos.get(key, self.pos)


class YList(list):
    pos: Pos
    item_pos: list[Pos]

    def at(self, index: int) -> Pos:
        return self.item_pos[index] if index < len(self.item_pos) else self.pos


def _pos(file: str, node: yaml.Node) -> Pos:
    mark = node.start_mark
    return Pos(file, mark.line + 1, mark.column + 1)


def parse(text: str, file: str) -> tuple[Any, list[Problem]]:
    """Parse one YAML document. Returns (value, problems); value is None on a syntax error."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = Pos(file, mark.line + 1, mark.column + 1) if mark else Pos(file, 1, 1)
        if error.context and "single document" in error.context:
            return None, [Problem(where, "a scenario file holds one YAML document; a second starts here")]
        what = error.problem or error.context or "invalid YAML"
        return None, [Problem(where, f"YAML syntax error: {what}")]
    except yaml.YAMLError as error:  # e.g. a reader error: bytes that are not text
        return None, [Problem(Pos(file, 1, 1), f"YAML error: {str(error).splitlines()[0]}")]
    finally:
        loader.dispose()
    if node is None:
        return None, []
    problems: list[Problem] = []
    return _build(node, file, loader, problems), problems


def _build(node: yaml.Node, file: str, loader: Any, problems: list[Problem]) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<:` merge keys
        result = YMap()
        result.pos = _pos(file, node)
        result.key_pos, result.value_pos = {}, {}
        for key_node, value_node in node.value:
            key = _build(key_node, file, loader, problems)
            try:
                hash(key)
            except TypeError:
                problems.append(Problem(_pos(file, key_node), "a mapping key must be a plain value"))
                continue
            if key in result:
                problems.append(Problem(_pos(file, key_node), f"duplicate key '{key}'"))
            result[key] = _build(value_node, file, loader, problems)
            result.key_pos[key] = _pos(file, key_node)
            result.value_pos[key] = _pos(file, value_node)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = YList(_build(item, file, loader, problems) for item in node.value)
        items.pos = _pos(file, node)
        items.item_pos = [_pos(file, item) for item in node.value]
        return items
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as error:
        problems.append(Problem(_pos(file, node), f"YAML error: {error.problem}"))
        return None
