"""Legacy completions (`POST /v1/completions`): `text_completion` objects, streamed or not.

Streamed chunks are the same object as the plain response (`object: text_completion`), with
`finish_reason: null` until the last; then `data: [DONE]`, as on chat."""

from __future__ import annotations

from typing import Any

from ..options import CompletionOptions
from ..plan import Plan, Usage
from . import sse
from .chat import fingerprint
from .text import split

FINISH_REASONS = ("stop", "length", "content_filter")


def usage_object(usage: Usage) -> dict[str, Any]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


def _text(plan: Plan) -> str:
    assert plan.reply is not None
    return plan.reply.content or ""  # a reply of tool calls only has no text here


def _finish(plan: Plan) -> str:
    assert plan.reply is not None
    return plan.reply.finish_reason if plan.reply.finish_reason in FINISH_REASONS else "stop"


def _head(plan: Plan) -> dict[str, Any]:
    return {"id": plan.id, "object": "text_completion", "created": plan.created, "model": plan.model}


def completion(plan: Plan) -> dict[str, Any]:
    assert plan.usage is not None
    echo = plan.options_of(CompletionOptions).echo or ""
    return {**_head(plan),
            "choices": [{"text": echo + _text(plan), "index": 0, "logprobs": None, "finish_reason": _finish(plan)}],
            "usage": usage_object(plan.usage), "system_fingerprint": fingerprint(plan.model)}


def chunks(plan: Plan) -> list[dict[str, Any]]:
    """The prompt when echoed, the text piece by piece, a closing chunk, the usage chunk if asked."""
    assert plan.usage is not None
    options = plan.options_of(CompletionOptions)
    pieces = ([options.echo] if options.echo else []) + split(_text(plan), plan.chunking)
    ends = [None] * len(pieces) + [_finish(plan)]
    result = [{**_head(plan), "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": end}],
               "system_fingerprint": fingerprint(plan.model)} for text, end in zip(pieces + [""], ends, strict=True)]
    if options.include_usage:  # `usage` is left out of the others: the spec does not allow null
        result.append({**_head(plan), "choices": [], "usage": usage_object(plan.usage),
                       "system_fingerprint": fingerprint(plan.model)})
    return result


def stream(plan: Plan) -> sse.StreamBody:
    return sse.stream_body(plan, tuple(sse.data(chunk) for chunk in chunks(plan)), sse.DONE)
