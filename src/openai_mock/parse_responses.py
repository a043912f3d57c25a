"""`POST /v1/responses` bodies to engine requests, refusing what the real API refuses.

The input becomes the conversation that rules match: a string is one user message, message
items keep their roles, `function_call` items are assistant tool calls (merged into the
assistant turn they follow, as chat sends them) and `function_call_output` items are tool
turns answering `call_id`. An `item_reference` stands for an output item of a stored response
(the engine resolves it). Reasoning and built-in tool items take no part in matching.
"""

from __future__ import annotations

from typing import Any

from .conversation import Message, join_tool_calls
from .engine import Request
from .parse import Fields, Invalid, missing, sampling, text_of, typed_objects, wrong_type
from .scenario.model import ToolCall
from .wire.errors import invalid
from .wire.responses import ResponsesOptions

MESSAGE_ROLES = ("user", "assistant", "system", "developer")
TOOL_CHOICES = ("none", "auto", "required")
TRUNCATIONS = ("auto", "disabled")


def _choice(value: Any, choices: tuple[str, ...], param: str) -> None:
    if value not in choices:
        quoted = [f"'{c}'" for c in choices]
        listed = ", ".join(quoted[:-1]) + f", and {quoted[-1]}" if len(quoted) > 2 else " and ".join(quoted)
        raise Invalid(invalid(f"Invalid value: '{value}'. Supported values are: {listed}.", param=param,
                              code="invalid_value"))


def responses(body: dict[str, Any], session: str) -> Request:
    fields = Fields(body)
    model = fields.model()
    if "input" not in body or body["input"] is None:
        raise missing("input")
    conversation = conversation_of(body["input"], "input")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, (str, list)):
        raise wrong_type("instructions", "one of a string or array of input items", instructions)
    system = instructions if not isinstance(instructions, list) else "\n".join(
        m.content or "" for m in conversation_of(instructions, "instructions"))
    if body.get("conversation") is not None:
        raise Invalid(invalid("openai-mock does not implement the Conversations API: continue a conversation "
                              "with 'previous_response_id' instead.", param="conversation"))
    previous = fields.string("previous_response_id")
    stream = fields.boolean("stream")
    include_obfuscation = fields.stream_options(stream).boolean("include_obfuscation", default=True)
    store = fields.boolean("store", default=True)
    sampling(fields)
    max_output_tokens = fields.integer("max_output_tokens", 16)
    tools = _tools(fields.array("tools") or [])
    tool_choice = body.get("tool_choice", "auto")
    if isinstance(tool_choice, str):
        _choice(tool_choice, TOOL_CHOICES, "tool_choice")
    elif not isinstance(tool_choice, dict):
        raise wrong_type("tool_choice", "one of a string or object", tool_choice)
    truncation = fields.string("truncation", "disabled")
    _choice(truncation, TRUNCATIONS, "truncation")
    metadata = fields.mapping("metadata") or {}
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise wrong_type(f"metadata.{key}", "a string", value)
    text = fields.mapping("text") or {}
    reasoning = fields.mapping("reasoning")
    options = ResponsesOptions(
        instructions=instructions, previous_response_id=previous, store=store,
        background=fields.boolean("background"), tools=tuple(tools), tool_choice=tool_choice,
        parallel_tool_calls=fields.boolean("parallel_tool_calls", default=True),
        temperature=fields.number("temperature") if body.get("temperature") is not None else 1.0,
        top_p=fields.number("top_p") if body.get("top_p") is not None else 1.0,
        top_logprobs=fields.integer("top_logprobs", 0, 20) or 0,
        max_output_tokens=max_output_tokens, max_tool_calls=fields.integer("max_tool_calls", 1),
        text={"format": {"type": "text"}, "verbosity": "medium", **text},
        reasoning={"effort": None, "summary": None, **(reasoning or {})},
        truncation=truncation, metadata=metadata, user=fields.string("user"),
        safety_identifier=fields.string("safety_identifier"), prompt_cache_key=fields.string("prompt_cache_key"),
        include_obfuscation=include_obfuscation,
    )
    return Request(endpoint="responses", model=model, conversation=conversation, stream=stream, session=session,
                   previous_response_id=previous, instructions=system, store=store, options=options)


def _tools(tools: list[Any]) -> list[dict[str, Any]]:
    """The tools as the response echoes them: function tools with what the real API fills in."""
    result = []
    for i, tool in typed_objects(tools, "tools"):
        if tool["type"] == "function":
            name = tool.get("name")
            if name is None:
                raise missing(f"tools[{i}].name")
            if not isinstance(name, str):
                raise wrong_type(f"tools[{i}].name", "a string", name)
            tool = {"type": "function", "description": None, "name": name, "parameters": None, "strict": True,
                    **tool}
        result.append(tool)
    return result


# --- input items ------------------------------------------------------------------------------


def conversation_of(value: Any, param: str) -> tuple[Message, ...]:
    if isinstance(value, str):
        return (Message(role="user", content=value),)
    if not isinstance(value, list):
        raise wrong_type(param, "one of a string or array of input items", value)
    messages: list[Message] = []
    for i, item in enumerate(value):
        where = f"{param}[{i}]"
        if not isinstance(item, dict):
            raise wrong_type(where, "an object", item)
        kind = item.get("type", "message" if "role" in item else None)
        if kind is None:
            raise missing(f"{where}.type")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            messages.append(Message(role="assistant", tool_calls=(_function_call(item, where),)))
        elif kind == "function_call_output":
            messages.append(_function_output(item, where))
        elif kind == "item_reference":  # an item of a stored response: the engine looks it up
            messages.append(Message(role="assistant", reference=_string(item, "id", where)))
    return join_tool_calls(messages)


def _message(item: dict[str, Any], where: str) -> Message:
    role = item.get("role")
    if role is None:
        raise missing(f"{where}.role")
    _choice(role, MESSAGE_ROLES, f"{where}.role")
    if "content" not in item:
        raise missing(f"{where}.content")
    return Message(role=role, content=_text(item["content"], f"{where}.content"))


def _text(content: Any, param: str) -> str:
    return text_of(content, param, "one of a string or array of input content parts") or ""


def _string(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if value is None:
        raise missing(f"{where}.{key}")
    if not isinstance(value, str):
        raise wrong_type(f"{where}.{key}", "a string", value)
    return value


def _function_call(item: dict[str, Any], where: str) -> ToolCall:
    return ToolCall(id=_string(item, "call_id", where), name=_string(item, "name", where),
                    arguments=_string(item, "arguments", where))


def _function_output(item: dict[str, Any], where: str) -> Message:
    call_id = _string(item, "call_id", where)
    if item.get("output") is None:
        raise missing(f"{where}.output")
    output = item["output"]
    text = output if isinstance(output, str) else _text(output, f"{where}.output")
    return Message(role="tool", content=text, tool_call_id=call_id)
