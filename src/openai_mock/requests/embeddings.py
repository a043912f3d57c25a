"""`POST /v1/embeddings` bodies: what to embed, refusing what the real API refuses."""

from __future__ import annotations

from typing import Any

from .. import tokens
from ..conversation import Message
from ..engine import Request
from ..options import FIXED_DIMENSIONS, EmbeddingsRequest, Input, max_dimensions, native_dimensions
from ..wire.errors import invalid
from .checks import Enum, Invalid, is_tokens
from .fields import Fields

# the real API's words for any input it cannot embed (empty, mixed, too many)
BAD_EMBEDDING_INPUT = ("'$.input' is invalid. Please check the API reference: "
                       "https://platform.openai.com/docs/api-reference.")
MAX_EMBEDDING_INPUTS = 2048


def parse(body: dict[str, Any], session: str) -> Request:
    """What rules see of an embeddings request (each input a user message, token ids written out
    as numbers), and what is asked of the vectors. Only a recorded answer answers it; else the
    vectors are made up."""
    asked = embeddings(body)
    inputs = tuple(Message(role="user", content=item if isinstance(item, str) else " ".join(map(str, item)))
                   for item in asked.inputs)
    return Request(endpoint="embeddings", model=asked.model, conversation=inputs, session=session, options=asked)


def embeddings(body: dict[str, Any]) -> EmbeddingsRequest:
    fields = Fields(body)
    model = fields.model()
    inputs = _embedding_inputs(fields.required("input"))
    # float is the real API's default; the SDKs ask for base64 themselves
    encoding = fields.get("encoding_format", Enum(("float", "base64")), "float")
    dimensions = fields.integer("dimensions", 1, max_dimensions(model))
    if dimensions is not None and model in FIXED_DIMENSIONS:
        raise Invalid(invalid("This model does not support specifying dimensions.", param="dimensions"))
    fields.string("user")
    used = sum(max(1, tokens.count(item)) if isinstance(item, str) else len(item) for item in inputs)
    return EmbeddingsRequest(
        model=model, inputs=inputs, dimensions=dimensions or native_dimensions(model),
        encoding_format=encoding, prompt_tokens=used)


def _embedding_inputs(value: Any) -> tuple[Input, ...]:
    """A string, a list of strings, one list of token ids, or a list of them."""
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and 0 < len(value) <= MAX_EMBEDDING_INPUTS:
        if all(isinstance(v, str) and v for v in value):
            return tuple(value)
        if is_tokens(value):
            return (tuple(value),)
        if all(is_tokens(v) for v in value):
            return tuple(tuple(v) for v in value)
    raise Invalid(invalid(BAD_EMBEDDING_INPUT))
