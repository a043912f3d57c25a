"""Splitting text into stream chunks.

A reply of a few kilobytes is split into a list at once; a long one (megabytes, millions of
words) into `Pieces`, which counts its pieces and makes them as they are asked for, a window of
the text at a time, so that the millions of small strings never exist together."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from typing import overload

from ..tokens import windows

_WORD = re.compile(r"\s*\S+")
LONG = 64 * 1024  # characters from which a text is split lazily


def split(text: str, chunking: str | int = "word") -> list[str]:
    """Pieces that join back to `text`: words with their leading space ("Once", " upon"), single
    characters, or runs of N characters."""
    if not text:
        return []
    if chunking == "char":
        return list(text)
    if isinstance(chunking, int):
        return [text[i : i + chunking] for i in range(0, len(text), chunking)]
    pieces = _WORD.findall(text)
    rest = len(text) - sum(map(len, pieces))
    if rest:  # trailing whitespace rides on the last word
        if pieces:
            pieces[-1] += text[-rest:]
        else:
            pieces = [text]
    return pieces


def pieces(text: str, chunking: str | int = "word") -> Sequence[str]:
    """`split(text, chunking)`: a list for a short text, `Pieces` for a long one."""
    return split(text, chunking) if len(text) < LONG else Pieces(text, chunking)


class Pieces(Sequence[str]):
    """The pieces `split` would give of a long text, counted and made without holding them all
    (indexing makes the pieces up to the one asked)."""

    def __init__(self, text: str, chunking: str | int):
        self.text = text
        self.chunking = chunking
        self._count: int | None = None

    def __len__(self) -> int:
        if self._count is None:
            self._count = self._counted()
        return self._count

    def _counted(self) -> int:
        text, chunking = self.text, self.chunking
        if not text:
            return 0
        if chunking == "char":
            return len(text)
        if isinstance(chunking, int):
            return -(-len(text) // chunking)
        # (a word is a run of non-space characters, as str.split() finds them, and faster)
        return max(1, sum(len(window.split()) for window in windows(text)))

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return next(itertools.islice(self, index, None))

    def __iter__(self) -> Iterator[str]:
        text, chunking = self.text, self.chunking
        if not text:
            return iter(())
        if chunking == "char":
            return iter(text)
        if isinstance(chunking, int):
            return (text[i : i + chunking] for i in range(0, len(text), chunking))
        return self._words()

    def _words(self) -> Iterator[str]:
        """Words with their leading space, the trailing space on the last (as `split`)."""
        text = self.text
        held: str | None = None  # the last word found, held back until the next one (or the end)
        used = 0
        for window in windows(text):
            for word in _WORD.findall(window):
                if held is not None:
                    yield held
                held = word
                used += len(word)
        if held is None:
            yield text
        else:
            yield held + text[used:]
