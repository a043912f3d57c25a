"""A token estimate for `usage`: close enough to look real, cheap enough for every request.

Real tokenizers give about one token per word piece; this counts words, numbers and
punctuation marks, which lands near them for English text.
"""

from __future__ import annotations

import re

from .conversation import Conversation
from .scenario.model import ToolCall

_PIECE = re.compile(r"\w+|[^\w\s]")

# per the OpenAI cookbook's counting guide: every message costs a few tokens of framing
_PER_MESSAGE = 3
_PER_REPLY = 3


def count(text: str | None) -> int:
    return len(_PIECE.findall(text)) if text else 0


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
