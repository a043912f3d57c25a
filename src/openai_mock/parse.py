"""Request bodies to engine requests, refusing what the real API refuses, with its messages."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from .conversation import Message
from .engine import Request
from .scenario.model import ErrorSpec, ToolCall
from .wire.chat import ChatOptions
from .wire.errors import invalid

ROLES = ("system", "assistant", "user", "function", "tool", "developer")


class Invalid(Exception):
    """The request is refused; `spec` is the OpenAI error to send."""

    def __init__(self, spec: ErrorSpec):
        super().__init__(spec.message)
        self.spec = spec


# --- generic checks -------------------------------------------------------------------------


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def wrong_type(param: str, expected: str, value: Any) -> Invalid:
    return Invalid(invalid(f"Invalid type for '{param}': expected {expected}, but got {kind(value)} instead.",
                           param=param, code="invalid_type"))


def missing(param: str) -> Invalid:
    return Invalid(invalid(f"Missing required parameter: '{param}'.", param=param,
                           code="missing_required_parameter"))


def json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Invalid(invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
            "valid JSON. If you have trouble figuring out how to fix this, please contact us through our "
            "help center at help.openai.com.)")) from None
    if not isinstance(body, dict):
        raise Invalid(invalid(f"Invalid body: expected a JSON object, but got {kind(body)} instead."))
    return body


class Fields:
    """Typed access to a request body's fields, raising the real API's errors."""

    def __init__(self, body: dict[str, Any]):
        self.body = body

    def get(self, name: str, check: Callable[[Any], bool], expected: str, default: Any = None) -> Any:
        value = self.body.get(name)
        if value is None:
            return default
        if not check(value):
            raise wrong_type(name, expected, value)
        return value

    def string(self, name: str, default: str | None = None) -> str | None:
        return self.get(name, lambda v: isinstance(v, str), "a string", default)

    def boolean(self, name: str, default: bool = False) -> bool:
        return self.get(name, lambda v: isinstance(v, bool), "a boolean", default)

    def integer(self, name: str, minimum: int | None = None, maximum: int | None = None) -> int | None:
        value = self.get(name, lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
        self._bounds(name, value, minimum, maximum, "integer")
        return value

    def number(self, name: str, minimum: float | None = None, maximum: float | None = None) -> float | None:
        value = self.get(name, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number")
        self._bounds(name, value, minimum, maximum, "decimal")
        return value

    def mapping(self, name: str) -> dict[str, Any] | None:
        return self.get(name, lambda v: isinstance(v, dict), "an object")

    def array(self, name: str) -> list[Any] | None:
        return self.get(name, lambda v: isinstance(v, list), "an array")

    def required(self, name: str) -> Any:
        value = self.body.get(name)
        if value is None:
            raise missing(name)
        return value

    def stream_options(self, stream: bool) -> Fields:
        """`stream_options`, which the real API refuses on a request that does not stream."""
        options = self.mapping("stream_options")
        if options is not None and not stream:
            raise Invalid(invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                                  param="stream_options"))
        return Fields(options or {})

    def model(self) -> str:
        model = self.body.get("model")
        if model is None or model == "":
            raise Invalid(invalid("you must provide a model parameter"))
        if not isinstance(model, str):
            raise wrong_type("model", "a string", model)
        return model

    @staticmethod
    def _bounds(name: str, value: Any, minimum: Any, maximum: Any, what: str) -> None:
        if value is None:
            return
        if minimum is not None and value < minimum:
            raise Invalid(invalid(f"Invalid '{name}': {what} below minimum value. Expected a value >= {minimum}, "
                                  f"but got {value} instead.", param=name, code=f"{what}_below_min_value"))
        if maximum is not None and value > maximum:
            raise Invalid(invalid(f"Invalid '{name}': {what} above maximum value. Expected a value <= {maximum}, "
                                  f"but got {value} instead.", param=name, code=f"{what}_above_max_value"))


def sampling(fields: Fields) -> None:
    """The sampling parameters every generation endpoint shares."""
    fields.number("temperature", 0, 2)
    fields.number("top_p", 0, 1)
    fields.number("presence_penalty", -2, 2)
    fields.number("frequency_penalty", -2, 2)


def typed_objects(items: list[Any], param: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, item) of an array whose items must be objects that say their `type`."""
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise wrong_type(f"{param}[{i}]", "an object", item)
        if "type" not in item:
            raise missing(f"{param}[{i}].type")
        yield i, item


# content part type -> the key that holds its text (images, audio and files take no part)
TEXT_PARTS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}


def text_of(content: Any, param: str, expected: str = "one of a string or array of objects") -> str | None:
    """A message's text: a string, or the text parts of an array of content parts, joined by
    newlines."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise wrong_type(param, expected, content)
    texts = []
    for i, part in typed_objects(content, param):
        key = TEXT_PARTS.get(part["type"])
        if key is None:
            continue
        text = part.get(key)
        if not isinstance(text, str):
            raise missing(f"{param}[{i}].{key}") if text is None else wrong_type(f"{param}[{i}].{key}", "a string", text)
        texts.append(text)
    return "\n".join(texts)


# --- chat completions -----------------------------------------------------------------------


def chat(body: dict[str, Any], session: str) -> Request:
    fields = Fields(body)
    model = fields.model()
    messages = fields.required("messages")
    if not isinstance(messages, list):
        raise wrong_type("messages", "an array", messages)
    if not messages:
        raise Invalid(invalid("Invalid 'messages': empty array. Expected an array with minimum length 1, "
                              "but got an empty array instead.", param="messages", code="empty_array"))
    conversation = tuple(_chat_message(m, f"messages[{i}]") for i, m in enumerate(messages))
    stream = fields.boolean("stream")
    options = fields.stream_options(stream)
    include_usage = options.boolean("include_usage")
    include_obfuscation = options.boolean("include_obfuscation", default=True)
    fields.integer("n", 1, 128)
    fields.integer("max_tokens", 1)
    fields.integer("max_completion_tokens", 1)
    sampling(fields)
    for _ in typed_objects(fields.array("tools") or (), "tools"):
        pass  # each tool is an object that names its type; the mock needs nothing more of them
    return Request(endpoint="chat", model=model, conversation=conversation, stream=stream, session=session,
                   options=ChatOptions(include_usage=include_usage, include_obfuscation=include_obfuscation))


def _chat_message(message: Any, param: str) -> Message:
    if not isinstance(message, dict):
        raise wrong_type(param, "an object", message)
    role = message.get("role")
    if role is None:
        raise missing(f"{param}.role")
    if role not in ROLES:
        raise Invalid(invalid(
            f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', "
            "'tool', and 'developer'.", param=f"{param}.role", code="invalid_value"))
    if "content" not in message and role in ("system", "user", "developer", "tool"):
        raise missing(f"{param}.content")
    content = text_of(message.get("content"), f"{param}.content")
    calls: tuple[ToolCall, ...] = ()
    if role == "assistant":
        raw_calls = message.get("tool_calls")
        if raw_calls is not None:
            if not isinstance(raw_calls, list):
                raise wrong_type(f"{param}.tool_calls", "an array", raw_calls)
            calls = tuple(_tool_call(c, f"{param}.tool_calls[{i}]") for i, c in enumerate(raw_calls))
        if content is None and not calls and message.get("function_call") is None:
            raise missing(f"{param}.content")
    tool_call_id = None
    if role == "tool":
        tool_call_id = message.get("tool_call_id")
        if tool_call_id is None:
            raise missing(f"{param}.tool_call_id")
        if not isinstance(tool_call_id, str):
            raise wrong_type(f"{param}.tool_call_id", "a string", tool_call_id)
    return Message(role=role, content=content, tool_calls=calls, tool_call_id=tool_call_id)


def _tool_call(call: Any, param: str) -> ToolCall:
    if not isinstance(call, dict):
        raise wrong_type(param, "an object", call)
    for key in ("id", "function"):
        if key not in call:
            raise missing(f"{param}.{key}")
    function = call["function"]
    if not isinstance(function, dict):
        raise wrong_type(f"{param}.function", "an object", function)
    name, arguments = function.get("name"), function.get("arguments", "")
    if not isinstance(name, str):
        raise missing(f"{param}.function.name") if name is None else wrong_type(f"{param}.function.name", "a string", name)
    if not isinstance(arguments, str):
        raise wrong_type(f"{param}.function.arguments", "a string", arguments)
    return ToolCall(id=str(call["id"]), name=name, arguments=arguments)
