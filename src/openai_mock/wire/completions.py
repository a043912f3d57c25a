"""Legacy completions (`POST /v1/completions`): `text_completion` objects, streamed or not.

Streamed chunks are the same object as the plain response (`object: text_completion`), with
`finish_reason: null` until the last; then `data: [DONE]`, as on chat."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from ..options import CompletionOptions
from ..plan import Plan, Usage
from . import sse
from .chat import fingerprint
from .text import pieces

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


def _pieces(plan: Plan) -> tuple[list[str], Sequence[str]]:
    """The prompt when echoed, then the text piece by piece."""
    echo = plan.options_of(CompletionOptions).echo
    return [echo] if echo else [], pieces(_text(plan), plan.chunking)


def _chunks(plan: Plan, echoed: list[str], found: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The chunks, each made as it is reached: the pieces, a closing chunk, the usage chunk if asked."""
    assert plan.usage is not None
    head, fingerprinted = _head(plan), fingerprint(plan.model)
    for text in itertools.chain(echoed, found):
        yield {**head, "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": None}],
               "system_fingerprint": fingerprinted}
    yield {**head, "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": _finish(plan)}],
           "system_fingerprint": fingerprinted}
    if plan.options_of(CompletionOptions).include_usage:  # `usage` is left out of the others: the spec does not allow null
        yield {**head, "choices": [], "usage": usage_object(plan.usage), "system_fingerprint": fingerprinted}


def chunks(plan: Plan) -> list[dict[str, Any]]:
    """Every chunk of the stream, in order."""
    return list(_chunks(plan, *_pieces(plan)))


def stream(plan: Plan) -> sse.StreamBody:
    echoed, found = _pieces(plan)
    count = len(echoed) + len(found) + 1 + plan.options_of(CompletionOptions).include_usage
    frames = sse.Frames(count, lambda: map(sse.data, _chunks(plan, echoed, found)))
    return sse.stream_body(plan, frames, sse.DONE)
