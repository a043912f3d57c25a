"""The checking kernel: where problems go, what a check returns, and the checks of plain values.

A check returns its value, or `Failed` when it reported a problem: nothing compares problem
counts. A node that was partly wrong fails with the `partial` value built from what passed,
for the checks that compare it with other nodes (two files' `defaults`, say); a failed value
never becomes part of a configuration.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import attrs

from .yamlsrc import Pos, Problem, YList, YMap

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@attrs.frozen(eq=False)
class Failed(Generic[T]):
    """A check that reported a problem; `partial` is what passed of the node, if anything.
    `shown` is false when no problem was shown: each was at a place where the YAML itself was
    wrong (and that is what the user is told)."""

    partial: T | None = None
    shown: bool = True


FAILED: Failed[Any] = Failed()
HIDDEN: Failed[Any] = Failed(shown=False)


class Absent:
    """A key that is not there (and has no default)."""


ABSENT = Absent()


class Parts:
    """Gathers the results of a node's checks: each value (its partial when it failed); the
    node fails when one of them did."""

    def __init__(self) -> None:
        self.failed = False
        self.shown = False  # whether a failure was shown

    def __call__(self, result: T | Failed[T] | Absent) -> T | None:
        if result is ABSENT:
            return None
        if isinstance(result, Failed):
            self.fail(result)
            return result.partial
        return result  # type: ignore[return-value]  # (not ABSENT: see above)

    def fail(self, result: Failed[Any] | None) -> None:
        """The result of a check whose value is not kept (None: it passed)."""
        if result is not None:
            self.failed = True
            self.shown = self.shown or result.shown

    def result(self, value: T) -> T | Failed[T]:
        return Failed(value, self.shown) if self.failed else value

    def stop(self, result: Failed[Any] | None = None) -> Failed[Any]:
        """The node fails here (on `result`, or on a failure already gathered), keeping nothing."""
        self.fail(result)
        return Failed(shown=self.shown)

    def mappings(self, checker: Checker, items: YList, message: str, empty: bool = False) -> Iterator[YMap]:
        """The items of a list that must all be mappings: each one that is, in order; each one
        that is not is reported (`message`) and fails the node. `empty`: a null item stands for
        an empty mapping (`- ` alone, as `- {}`)."""
        for i, item in enumerate(items):
            if item is None and empty:
                item = YMap()
                item.pos, item.key_pos, item.value_pos = items.at(i), {}, {}
            if isinstance(item, YMap):
                yield item
            else:
                self.fail(checker.report(items.at(i), message))


class Known:
    """A mapping whose keys were checked against a table: `guessed` are the keys misspelt ones
    were taken for (their absence is not reported again: one typo, one line); `failure` says
    whether a key was unknown. (A plain class: one is made for every mapping checked.)"""

    __slots__ = ("failure", "guessed", "raw")

    def __init__(self, raw: YMap, guessed: frozenset[str] = frozenset(), failure: Failed[Any] | None = None) -> None:
        self.raw, self.guessed, self.failure = raw, guessed, failure


class ConfigError(Exception):
    """A configuration with problems; `str()` gives one `FILE:LINE:COLUMN: message` per line.
    `warnings` are what the configuration would also have been warned about."""

    def __init__(self, problems: list[Problem], warnings: list[Problem] | tuple[Problem, ...] = ()):
        self.problems = sorted_problems(problems)
        self.warnings = sorted_problems(warnings)
        super().__init__("\n".join(str(p) for p in self.problems))


def sorted_problems(problems: list[Problem] | tuple[Problem, ...]) -> list[Problem]:
    """By position; a node reached twice through a YAML alias is reported once."""
    unique = {(p.pos, p.message): p for p in problems}
    return sorted(unique.values(), key=lambda p: (p.pos.file, p.pos.line, p.pos.column))


class Checker:
    """Where the problems and warnings of one load go."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        # where the YAML itself was wrong: the value there was dropped, and what follows from
        # its absence is not reported again
        self.spoilt: set[Pos] = set()

    def report(self, pos: Pos, message: str) -> Failed[Any]:
        if pos in self.spoilt:
            return HIDDEN
        self.problems.append(Problem(pos, message))
        return FAILED

    def warn(self, pos: Pos, message: str) -> None:
        """Something that loads and works, but that the user should know about."""
        self.warnings.append(Problem(pos, f"warning: {message}"))

    def missing(self, known: Known, key: str | tuple[str, ...], pos: Pos, message: str) -> Failed[Any]:
        """Report a missing key, unless a misspelt key of the mapping was already taken for it."""
        wanted = {key} if isinstance(key, str) else set(key)
        if wanted & known.guessed:
            return HIDDEN
        return self.report(pos, message)


# --- the checks of plain values: each is a key's check and gives its JSON Schema fragment ----------


if TYPE_CHECKING:  # (a Protocol class costs time to make, and only the type checker reads it)
    class Check(Protocol[T_co]):
        """Reads the value of key `name` written at `pos`: the value, or Failed (reported)."""

        @property
        def schema(self) -> dict[str, Any]: ...

        def __call__(self, checker: Checker, value: Any, pos: Pos, name: str) -> T_co | Failed[Any]: ...


def _bounds(minimum: float | None, maximum: float | None) -> dict[str, Any]:
    return {name: bound for name, bound in (("minimum", minimum), ("maximum", maximum)) if bound is not None}


# (The checks are plain classes, not attrs ones: some twenty are made at import, and making an
# attrs class costs about half a millisecond, which every start of the server would pay.)


class Number:
    """A number (not a boolean) within bounds, as a float; `message` says what was expected
    (`{name}` and `{shown}`, the value, are filled in)."""

    __slots__ = ("maximum", "message", "minimum")

    def __init__(self, minimum: float | None = None, maximum: float | None = None,
                 message: str = "`{name}` must be a number") -> None:
        self.minimum, self.maximum, self.message = minimum, maximum, message

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "number", **_bounds(self.minimum, self.maximum)}

    def __call__(self, checker: Checker, value: Any, pos: Pos, name: str) -> float | Failed[Any]:
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or (self.minimum is not None and value < self.minimum)
                or (self.maximum is not None and value > self.maximum)):
            return checker.report(pos, self.message.format(name=name, shown=shown(value)))
        return float(value)


class Integer:
    """A whole number (not a boolean) within bounds."""

    __slots__ = ("maximum", "minimum")

    def __init__(self, minimum: int | None = None, maximum: int | None = None) -> None:
        self.minimum, self.maximum = minimum, maximum

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "integer", **_bounds(self.minimum, self.maximum)}

    def __call__(self, checker: Checker, value: Any, pos: Pos, name: str) -> int | Failed[Any]:
        if isinstance(value, bool) or not isinstance(value, int):
            return checker.report(pos, f"`{name}` must be a whole number (got {kind(value)})")
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            bounds = f"from {self.minimum} to {self.maximum}" if self.maximum is not None else f"{self.minimum} or more"
            return checker.report(pos, f"`{name}` must be {bounds} (got {value})")
        return value


class String:
    """A string (`nullable`: or nothing, read as None); `message` replaces the usual one."""

    __slots__ = ("message", "nullable")

    def __init__(self, nullable: bool = False, message: str | None = None) -> None:
        self.nullable, self.message = nullable, message

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": ["string", "null"] if self.nullable else "string"}

    def __call__(self, checker: Checker, value: Any, pos: Pos, name: str) -> str | None | Failed[Any]:
        if isinstance(value, str) or (value is None and self.nullable):
            return value
        if self.message is not None:
            return checker.report(pos, self.message.format(name=name))
        quote = "; quote it" if isinstance(value, (int, float)) else ""  # `42`, `yes`: YAML made them not text
        return checker.report(pos, f"`{name}` must be a string (got {kind(value)}{quote})")


class Strings:
    """A list of strings."""

    __slots__ = ()

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string"}}

    def __call__(self, checker: Checker, value: Any, pos: Pos, name: str) -> list[str] | Failed[Any]:
        if isinstance(value, YList) and all(isinstance(v, str) for v in value):
            return list(value)
        return checker.report(pos, f"`{name}` must be a list of strings")


class OneOf:
    """One of `choices` (a misspelling gets a hint); `message` replaces the usual one."""

    __slots__ = ("choices", "message")

    def __init__(self, choices: tuple[str, ...], message: str | None = None) -> None:
        self.choices, self.message = choices, message

    @property
    def schema(self) -> dict[str, Any]:
        if len(self.choices) == 1:
            return {"const": self.choices[0]}
        return {"enum": list(self.choices)}

    def __call__(self, checker: Checker, value: Any, pos: Pos, name: str) -> str | Failed[Any]:
        if value in self.choices:
            return str(value)
        return checker.report(pos, self.message or choice_message(name, value, self.choices))


class Boolean:
    __slots__ = ()

    @property
    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}

    def __call__(self, checker: Checker, value: Any, pos: Pos, name: str) -> bool | Failed[Any]:
        if isinstance(value, bool):
            return value
        return checker.report(pos, f"`{name}` must be true or false")


class Node:
    """A value with a rule of its own (a mapping, a list of them): the module of that node reads
    it; `schema` is its fragment, usually a reference to its definition."""

    __slots__ = ("schema",)

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema

    def __call__(self, checker: Checker, value: Any, pos: Pos, name: str) -> Any:
        raise TypeError(f"`{name}` is a node: its own rule reads it")


class Ignored:
    """A value the loader takes as it comes (the schema still tells editors what is meant)."""

    __slots__ = ("schema",)

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema

    def __call__(self, checker: Checker, value: Any, pos: Pos, name: str) -> Any:
        return value


def ref(name: str) -> Node:
    return Node({"$ref": f"#/$defs/{name}"})


@attrs.frozen(eq=False)
class Key(Generic[T]):
    """A key of a scenario file: its name, what it means, and the check that reads it (which
    gives its JSON Schema fragment, unless `schema` says more)."""

    name: str
    description: str
    check: Check[T]
    schema_fragment: dict[str, Any] | None = None

    @property
    def schema(self) -> dict[str, Any]:
        return self.schema_fragment if self.schema_fragment is not None else self.check.schema

    def read(self, checker: Checker, raw: YMap) -> T | Failed[T] | Absent:
        """The value of this key in `raw`, checked (ABSENT when not there)."""
        if self.name not in raw:
            return ABSENT
        return self.check(checker, raw[self.name], raw.at(self.name), self.name)

    def read_or(self, checker: Checker, raw: YMap, default: T) -> T | Failed[T]:
        if self.name not in raw:
            return default
        return self.check(checker, raw[self.name], raw.at(self.name), self.name)


def table(*keys: Key[Any]) -> dict[str, Key[Any]]:
    return {key.name: key for key in keys}


# --- messages ----------------------------------------------------------------------------------


def choice_message(key: str, value: Any, choices: tuple[str, ...]) -> str:
    options = ", ".join(choices)
    close = closest(value, choices)
    hint = f"; did you mean `{close}`?" if close is not None else ""
    return f"`{key}` must be one of {options} (got {shown(value)}){hint}"


def closest(word: Any, choices: tuple[str, ...]) -> str | None:
    """The choice `word` most likely misspells (ignoring case), if any."""
    if not isinstance(word, str):
        return None
    lowered = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else kind(value)


def kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def plain(value: Any) -> Any:
    """YAML values (`YMap`, `YList`) as plain dicts and lists, with string keys."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """Tool call arguments given as a mapping, as the JSON text the API would send."""
    return json.dumps(plain(value), ensure_ascii=False)
