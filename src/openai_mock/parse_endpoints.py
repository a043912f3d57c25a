"""Request bodies of the smaller endpoints: legacy completions, embeddings, moderations."""

from __future__ import annotations

from typing import Any

from . import tokens
from .conversation import Message
from .engine import Request
from .parse import Fields, Invalid, missing, sampling, wrong_type
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


def completions(body: dict[str, Any], session: str) -> Request:
    fields = Fields(body)
    model = fields.model()
    prompt = _prompt(fields.required("prompt"))
    stream = fields.boolean("stream")
    include_usage = fields.stream_options(stream).boolean("include_usage")
    echo = fields.boolean("echo")
    fields.integer("max_tokens", 0)
    fields.integer("n", 1, 128)
    fields.integer("best_of", 0, 20)
    fields.integer("logprobs", 0, 5)
    fields.string("suffix")
    sampling(fields)
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
    encoding = body.get("encoding_format")
    if encoding is None:
        encoding = "float"  # the real API's default; the SDKs ask for base64 themselves
    elif encoding not in ("float", "base64"):
        raise Invalid(invalid(f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
                              param="encoding_format", code="invalid_value"))
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


def moderations(body: dict[str, Any], session: str) -> Request:
    fields = Fields(body)
    model = fields.string("model", DEFAULT_MODERATION_MODEL)
    value = body.get("input")
    if value is None:
        raise missing("input")
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
    texts, kinds = [], set()
    for i, part in enumerate(parts):
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise missing(f"input[{i}].text") if text is None else wrong_type(f"input[{i}].text", "a string", text)
            texts.append(text)
            kinds.add("text")
        elif kind == "image_url":
            image = part.get("image_url")
            if not isinstance(image, dict) or not isinstance(image.get("url"), str):
                raise missing(f"input[{i}].image_url.url")
            kinds.add("image")
        elif kind is None:
            raise missing(f"input[{i}].type")
        else:
            raise Invalid(invalid(f"Invalid value: '{kind}'. Supported values are: 'text' and 'image_url'.",
                                  param=f"input[{i}].type", code="invalid_value"))
    return "\n".join(texts), tuple(k for k in ("text", "image") if k in kinds)
