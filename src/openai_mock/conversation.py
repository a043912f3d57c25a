"""A conversation as every endpoint sees it: the shape that matching works on.

Chat completions, the Responses API and legacy completions all become a tuple of
`Message`s, so one matcher serves them all.
"""

from __future__ import annotations

import attrs

from .scenario.model import ToolCall


@attrs.frozen
class Message:
    role: str  # system | developer | user | assistant | tool | function
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


Conversation = tuple[Message, ...]


def same_role(flow_role: str, request_role: str) -> bool:
    """`system` and `developer` are the same seat: newer models call the system prompt developer."""
    if flow_role == request_role:
        return True
    return {flow_role, request_role} == {"system", "developer"}
