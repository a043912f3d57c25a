"""`POST /v1/completions` (legacy completions) bodies to engine requests: one prompt, matched as
one user message."""

from __future__ import annotations

from typing import Any

from ..conversation import Message
from ..engine import Request
from ..options import CompletionOptions
from ..wire.errors import invalid
from .checks import (
    SAMPLING,
    SEED,
    STOP,
    Bool,
    Check,
    Int,
    Invalid,
    LogitBias,
    Obj,
    Str,
    check_fields,
    is_tokens,
    wrong_type,
)
from .fields import Fields

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


def parse(body: dict[str, Any], session: str) -> Request:
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
    if is_tokens(value):
        return " ".join(map(str, value))
    if len(value) == 1 and (isinstance(value[0], str) or is_tokens(value[0])):
        return _prompt(value[0])
    if not value:
        raise Invalid(invalid("Invalid 'prompt': empty array. Expected an array with minimum length 1, but got "
                              "an empty array instead.", param="prompt", code="empty_array"))
    raise Invalid(invalid("openai-mock answers one prompt per request: send the prompts of this batch one "
                          "request at a time.", param="prompt"))
