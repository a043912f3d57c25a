"""YAML text to plain Python values that remember where each node was written.

Mappings become `YMap` (a dict) and sequences `YList` (a list); both carry the position of
the node and of each key and item, so that every later check can name FILE:LINE:COLUMN.
"""

from __future__ import annotations

import math
import re
from typing import Any

import attrs
import yaml

try:  # the C loader is several times faster on big files
    _Base: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pyyaml built without libyaml
    _Base = yaml.SafeLoader


class _Loader(_Base):  # type: ignore[misc]
    """Safe loading without YAML 1.1 timestamps: `2024-01-01` stays the text the user wrote
    (scenario values end up in JSON, which has no dates)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}

# Characters YAML does not allow in a stream (YAML 1.1 "printable" complement).
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# A document whose aliases repeat values more often than this is refused: a few lines of
# `&a [*b, *b, ...]` can otherwise grow to billions of values ("billion laughs"). (What is written
# out once, however much of it, counts for nothing: the file's size limit bounds it.)
MAX_VALUES = 1_000_000


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


class YMap(dict[Any, Any]):
    pos: Pos
    key_pos: dict[Any, Pos]
    value_pos: dict[Any, Pos]

    def at(self, key: Any) -> Pos:
        """Where the value of `key` was written (the mapping itself when the key is absent)."""
        return self.value_pos.get(key, self.pos)

    def key_at(self, key: Any) -> Pos:
        return self.key_pos.get(key, self.pos)


class YList(list[Any]):
    pos: Pos
    item_pos: list[Pos]

    def at(self, index: int) -> Pos:
        return self.item_pos[index] if index < len(self.item_pos) else self.pos


def _pos(file: str, node: yaml.Node) -> Pos:
    mark = node.start_mark
    return Pos(file, mark.line + 1, mark.column + 1)


def decode(data: bytes, file: str) -> tuple[str | None, list[Problem]]:
    """The text of a scenario file: UTF-8 (a BOM is skipped), or UTF-16 with a BOM (what
    Windows PowerShell's `>` writes)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), []
        except UnicodeDecodeError:
            return None, [Problem(Pos(file, 1, 1), "not valid UTF-16 text although it starts with a UTF-16 byte order mark")]
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as error:
        before = data[: error.start].decode("utf-8", "replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        byte = data[error.start]
        return None, [Problem(Pos(file, line, column),
                              f"not UTF-8 text (byte 0x{byte:02x}); a scenario file is UTF-8 YAML text")]


def parse(text: str, file: str) -> tuple[Any, list[Problem]]:
    """Parse one YAML document. Returns (value, problems); value is None on a syntax error."""
    bad = _unprintable(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        char = bad.group()
        what = ("a NUL byte: this looks like a binary file, not YAML text" if char == "\0" else
                f"the character U+{ord(char):04X} is not allowed in YAML text "
                f'(inside double quotes write it as "\\u{ord(char):04x}")')
        return None, [Problem(Pos(file, line, column), what)]
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = Pos(file, mark.line + 1, mark.column + 1) if mark else Pos(file, 1, 1)
        if error.context and "single document" in error.context:
            return None, [Problem(where, "a scenario file holds one YAML document; a second starts here")]
        what = error.problem or error.context or "invalid YAML"
        return None, [Problem(where, f"YAML syntax error: {what}{syntax_hint(error, text)}")]
    except yaml.YAMLError as error:  # e.g. a reader error the check above did not foresee
        return None, [Problem(Pos(file, 1, 1), f"YAML error: {str(error).splitlines()[0]}")]
    finally:
        loader.dispose()
    if node is None:
        return None, []
    builder = _Builder(file, loader)
    try:
        value = builder.build(node)
    except _TooBig:
        return None, [Problem(_pos(file, node), f"the document's aliases repeat more than {MAX_VALUES:,} "
                                                "values; refusing to load it")]
    except RecursionError:
        return None, [Problem(_pos(file, node), "the document nests too deeply (or an alias refers to itself)")]
    finally:
        if len(text) > BIG_DOCUMENT:
            release(node, loader.constructed_objects)
    return value, builder.problems


def syntax_hint(error: yaml.MarkedYAMLError, text: str) -> str:
    """What PyYAML's message means and how to fix it, for the mistakes people make (`; ...`)."""
    problem, context = error.problem or "", error.context or ""
    at, started = error.problem_mark, error.context_mark
    if at is None:
        return ""
    where = f"line {started.line + 1}, column {started.column + 1}" if started is not None else "above"
    line = text.splitlines()[at.line] if at.line < len(text.splitlines()) else ""
    indented = line[: at.column].strip() == ""  # (the problem is the first thing on its line)
    opened = line[: at.column].rstrip()[-1:] in ("}", "]", '"', "'") and not indented
    if problem.startswith("did not find expected '-' indicator") or problem == "did not find expected key":
        if opened:
            return ("; a value that starts with a quote, `{` or `[` ends where it closes, and this line goes on "
                    "after that: quote the whole value (reply: '\"Yes\" she said')")
        if problem == "did not find expected key" and not indented:
            return "; quote the value (a value that starts with `[`, `{`, `\"` or `'` must be that whole)"
        if problem.startswith("did not find expected '-'"):
            first = f" (the first on line {started.line + 1})" if started is not None else ""
            column = f" at column {started.column + 1}" if started is not None else ""
            return (f"; this line is not lined up with the list it is in, whose items start with `- `{column}{first}: "
                    "start a new item with `- ` there, or line it up with the keys of the item above to go on with it")
        return (f"; this line is not lined up with the other keys of its mapping (which starts at {where}): "
                "indent it as they are")
    if problem.startswith("mapping values are not allowed"):
        return "; a value holds `: ` (like `reply: Note: this`): quote the value (`reply: \"Note: this\"`)"
    if "tab" in problem or "'\t'" in problem:
        return "; YAML indents with spaces only: replace the tab with spaces"
    if problem == "found unexpected end of stream" and "quoted scalar" in context:
        return f"; the quote opened at {where} is never closed"
    if problem == "found undefined alias" or "scanning an alias" in context:
        return "; `*` starts an alias (a reference to an `&anchor`): quote a value that starts with `*`"
    if problem == "could not find expected ':'":
        return (f"; the key at {where} has no `:` after it: write `key: value` (a value on the next line "
                "is indented under its key)")
    if problem.startswith("did not find expected ',' or"):
        closing = problem[-2]
        return (f"; the `{'{' if closing == '}' else '['}` at {where} is not closed where expected: separate "
                f"entries with `, ` and end with `{closing}`, and quote a value that holds `,`, `: `, or a bracket")
    if problem == "found character that cannot start any token":
        char = line[at.column: at.column + 1] or "?"
        return f"; a plain value cannot start with {char!r}: quote the value"
    return ""


# A document longer than this (in characters) is taken apart piece by piece once loaded.
BIG_DOCUMENT = 1 << 20
_SLICE = 1 << 18


def _unprintable(text: str) -> re.Match[str] | None:
    """The first character YAML does not allow, searched a slice at a time: a search is one
    call that holds the GIL, and a 15 MB one would hold it (and the event loop, when a worker
    thread loads a configuration for the server) for some 50 ms."""
    for start in range(0, len(text), _SLICE):
        bad = _NOT_PRINTABLE.search(text, start, start + _SLICE)
        if bad is not None:
            return bad
    return None


def release(*trees: Any) -> None:
    """Free big trees (YAML nodes, mappings, lists) a branch at a time. Freed at once, the
    million objects of a big document go in one call that holds the GIL for tens of
    milliseconds; this loop lets other threads (the server's event loop) run in between."""
    stack = list(trees)
    while stack:
        item = stack.pop()
        if isinstance(item, (yaml.MappingNode, yaml.SequenceNode)):
            item = item.value
        if isinstance(item, dict):
            while item:
                key, child = item.popitem()
                if isinstance(key, yaml.Node):
                    stack.append(key)
                if isinstance(child, (dict, list, tuple, yaml.MappingNode, yaml.SequenceNode)):
                    stack.append(child)
        elif isinstance(item, list):
            while item:
                child = item.pop()
                if isinstance(child, (dict, list, tuple, yaml.MappingNode, yaml.SequenceNode)):
                    stack.append(child)
        elif isinstance(item, tuple):  # a mapping node's (key, value) pair
            stack.extend(child for child in item if isinstance(child, (yaml.MappingNode, yaml.SequenceNode)))


_MERGE = "tag:yaml.org,2002:merge"


class _TooBig(Exception):
    pass


class _Builder:
    def __init__(self, file: str, loader: Any):
        self.file, self.loader = file, loader
        self.problems: list[Problem] = []
        self.count = 0  # values built again through an alias
        self._built: set[int] = set()  # the nodes built once (by id)

    def build(self, node: yaml.Node) -> Any:
        if id(node) in self._built:
            self.count += 1
            if self.count > MAX_VALUES:
                raise _TooBig
        else:
            self._built.add(id(node))
        file = self.file
        if isinstance(node, yaml.MappingNode):
            own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE)
            try:
                self.loader.flatten_mapping(node)  # resolves `<<:` merge keys, putting merged entries first
            except yaml.constructor.ConstructorError as error:
                mark = error.problem_mark or node.start_mark
                self.problems.append(Problem(Pos(file, mark.line + 1, mark.column + 1),
                                             f"YAML error: {error.problem or 'bad merge key'}"))
                node.value = [(k, v) for k, v in node.value if k.tag != _MERGE]  # go on without the merge
            merged = len(node.value) - own
            result = YMap()
            result.pos = _pos(file, node)
            result.key_pos, result.value_pos = {}, {}
            own_keys: set[Any] = set()
            for index, (key_node, value_node) in enumerate(node.value):
                key = self.build(key_node)
                try:
                    hash(key)
                except TypeError:
                    self.problems.append(Problem(_pos(file, key_node), "a mapping key must be a plain value"))
                    continue
                if index >= merged:  # a key written here may override a merged one, not repeat itself
                    if key in own_keys:
                        self.problems.append(Problem(_pos(file, key_node), f"duplicate key '{key}'"))
                    own_keys.add(key)
                result[key] = self.build(value_node)
                result.key_pos[key] = _pos(file, key_node)
                result.value_pos[key] = _pos(file, value_node)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = YList(self.build(item) for item in node.value)
            items.pos = _pos(file, node)
            items.item_pos = [_pos(file, item) for item in node.value]
            return items
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as error:
            self.problems.append(Problem(_pos(file, node), f"YAML error: {error.problem}"))
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.problems.append(Problem(_pos(file, node), f"{node.value!r}: numbers must be finite"))
            return None
        if value is not None and not isinstance(value, (str, int, float, bool)):
            # explicit tags like !!binary or !!timestamp: nothing JSON could carry
            self.problems.append(Problem(_pos(file, node), f"a {type(value).__name__} value ({node.tag}) "
                                                           "is not allowed: use text, numbers, true/false or null"))
            return None
        return value
