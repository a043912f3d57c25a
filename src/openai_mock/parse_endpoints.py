"""Request bodies of the smaller endpoints: legacy completions, embeddings, moderations."""

from __future__ import annotations

from typing import Any

from . import tokens
from .conversation import Message
from .engine import Request
from .parse import Fields, Invalid, missing, wrong_type
from .parse_checks import (
    SAMPLING,
    SEED,
    STOP,
    Bool,
    Check,
    Enum,
    Int,
    LogitBias,
    Obj,
    Str,
    Tagged,
    check_fields,
)
from .wire import embeddings as wire_embeddings
from .wire.completions import CompletionOptions
from .wire.errors import invalid
from .wire.moderations import ModerationOptions

# the real API's words for any input it cannot embed (empty, mixed, too many)
BAD_EMBEDDING_INPUT = ("'$.input' is invalid. Please check the API reference: "
                       "https://platform.openai.com/docs/api-reference.")
MAX_EMBEDDING_INPUTS = 2048
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(t) for t in value)


# --- legacy completions -----------------------------------------------------------------------


# Every optional field of a legacy completion, checked in this order.
COMPLETIONS_FIELDS: dict[str, Check] = {
    "best_of": Int(0, 20),
    "echo": Bool(),
    "logit_bias": LogitBias(),
    "logprobs": Int(0, 5),
    "max_tokens": Int(0),
    "n": Int(1, 128),
    **SAMPLING,
    "seed": SEED,
    "stop": STOP,
    "stream": Bool(),
    "stream_options": Obj({"include_usage": Bool(), "include_obfuscation": Bool()}),
    "suffix": Str(),
    "user": Str(),
}


def completions(body: dict[str, Any], session: str) -> Request:
    fields = Fields(body)
    model = fields.model()
    prompt = _prompt(fields.required("prompt"))
    check_fields(body, COMPLETIONS_FIELDS)
    stream = fields.boolean("stream")
    include_usage = fields.stream_options(stream).boolean("include_usage")
    echo = fields.boolean("echo")
    return Request(endpoint="completions", model=model, conversation=(Message(role="user", content=prompt),),
                   stream=stream, session=session,
                   options=CompletionOptions(include_usage=include_usage, echo=prompt if echo else None))


def _prompt(value: Any) -> str:
    """One prompt, as the text rules match: a string, or token ids written out as numbers."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise wrong_type("prompt", "one of a string, array of strings, array of integers, or array of arrays "
                                   "of integers", value)
    if _is_tokens(value):
        return " ".join(map(str, value))
    if len(value) == 1 and (isinstance(value[0], str) or _is_tokens(value[0])):
        return _prompt(value[0])
    if not value:
        raise Invalid(invalid("Invalid 'prompt': empty array. Expected an array with minimum length 1, but got "
                              "an empty array instead.", param="prompt", code="empty_array"))
    raise Invalid(invalid("openai-mock answers one prompt per request: send the prompts of this batch one "
                          "request at a time.", param="prompt"))


# --- embeddings -------------------------------------------------------------------------------


def embeddings(body: dict[str, Any]) -> wire_embeddings.EmbeddingsRequest:
    fields = Fields(body)
    model = fields.model()
    inputs = _embedding_inputs(fields.required("input"))
    # float is the real API's default; the SDKs ask for base64 themselves
    encoding = fields.get("encoding_format", Enum(("float", "base64")), "float")
    dimensions = fields.integer("dimensions", 1, wire_embeddings.max_dimensions(model))
    if dimensions is not None and model in wire_embeddings.FIXED_DIMENSIONS:
        raise Invalid(invalid("This model does not support specifying dimensions.", param="dimensions"))
    fields.string("user")
    used = sum(max(1, tokens.count(item)) if isinstance(item, str) else len(item) for item in inputs)
    return wire_embeddings.EmbeddingsRequest(
        model=model, inputs=inputs, dimensions=dimensions or wire_embeddings.native_dimensions(model),
        encoding_format=encoding, prompt_tokens=used)


def _embedding_inputs(value: Any) -> tuple[wire_embeddings.Input, ...]:
    """A string, a list of strings, one list of token ids, or a list of them."""
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and 0 < len(value) <= MAX_EMBEDDING_INPUTS:
        if all(isinstance(v, str) and v for v in value):
            return tuple(value)
        if _is_tokens(value):
            return (tuple(value),)
        if all(_is_tokens(v) for v in value):
            return tuple(tuple(v) for v in value)
    raise Invalid(invalid(BAD_EMBEDDING_INPUT))


# --- moderations ------------------------------------------------------------------------------


# the parts of one multimodal moderation input
MODERATION_PARTS = Tagged({
    "text": Obj({"text": Str()}, required=("text",)),
    "image_url": Obj({"image_url": Obj({"url": Str()}, required=("url",))}, required=("image_url",)),
})


def moderations(body: dict[str, Any], session: str) -> Request:
    fields = Fields(body)
    model: str = fields.get("model", Str(), DEFAULT_MODERATION_MODEL)
    value = body.get("input")
    if value is None:
        raise missing("input")
    inputs: list[tuple[str, tuple[str, ...]]]
    if isinstance(value, str):
        inputs = [(value, ("text",))]
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        inputs = [(v, ("text",)) for v in value]
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        inputs = [_multimodal(value)]
    else:
        raise wrong_type("input", "one of a string, array of strings, or array of objects", value)
    return Request(endpoint="moderations", model=model, session=session,
                   conversation=tuple(Message(role="user", content=text) for text, _ in inputs),
                   options=ModerationOptions(input_types=tuple(types for _, types in inputs)))


def _multimodal(parts: list[dict[str, Any]]) -> tuple[str, tuple[str, ...]]:
    """One input of text and image parts: its text (what rules match) and its kinds of content."""
    for i, part in enumerate(parts):
        MODERATION_PARTS(part, f"input[{i}]")
    texts = [part["text"] for part in parts if part["type"] == "text"]
    kinds = {"text" if part["type"] == "text" else "image" for part in parts}
    return "\n".join(texts), tuple(k for k in ("text", "image") if k in kinds)
