"""`POST /v1/chat/completions` bodies to engine requests, refusing what the real API refuses,
with its messages."""

from __future__ import annotations

from typing import Any

from ..conversation import Message
from ..engine import Request
from ..options import ChatOptions
from ..scenario.model import ToolCall
from ..wire.errors import invalid
from .checks import (
    MODERATION,
    PROMPT_CACHE_OPTIONS,
    REASONING_EFFORTS,
    SAMPLING,
    SEED,
    SERVICE_TIERS,
    STOP,
    VERBOSITY,
    Arr,
    Bool,
    Check,
    Enum,
    Int,
    Invalid,
    LogitBias,
    Metadata,
    Obj,
    OneOf,
    Str,
    Tagged,
    check_fields,
    missing,
    wrong_type,
)
from .fields import Fields, text_of

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
ROLE = Enum(ROLES)


# --- chat completions: what each part of the request may be -------------------------------------


def _holding(key: str, inner: Obj) -> Obj:
    """An object whose `key` (required) holds an `inner` object: `{"type": "function", "function": {...}}`."""
    return Obj({key: inner}, required=(key,))


def _strings(*names: str) -> dict[str, Check]:
    return {name: Str() for name in names}


CONTENT_PARTS = Tagged({  # in the order the real API lists them
    "text": Obj({"text": Str()}, required=("text",)),
    "image_url": _holding("image_url", Obj({"url": Str(), "detail": Enum(("auto", "low", "high"))},
                                          required=("url",))),
    "input_audio": _holding("input_audio", Obj({"data": Str(), "format": Enum(("wav", "mp3"))},
                                              required=("data", "format"))),
    "refusal": Obj({"refusal": Str()}, required=("refusal",)),
    "audio": Obj(),
    "file": _holding("file", Obj(_strings("filename", "file_data", "file_id"))),
})
TOOL_CALL = Tagged({
    "function": Obj({"id": Str(), "function": Obj(_strings("name", "arguments"), required=("name", "arguments"))},
                    required=("id", "function")),
    "custom": Obj({"id": Str(), "custom": Obj(_strings("name", "input"), required=("name", "input"))},
                  required=("id", "custom")),
})
MESSAGE_FIELDS: dict[str, Check] = {
    "name": Str(), "refusal": Str(), "tool_calls": Arr(TOOL_CALL, min_items=1),
    "audio": Obj({"id": Str()}, required=("id",)),
    "function_call": Obj(_strings("name", "arguments"), required=("arguments", "name")),
}

FUNCTION = Obj({"name": Str(non_empty=True), "description": Str(), "parameters": Obj(), "strict": Bool()},
               required=("name",))
TOOLS = Arr(Tagged({
    "function": _holding("function", FUNCTION),
    "custom": _holding("custom", Obj({
        "name": Str(non_empty=True), "description": Str(),
        "format": Tagged({"text": Obj(), "grammar": _holding("grammar", Obj(
            {"definition": Str(), "syntax": Enum(("lark", "regex"))}, required=("definition", "syntax")))}),
    }, required=("name",))),
}))
TOOL_CHOICE = OneOf({
    str: Enum(("none", "auto", "required")),
    dict: Tagged({
        "function": _holding("function", Obj({"name": Str()}, required=("name",))),
        "custom": _holding("custom", Obj({"name": Str()}, required=("name",))),
        "allowed_tools": _holding("allowed_tools", Obj({"mode": Enum(("auto", "required")), "tools": Arr(Obj())},
                                                      required=("mode", "tools"))),
    }),
}, "one of one of 'none', 'auto', or 'required' or object")
RESPONSE_FORMAT = Tagged({
    "json_object": Obj(),
    "json_schema": _holding("json_schema", Obj({"name": Str(), "description": Str(), "schema": Obj(),
                                                "strict": Bool()}, required=("name",))),
    "text": Obj(),
})
TEXT_PART = Obj({"type": Enum(("text",)), "text": Str()}, required=("type", "text"))

# Every optional field, in the order the real API reports a request's first fault.
CHAT_FIELDS: dict[str, Check] = {
    "functions": Arr(Obj({"name": Str(), "description": Str(), "parameters": Obj()}, required=("name",)),
                     min_items=1, max_items=128, of="function definitions"),
    "tools": TOOLS,
    "parallel_tool_calls": Bool(),
    "max_completion_tokens": Int(1),
    "n": Int(1, 128),
    **SAMPLING,
    "logprobs": Bool(),
    "top_logprobs": Int(0, 20),
    "user": Str(),
    "seed": SEED,
    "safety_identifier": Str(max_length=64),
    "prompt_cache_key": Str(),
    "prompt_cache_retention": Enum(("in_memory", "24h")),
    "prompt_cache_options": PROMPT_CACHE_OPTIONS,
    "service_tier": SERVICE_TIERS,
    "stream": Bool(),
    "stream_options": Obj({"include_usage": Bool(), "include_obfuscation": Bool()}),
    "store": Bool(),
    "metadata": Metadata(),
    "verbosity": VERBOSITY,
    "max_tokens": Int(1),
    "stop": STOP,
    "logit_bias": LogitBias(),
    "prediction": Obj({"type": Enum(("content",)),
                       "content": OneOf({str: Str(), list: Arr(TEXT_PART, min_items=1)},
                                        "one of a string or array of objects")}, required=("type", "content")),
    "response_format": RESPONSE_FORMAT,
    "tool_choice": TOOL_CHOICE,
    "function_call": OneOf({str: Enum(("none", "auto")), dict: Obj({"name": Str()}, required=("name",))},
                           "one of one of 'none' or 'auto' or object"),
    "modalities": Arr(Enum(("text", "audio"))),
    "reasoning_effort": REASONING_EFFORTS,
    "audio": Obj({"voice": OneOf({str: Str(), dict: Obj({"id": Str()}, required=("id",))}, "one of a string or object"),
                  "format": Enum(("wav", "aac", "mp3", "flac", "opus", "pcm16"))}, required=("voice", "format")),
    "web_search_options": Obj({
        "user_location": Obj({"type": Enum(("approximate",)),
                              "approximate": Obj(_strings("country", "region", "city", "timezone"))},
                             required=("type", "approximate")),
        "search_context_size": Enum(("low", "medium", "high")),
    }),
    "moderation": MODERATION,
}
MESSAGES = Arr(min_items=1, of="objects")
TOOL_CALL_ID = Str()


# --- chat completions ---------------------------------------------------------------------------


def parse(body: dict[str, Any], session: str) -> Request:
    fields = Fields(body)
    model = fields.model()
    messages = fields.required("messages")
    MESSAGES(messages, "messages")
    conversation = tuple(_chat_message(m, f"messages[{i}]") for i, m in enumerate(messages))
    check_fields(body, CHAT_FIELDS)
    stream = fields.boolean("stream")
    options = fields.stream_options(stream)
    if body.get("top_logprobs") is not None and not body.get("logprobs"):
        raise Invalid(invalid("The 'top_logprobs' parameter is only allowed when 'logprobs' is enabled.",
                              param="top_logprobs"))
    return Request(endpoint="chat", model=model, conversation=conversation, stream=stream, session=session,
                   options=ChatOptions(include_usage=options.boolean("include_usage"),
                                       include_obfuscation=options.boolean("include_obfuscation", default=True)))


def _chat_message(message: Any, param: str) -> Message:
    if not isinstance(message, dict):
        raise wrong_type(param, "an object", message)
    role = message.get("role")
    if role is None:
        raise missing(f"{param}.role")
    ROLE(role, f"{param}.role")
    if "content" not in message and role in ("system", "user", "developer", "tool"):
        raise missing(f"{param}.content")
    content = text_of(message.get("content"), f"{param}.content", CONTENT_PARTS)
    check_fields(message, MESSAGE_FIELDS, f"{param}.")
    calls: tuple[ToolCall, ...] = ()
    if role == "assistant":
        calls = tuple(map(_tool_call, message.get("tool_calls") or ()))
        substitutes = ("tool_calls", "function_call", "refusal", "audio")  # what stands in for content
        if content is None and all(message.get(key) is None for key in substitutes):
            raise missing(f"{param}.content")
    tool_call_id = None
    if role == "tool":
        tool_call_id = message.get("tool_call_id")
        if tool_call_id is None:
            raise missing(f"{param}.tool_call_id")
        TOOL_CALL_ID(tool_call_id, f"{param}.tool_call_id")
    return Message(role=role, content=content, tool_calls=calls, tool_call_id=tool_call_id)


def _tool_call(call: dict[str, Any]) -> ToolCall:
    """One of an assistant message's `tool_calls`, already checked against `TOOL_CALL`."""
    if call["type"] == "custom":
        return ToolCall(id=call["id"], name=call["custom"]["name"], arguments=call["custom"]["input"], type="custom")
    return ToolCall(id=call["id"], name=call["function"]["name"], arguments=call["function"]["arguments"])

