"""`POST /v1/responses` bodies to engine requests, refusing what the real API refuses.

The input becomes the conversation that rules match: a string is one user message, message
items keep their roles, `function_call` items are assistant tool calls (merged into the
assistant turn they follow, as chat sends them) and `function_call_output` items are tool
turns answering `call_id`. An `item_reference` stands for an output item of a stored response
(the engine resolves it). Reasoning and built-in tool items take no part in matching.
"""

from __future__ import annotations

from typing import Any

from ..conversation import Message, join_tool_calls
from ..engine import Request
from ..options import ResponsesOptions
from ..scenario.model import ToolCall
from ..wire.errors import invalid
from .checks import (
    MODERATION,
    PROMPT_CACHE_OPTIONS,
    REASONING_EFFORTS,
    SAMPLING,
    SERVICE_TIERS,
    VERBOSITY,
    Arr,
    Bool,
    Check,
    Enum,
    Int,
    Invalid,
    Metadata,
    Obj,
    OneOf,
    Str,
    Tagged,
    check_fields,
    missing,
    unsupported,
    wrong_type,
)
from .fields import Fields, text_of

ROLE = Enum(("assistant", "system", "developer", "user"))  # in the order the real API lists them
ITEM_TYPES = (
    "additional_tools", "agent_message", "apply_patch_call", "apply_patch_call_output", "code_interpreter_call",
    "compaction", "compaction_trigger", "computer_call", "computer_call_output", "custom_tool_call",
    "custom_tool_call_output", "file_search_call", "function_call", "function_call_output",
    "image_generation_call", "item_reference", "local_shell_call", "local_shell_call_output",
    "mcp_approval_request", "mcp_approval_response", "mcp_call", "mcp_list_tools", "message",
    "multi_agent_call", "multi_agent_call_output", "program", "program_output", "reasoning", "shell_call",
    "shell_call_output", "tool_search_call", "tool_search_output", "web_search_call",
)
CONTENT_PARTS = Tagged({  # in the order the real API lists them
    "input_text": Obj({"text": Str()}, required=("text",)),
    "input_image": Obj({"image_url": Str(), "file_id": Str(), "detail": Enum(("low", "high", "auto", "original"))}),
    "input_audio": Obj(),
    "output_text": Obj({"text": Str(), "annotations": Arr(Obj())}, required=("text",)),
    "refusal": Obj({"refusal": Str()}, required=("refusal",)),
    "input_file": Obj({name: Str() for name in ("file_id", "filename", "file_data", "file_url")}),
    "computer_screenshot": Obj(),
    "summary_text": Obj(),
    "encrypted_content": Obj(),
})
HOSTED_TOOLS = ("file_search", "computer", "computer_use_preview", "web_search", "web_search_2025_08_26", "mcp",
                "code_interpreter", "programmatic_tool_calling", "image_generation", "local_shell", "shell",
                "custom", "namespace", "tool_search", "web_search_preview", "web_search_preview_2025_03_11",
                "apply_patch")
TOOLS = Arr(Tagged({
    "function": Obj({"name": Str(non_empty=True), "description": Str(), "parameters": Obj(), "strict": Bool()},
                    required=("name",)),
    **{name: Obj() for name in HOSTED_TOOLS},
}), of="tools")
NAMED = Obj({"name": Str()}, required=("name",))
TOOL_CHOICE = OneOf({
    str: Enum(("none", "auto", "required")),
    dict: Tagged({
        "function": NAMED, "custom": NAMED, "mcp": Obj({"server_label": Str(), "name": Str()}, required=("server_label",)),
        "allowed_tools": Obj({"mode": Enum(("auto", "required")), "tools": Arr(Obj())}, required=("mode", "tools")),
    }, open=True),  # and the built-in tools by their type alone (`{"type": "web_search_preview"}`)
}, "one of an object or 'none', 'auto', or 'required'")
SUMMARIES = Enum(("concise", "detailed", "auto"))
INCLUDES = Enum((
    "file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
    "message.input_image.image_url", "computer_call_output.output.image_url", "code_interpreter_call.outputs",
    "reasoning.encrypted_content", "message.output_text.logprobs",
))

# Every optional field, in the order the real API reports a request's first fault.
RESPONSES_FIELDS: dict[str, Check] = {
    "previous_response_id": Str(),
    "prompt": Obj({"id": Str(), "version": Str(), "variables": Obj()}, required=("id",)),
    "moderation": MODERATION,
    "include": Arr(INCLUDES),
    "tools": TOOLS,
    "metadata": Metadata(),
    "text": Obj({
        "format": Tagged({"json_object": Obj(), "text": Obj(), "json_schema": Obj(
            {"name": Str(), "schema": Obj(), "strict": Bool(), "description": Str()}, required=("name", "schema"))}),
        "verbosity": VERBOSITY,
    }),
    **SAMPLING,
    "parallel_tool_calls": Bool(),
    "stream": Bool(),
    "stream_options": Obj({"include_obfuscation": Bool()}),
    "background": Bool(),
    "max_output_tokens": Int(16),
    "max_tool_calls": Int(1),
    "reasoning": Obj({"effort": REASONING_EFFORTS, "summary": SUMMARIES, "generate_summary": SUMMARIES,
                      "context": Enum(("auto", "current_turn", "all_turns")), "mode": Str()}),
    "user": Str(),
    "safety_identifier": Str(max_length=64),
    "prompt_cache_options": PROMPT_CACHE_OPTIONS,
    "prompt_cache_key": Str(),
    "prompt_cache_retention": Enum(("in_memory", "24h")),
    "truncation": Enum(("auto", "disabled")),
    "instructions": OneOf({str: Str(), list: Arr()}, "one of a string or array of input items"),
    "store": Bool(),
    "service_tier": Enum((*SERVICE_TIERS.values, "ultrafast")),
    "top_logprobs": Int(0, 20),
    "context_management": Arr(Obj({"type": Str(), "compact_threshold": Int(1000)}, required=("type",)), min_items=1),
    "tool_choice": TOOL_CHOICE,
}


def parse(body: dict[str, Any], session: str) -> Request:
    fields = Fields(body)
    model = fields.model()
    if "input" not in body or body["input"] is None:
        raise missing("input")
    conversation = conversation_of(body["input"], "input")
    check_fields(body, RESPONSES_FIELDS)
    instructions = body.get("instructions")
    system = instructions if not isinstance(instructions, list) else "\n".join(
        m.content or "" for m in conversation_of(instructions, "instructions"))
    if body.get("conversation") is not None:
        raise Invalid(invalid("openai-mock does not implement the Conversations API: continue a conversation "
                              "with 'previous_response_id' instead.", param="conversation"))
    previous = fields.string("previous_response_id")
    stream = fields.boolean("stream")
    include_obfuscation = fields.stream_options(stream).boolean("include_obfuscation", default=True)
    store = fields.boolean("store", default=True)
    tools = _tools(body.get("tools") or [])
    tool_choice = body.get("tool_choice") or "auto"
    truncation = body.get("truncation") or "disabled"
    metadata = body.get("metadata") or {}
    text = body.get("text") or {}
    reasoning = body.get("reasoning")
    options = ResponsesOptions(
        instructions=instructions, previous_response_id=previous, store=store,
        background=fields.boolean("background"), tools=tuple(tools), tool_choice=tool_choice,
        parallel_tool_calls=fields.boolean("parallel_tool_calls", default=True),
        temperature=body["temperature"] if body.get("temperature") is not None else 1.0,
        top_p=body["top_p"] if body.get("top_p") is not None else 1.0,
        top_logprobs=body.get("top_logprobs") or 0,
        max_output_tokens=body.get("max_output_tokens"), max_tool_calls=body.get("max_tool_calls"),
        text={"format": {"type": "text"}, "verbosity": "medium", **text},
        reasoning={"effort": None, "summary": None, **(reasoning or {})},
        truncation=truncation, metadata=metadata, user=fields.string("user"),
        safety_identifier=fields.string("safety_identifier"), prompt_cache_key=fields.string("prompt_cache_key"),
        include_obfuscation=include_obfuscation,
    )
    return Request(endpoint="responses", model=model, conversation=conversation, stream=stream, session=session,
                   previous_response_id=previous, instructions=system, store=store, options=options)


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools (already checked) as the response echoes them: function tools with what the real
    API fills in."""
    return [{"type": "function", "description": None, "name": tool["name"], "parameters": None, "strict": True,
             **tool} if tool["type"] == "function" else tool for tool in tools]


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
            raise wrong_type(where, "an input item", item)
        kind = item.get("type", "message" if "role" in item else None)
        if kind is None:
            raise missing(f"{where}.type")
        if not isinstance(kind, str) or kind not in ITEM_TYPES:
            raise unsupported(where, kind if isinstance(kind, str) else "", ITEM_TYPES)
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
    ROLE(role, f"{where}.role")
    if "content" not in item:
        raise missing(f"{where}.content")
    return Message(role=role, content=_text(item["content"], f"{where}.content"))


def _text(content: Any, param: str) -> str:
    return text_of(content, param, CONTENT_PARTS, "one of a string or array of input content parts") or ""


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
