"""Regex shapes that backtrack catastrophically, found in the pattern's parse tree.

A backtracking engine (Python's `re`, the `regex` module) that fails to match tries every way
the pattern could have split the text. Most patterns allow one or a few; two shapes allow
exponentially many, so that a message of a few dozen characters takes seconds:

- a repeat inside a repeat, `(a+)+`, `(\\w+\\s?)*`, `(.*,){11}`: each run of characters can
  be shared out between the inner and the outer repeat in every possible way;
- a repeated alternation whose branches match the same text, `(a|aa)+`, `(a|a?)+`.

`risk()` names the first such shape in a pattern, for `check` to warn about. It is a
heuristic over `re`'s parse tree: it errs towards warning, except where a mandatory character
that the inner repeat cannot match separates the rounds (`(\\d+\\.)*` is fine), or where the
inner part cannot give characters back (`(a++)+`, `(?>a+)+`).
"""

from __future__ import annotations

import functools
import re
import re._constants as C  # type: ignore[import-not-found]  # noqa: N812  (the parser's opcodes)
import re._parser as parser  # type: ignore[import-not-found]  # (private: no stubs)
from collections.abc import Callable, Iterable, Iterator
from typing import Any

NESTED = (
    "repeats a group that itself contains a repeat (like `(a+)+`): on a message that almost "
    "matches, it tries every way of sharing the characters out between the two repeats, "
    "exponentially many, and the request is refused once matching takes too long. Let each "
    "character be matched one way only: `(a+)+` is `a+`, `(\\w+\\s?)*` is `[\\w\\s]*` or "
    "`(\\w+\\s)*\\w*`; or make the inner repeat possessive (`a++`), so it gives nothing back"
)
ALTERNATION = (
    "repeats an alternation whose branches can match the same text (like `(a|aa)+`): on a "
    "message that almost matches, it tries every combination of branches, exponentially many, "
    "and the request is refused once matching takes too long. Make the branches exclusive: "
    "`(a|aa)+` is `a+`, `(a|a?)+` is `a*`"
)

# Characters that stand for all the others when sets of characters are compared: ASCII,
# Latin, and a few of each Unicode kind that `\d`, `\w`, `\s` and case folding treat apart.
_SAMPLE = tuple(chr(i) for i in range(0x250)) + tuple(
    "\u0660\u0967\uff10\U0001d7d8\u00a0\u2028\u3000\u212a\u017f\u0391\u03c9\u0416\u4e2d\u3042\U0001f600")

_Chars = frozenset[int]  # indices into _SAMPLE
_ALL: _Chars = frozenset(range(len(_SAMPLE)))
_SINGLE = {C.LITERAL, C.NOT_LITERAL, C.IN, C.ANY}
_REPEATS = {C.MAX_REPEAT, C.MIN_REPEAT}
_CATEGORIES: dict[Any, Callable[[str], bool]] = {
    C.CATEGORY_DIGIT: str.isdecimal,
    C.CATEGORY_NOT_DIGIT: lambda ch: not ch.isdecimal(),
    C.CATEGORY_SPACE: str.isspace,
    C.CATEGORY_NOT_SPACE: lambda ch: not ch.isspace(),
    C.CATEGORY_WORD: lambda ch: ch.isalnum() or ch == "_",
    C.CATEGORY_NOT_WORD: lambda ch: not (ch.isalnum() or ch == "_"),
    C.CATEGORY_LINEBREAK: lambda ch: ch == "\n",
    C.CATEGORY_NOT_LINEBREAK: lambda ch: ch != "\n",
}


class _GiveUp(Exception):
    """The shape is beyond this analysis: say nothing rather than guess."""


@functools.lru_cache(maxsize=1024)
def risk(pattern: str) -> str | None:
    """Why `pattern` (valid for `re`) may backtrack catastrophically, or None."""
    try:
        tree = parser.parse(pattern, re.IGNORECASE)
        return _walk(tree)
    except Exception:  # (a parser of another Python version, a shape beyond this analysis)
        return None


def _walk(items: Iterable[tuple[Any, Any]]) -> str | None:
    for op, av in items:
        if op in _REPEATS:
            low, high, body = av
            if high > 1:
                inner = list(_unbounded_repeats(body))
                if inner and not _separated(body, inner):
                    return NESTED
                if (high == C.MAXREPEAT or high >= 8) and _ambiguous(body):
                    return ALTERNATION
            found = _walk(body)
        elif op == C.POSSESSIVE_REPEAT:
            found = _walk(av[2])
        elif op == C.SUBPATTERN:
            found = _walk(av[3])
        elif op == C.ATOMIC_GROUP:
            found = _walk(av)
        elif op == C.BRANCH:
            found = next((f for branch in av[1] if (f := _walk(branch)) is not None), None)
        elif op in (C.ASSERT, C.ASSERT_NOT):
            found = _walk(av[1])
        elif op == C.GROUPREF_EXISTS:
            found = _walk(av[1]) or (_walk(av[2]) if av[2] is not None else None)
        else:
            found = None
        if found is not None:
            return found
    return None


def _unbounded_repeats(items: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """The repeats without an upper bound in `items` that can give characters back (not
    inside an atomic group or a possessive repeat)."""
    for op, av in items:
        if op in _REPEATS:
            if av[1] == C.MAXREPEAT:
                yield op, av
            else:
                yield from _unbounded_repeats(av[2])
        elif op == C.SUBPATTERN:
            yield from _unbounded_repeats(av[3])
        elif op == C.BRANCH:
            for branch in av[1]:
                yield from _unbounded_repeats(branch)


def _separated(body: Iterable[tuple[Any, Any]], inner: list[tuple[Any, Any]]) -> bool:
    """Whether a character that every round of `body` must match, and that none of the inner
    repeats can, keeps the rounds apart (`(\\d+\\.)*`: each round ends at its own dot)."""
    taken = frozenset().union(*(_chars_in(av[2]) for _, av in inner))
    for op, av in _sequence(body):
        if (op, av) in inner:
            continue
        if op in _SINGLE:
            chars = _chars(op, av)
        elif op in _REPEATS and av[0] >= 1 and len(av[2]) == 1 and av[2][0][0] in _SINGLE:
            chars = _chars(*av[2][0])
        else:
            continue
        if not chars & taken:
            return True
    return False


def _sequence(items: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """`items` with their plain groups opened: what one round matches in order."""
    for op, av in items:
        if op == C.SUBPATTERN:
            yield from _sequence(av[3])
        else:
            yield op, av


def _chars_in(items: Iterable[tuple[Any, Any]]) -> _Chars:
    """Every character some part of `items` can match (all of them for what is not plain)."""
    result: _Chars = frozenset()
    for op, av in items:
        if op in _SINGLE:
            result |= _chars(op, av)
        elif op in _REPEATS or op == C.POSSESSIVE_REPEAT:
            result |= _chars_in(av[2])
        elif op == C.SUBPATTERN:
            result |= _chars_in(av[3])
        elif op == C.ATOMIC_GROUP:
            result |= _chars_in(av)
        elif op == C.BRANCH:
            for branch in av[1]:
                result |= _chars_in(branch)
        elif op != C.AT:
            return _ALL
    return result


def _ambiguous(body: Iterable[tuple[Any, Any]]) -> bool:
    """Whether two ways through `body` match the same text, or one way matches a start of
    another whose rest can begin a new round (`a|aa`: `aa` is also `a`, `a`)."""
    try:
        shapes = [s for s in _shapes(list(body)) if s]
    except _GiveUp:
        return False
    firsts = frozenset().union(*(s[0] for s in shapes)) if shapes else frozenset()
    for i, one in enumerate(shapes):
        for other in shapes[i + 1:]:
            short, long = (one, other) if len(one) <= len(other) else (other, one)
            if all(a & b for a, b in zip(short, long)):
                if len(short) == len(long) or long[len(short)] & firsts:
                    return True
    return False


_MAX_SHAPES, _MAX_LENGTH = 32, 16


def _shapes(items: list[tuple[Any, Any]]) -> list[tuple[_Chars, ...]]:
    """Every way through `items` as the sets of characters it matches one by one, for items
    of fixed small sizes; `_GiveUp` for anything else."""
    ways: list[tuple[_Chars, ...]] = [()]
    for op, av in items:
        if op in _SINGLE:
            options: list[tuple[_Chars, ...]] = [(_chars(op, av),)]
        elif op == C.AT:
            continue
        elif op == C.SUBPATTERN:
            options = _shapes(av[3])
        elif op == C.BRANCH:
            options = [shape for branch in av[1] for shape in _shapes(branch)]
        elif op in _REPEATS and av[1] <= 3:
            once = _shapes(av[2])
            options = []
            for count in range(av[0], av[1] + 1):
                repeated: list[tuple[_Chars, ...]] = [()]
                for _ in range(count):
                    repeated = [a + b for a in repeated for b in once]
                options += repeated
        else:
            raise _GiveUp
        ways = [a + b for a in ways for b in options]
        if len(ways) > _MAX_SHAPES or any(len(w) > _MAX_LENGTH for w in ways):
            raise _GiveUp
    return ways


def _chars(op: Any, av: Any) -> _Chars:
    """The sample characters one single-character item matches, ignoring case."""
    if op == C.ANY:
        return _ALL
    if op in (C.LITERAL, C.NOT_LITERAL):
        same = _same_letter(chr(av))
        return frozenset(i for i, ch in enumerate(_SAMPLE) if same(ch) != (op == C.NOT_LITERAL))
    return _set(tuple(av))


@functools.lru_cache(maxsize=256)
def _set(items: tuple[tuple[Any, Any], ...]) -> _Chars:
    tests: list[Callable[[str], bool]] = []
    negate = False
    for op, av in items:
        if op == C.NEGATE:
            negate = True
        elif op == C.LITERAL:
            tests.append(_same_letter(chr(av)))
        elif op == C.RANGE:
            tests.append(_in_range(*av))
        elif op == C.CATEGORY and av in _CATEGORIES:
            tests.append(_CATEGORIES[av])
        else:
            return _ALL
    return frozenset(i for i, ch in enumerate(_SAMPLE) if any(t(ch) for t in tests) != negate)


def _in_range(low: int, high: int) -> Callable[[str], bool]:
    return lambda ch: any(low <= ord(c) <= high for c in _cases(ch))


def _same_letter(letter: str) -> Callable[[str], bool]:
    cases = set(_cases(letter))
    return lambda ch: not cases.isdisjoint(_cases(ch))


def _cases(ch: str) -> tuple[str, ...]:
    """`ch` and its other cases (those of one character: `ß` has no one-letter capital)."""
    return tuple(c for c in (ch, ch.lower(), ch.upper(), ch.casefold()) if len(c) == 1)
