"""The Responses API: the `response` object and its event stream.

Shapes follow real gpt-5 captures (event order, `sequence_number` from 0, no `[DONE]`), made to
pass OpenAI's published schemas where those are stricter than the captures: `user` and `usage`
are left out rather than sent as null, `input_tokens_details.cache_write_tokens` and the `name`
of `function_call_arguments.done` are sent, and the `error` event carries both the nested
`error` object the real API sends (which makes every SDK raise) and the flat fields of the spec.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from ..failures import Tail
from ..options import ResponsesOptions
from ..plan import ALNUM, Plan, Usage
from ..scenario.model import ErrorSpec, Reply
from . import recorded, sse
from .errors import error_object
from .text import pieces

# the codes `response.error.code` may take (spec `ResponseErrorCode`); others map by status
RESPONSE_ERROR_CODES = frozenset((
    "server_error", "rate_limit_exceeded", "invalid_prompt", "data_residency_mismatch", "bio_policy",
    "vector_store_timeout", "invalid_image", "invalid_image_format", "invalid_base64_image",
    "invalid_image_url", "image_too_large", "image_too_small", "image_parse_error",
    "image_content_policy_violation", "invalid_image_mode", "image_file_too_large",
    "unsupported_image_media_type", "empty_image_file", "failed_to_download_image", "image_file_not_found",
))


# --- the response object ----------------------------------------------------------------------


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def _ending(reply: Reply) -> tuple[str, dict[str, str] | None]:
    """(status, incomplete_details) for how the reply finished."""
    if reply.finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if reply.finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def snapshot(plan: Plan, status: str, output: list[dict[str, Any]], *, error: Any = None,
             incomplete: Any = None, service_tier: str = "default") -> dict[str, Any]:
    """The response object as it stands: `usage` only once it is known (the spec forbids null)."""
    o = plan.options_of(ResponsesOptions)
    body: dict[str, Any] = {
        "id": plan.id, "object": "response", "created_at": plan.created, "status": status,
        "background": o.background, "completed_at": plan.created if status == "completed" else None,
        "error": error, "incomplete_details": incomplete, "instructions": o.instructions,
        "max_output_tokens": o.max_output_tokens, "max_tool_calls": o.max_tool_calls, "model": plan.model,
        "output": output, "parallel_tool_calls": o.parallel_tool_calls,
        "previous_response_id": o.previous_response_id, "prompt_cache_key": o.prompt_cache_key,
        "reasoning": o.reasoning, "safety_identifier": o.safety_identifier, "service_tier": service_tier,
        "store": o.store, "temperature": o.temperature, "text": o.text, "tool_choice": o.tool_choice,
        "tools": list(o.tools), "top_logprobs": o.top_logprobs, "top_p": o.top_p, "truncation": o.truncation,
    }
    if status in ("completed", "incomplete"):
        assert plan.usage is not None
        body["usage"] = usage_object(plan.usage)
    if o.user is not None:
        body["user"] = o.user
    body["metadata"] = o.metadata
    return body


@attrs.frozen
class _Item:
    """One output item of the reply: a message (text or refusal) or a function call."""

    kind: str  # message | function_call
    id: str
    text: str = ""  # the message's text or refusal, the call's arguments
    refusal: bool = False
    call_id: str = ""
    name: str = ""


def _items(plan: Plan) -> list[_Item]:
    reply = plan.reply
    assert reply is not None
    message_id, call_ids = plan.output_item_ids()
    items = []
    if message_id is not None:
        refused = reply.content is None and reply.refusal is not None
        items.append(_Item("message", message_id, text=(reply.refusal if refused else reply.content) or "",
                           refusal=refused))
    for call, call_id in zip(reply.tool_calls, call_ids):
        items.append(_Item("function_call", call_id, text=call.arguments, call_id=call.id, name=call.name))
    return items


def _part(item: _Item, text: str) -> dict[str, Any]:
    if item.refusal:
        return {"type": "refusal", "refusal": text}
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _item_object(item: _Item, status: str, done: bool) -> dict[str, Any]:
    if item.kind == "message":
        content = [_part(item, item.text)] if done else []
        return {"id": item.id, "type": "message", "status": status, "content": content, "role": "assistant"}
    return {"id": item.id, "type": "function_call", "status": status, "arguments": item.text if done else "",
            "call_id": item.call_id, "name": item.name}


def body(plan: Plan) -> dict[str, Any]:
    """The non-streamed response object."""
    assert plan.reply is not None
    status, incomplete = _ending(plan.reply)
    item_status = "incomplete" if status == "incomplete" else "completed"
    output = [_item_object(item, item_status, done=True) for item in _items(plan)]
    return snapshot(plan, status, output, incomplete=incomplete)


def failed(plan: Plan) -> dict[str, Any]:
    """The response object of a response that failed with the plan's stream error."""
    spec = plan.stream_error or ErrorSpec(status=500)
    inner = error_object(spec, plan.model)
    code = inner["code"] if inner["code"] in RESPONSE_ERROR_CODES else (
        "rate_limit_exceeded" if spec.status == 429 else "server_error")
    return snapshot(plan, "failed", [], error={"code": code, "message": inner["message"]})


def retrieve(plan: Plan) -> dict[str, Any]:
    """What `GET /v1/responses/{id}` returns for a stored response."""
    if plan.recorded is not None:  # (as recorded: the response object it ended with)
        found = recorded.response_object(plan.recorded)
        if found is not None:
            return found
    if plan.stream and plan.failure is not None and plan.failure.tail is Tail.ERROR:
        return failed(plan)
    return body(plan)


# --- the stream -------------------------------------------------------------------------------


def deleted(response_id: str) -> dict[str, Any]:
    """What `DELETE /v1/responses/{id}` answers."""
    return {"id": response_id, "object": "response.deleted", "deleted": True}


def _count(items: list[tuple[_Item, Sequence[str]]]) -> int:
    """How many events `_events` gives: created, in_progress, each item's (a message: added,
    part added, its deltas, text done, part done, done; a call: added, its deltas, arguments
    done, done), and the last."""
    return 3 + sum(len(found) + (5 if item.kind == "message" else 3) for item, found in items)


def _events(plan: Plan, items: list[tuple[_Item, Sequence[str]]]) -> Iterator[dict[str, Any]]:
    """Every event of the stream, in order, numbered from 0, each made as it is reached."""
    assert plan.reply is not None
    options = plan.options_of(ResponsesOptions)
    rng = random.Random(plan.seed)

    def padded(event: dict[str, Any]) -> dict[str, Any]:
        if options.include_obfuscation:  # the real API pads deltas to hide their length
            event["obfuscation"] = "".join(rng.choices(ALNUM, k=rng.randint(1, 16)))
        return event

    status, incomplete = _ending(plan.reply)
    item_status = "incomplete" if status == "incomplete" else "completed"
    number = itertools.count()
    for kind in ("response.created", "response.in_progress"):
        yield {"type": kind, "sequence_number": next(number), "response": snapshot(plan, "in_progress", [],
                                                                                   service_tier="auto")}
    output = []
    for index, (item, found) in enumerate(items):
        where = {"item_id": item.id, "output_index": index}
        yield {"type": "response.output_item.added", "sequence_number": next(number), "output_index": index,
               "item": _item_object(item, "in_progress", done=False)}
        if item.kind == "message":
            at = {**where, "content_index": 0}
            yield {"type": "response.content_part.added", "sequence_number": next(number), **at,
                   "part": _part(item, "")}
            if item.refusal:
                for piece in found:
                    yield {"type": "response.refusal.delta", "sequence_number": next(number), **at, "delta": piece}
                yield {"type": "response.refusal.done", "sequence_number": next(number), **at, "refusal": item.text}
            else:
                for piece in found:
                    yield padded({"type": "response.output_text.delta", "sequence_number": next(number), **at,
                                  "delta": piece, "logprobs": []})
                yield {"type": "response.output_text.done", "sequence_number": next(number), **at, "text": item.text,
                       "logprobs": []}
            yield {"type": "response.content_part.done", "sequence_number": next(number), **at,
                   "part": _part(item, item.text)}
        else:
            for piece in found:
                yield padded({"type": "response.function_call_arguments.delta", "sequence_number": next(number),
                              **where, "delta": piece})
            yield {"type": "response.function_call_arguments.done", "sequence_number": next(number), **where,
                   "name": item.name, "arguments": item.text}
        done = _item_object(item, item_status, done=True)
        output.append(done)
        yield {"type": "response.output_item.done", "sequence_number": next(number), "output_index": index, "item": done}
    terminal = "response.completed" if status == "completed" else "response.incomplete"
    yield {"type": terminal, "sequence_number": next(number),
           "response": snapshot(plan, status, output, incomplete=incomplete)}


def _split_items(plan: Plan) -> list[tuple[_Item, Sequence[str]]]:
    return [(item, pieces(item.text, plan.chunking)) for item in _items(plan)]


def events(plan: Plan) -> list[dict[str, Any]]:
    """Every event of the stream, in order, numbered from 0."""
    return list(_events(plan, _split_items(plan)))


def frame(event: dict[str, Any]) -> bytes:
    return sse.event(event["type"], event)


def error_events(plan: Plan, first: int) -> list[dict[str, Any]]:
    """An `error` event and `response.failed`, numbered from `first`."""
    spec = plan.stream_error or ErrorSpec(status=500)
    inner = error_object(spec, plan.model)
    error = {"type": "error", "sequence_number": first, "error": inner,
             "code": inner["code"], "message": inner["message"], "param": inner["param"]}
    return [error, {"type": "response.failed", "sequence_number": first + 1, "response": failed(plan)}]


def stream(plan: Plan) -> sse.StreamBody:
    """Events, no [DONE], each made as it is sent; a failure's error frames are `error` then
    `response.failed`."""
    items = _split_items(plan)
    frames = sse.Frames(_count(items), lambda: map(frame, _events(plan, items)))
    return sse.stream_body(plan, frames, b"", lambda sent: tuple(frame(event) for event in error_events(plan, sent)))
