"""A token estimate for `usage`: close enough to look real, cheap enough for every request.

Real tokenizers give about one token per word piece; this counts words, numbers and
punctuation marks, which lands near them for English text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .conversation import Conversation
from .scenario.model import ToolCall

_PIECE = re.compile(r"\w+|[^\w\s]")
_CUT = re.compile(r"\S\s")  # where a text may be cut: between a non-space and a space
LONG = 64 * 1024  # characters from which a text is counted a window at a time
WINDOW = 256 * 1024  # characters of a long text taken at a time

# per the OpenAI cookbook's counting guide: every message costs a few tokens of framing
_PER_MESSAGE = 3
_PER_REPLY = 3


def count(text: str | None) -> int:
    if not text:
        return 0
    if len(text) < LONG:
        return len(_PIECE.findall(text))
    return sum(len(_PIECE.findall(window)) for window in windows(text))  # (not millions of strings at once)


def windows(text: str, size: int | None = None) -> Iterator[str]:
    """`text` in consecutive parts of about `size` characters, each cut between a non-space and a
    space: no run of non-space characters is cut, and the spaces before one stay with it."""
    size = WINDOW if size is None else size
    start = 0
    while start < len(text):
        found = _CUT.search(text, start + size)
        end = found.start() + 1 if found is not None else len(text)
        yield text[start:end]
        start = end


def prompt_tokens(conversation: Conversation, known: int = 0) -> int:
    """The prompt's tokens: its messages' (`known`: those of messages counted before, such as a
    stored conversation's), and the reply's framing."""
    return _PER_REPLY + known + message_tokens(conversation)


def message_tokens(messages: Conversation) -> int:
    """The tokens of messages, each with its framing."""
    total = 0
    for message in messages:
        total += _PER_MESSAGE + count(message.content)
        for call in message.tool_calls:
            total += count(call.name) + count(call.arguments)
    return total


def completion_tokens(content: str | None, tool_calls: tuple[ToolCall, ...] = ()) -> int:
    total = count(content)
    for call in tool_calls:
        total += count(call.name) + count(call.arguments) + 3
    return max(total, 1)
