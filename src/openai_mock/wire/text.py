"""Splitting text into stream chunks."""

from __future__ import annotations

import re

_WORD = re.compile(r"\s*\S+")


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
