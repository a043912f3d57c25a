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
    # a Responses API `item_reference`: stands for the stored item with this id until the
    # engine puts that item in its place (nothing is matched before then)
    reference: str | None = None


Conversation = tuple[Message, ...]


def join_tool_calls(messages: list[Message]) -> Conversation:
    """Responses API input as chat sends it: `function_call` items (assistant messages with only
    tool calls) join the assistant turn they follow."""
    joined: list[Message] = []
    for message in messages:
        last = joined[-1] if joined else None
        if (last is not None and last.role == "assistant" and last.reference is None and message.role == "assistant"
                and message.content is None and message.tool_calls and message.reference is None):
            joined[-1] = attrs.evolve(last, tool_calls=last.tool_calls + message.tool_calls)
        else:
            joined.append(message)
    return tuple(joined)


def same_role(flow_role: str, request_role: str) -> bool:
    """`system` and `developer` are the same seat: newer models call the system prompt developer."""
    if flow_role == request_role:
        return True
    return {flow_role, request_role} == {"system", "developer"}
