"""Server-sent events framing, and the body of a stream as frames."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs

from ..failures import Failure, Tail
from ..plan import Plan
from ..scenario.model import ErrorSpec
from .errors import error_body

DONE = b"data: [DONE]\n\n"


def dumps(value: Any) -> bytes:
    """Compact JSON, as the real API sends it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def data(value: Any) -> bytes:
    return b"data: " + dumps(value) + b"\n\n"


def event(name: str, value: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(value) + b"\n\n"


def cut_in_half(frame: bytes) -> bytes:
    """The same event with its JSON cut in half: a malformed event."""
    head, _, rest = frame.partition(b"data: ")
    payload = rest.rstrip(b"\n")
    return head + b"data: " + payload[: max(1, len(payload) // 2)] + b"\n\n"


@attrs.frozen
class StreamBody:
    """A stream, ready to send: every chunk frame, what closes a complete stream, and what the
    plan's failure sends after its `fail_after` chunks (its `Tail`)."""

    frames: tuple[bytes, ...]
    done: bytes = b""
    tail: tuple[bytes, ...] = ()


def stream_body(plan: Plan, frames: tuple[bytes, ...], done: bytes,
                error_frames: Callable[[int], tuple[bytes, ...]] | None = None) -> StreamBody:
    """`frames` ready to send, with the tail of the plan's failure after the chunks it lets
    through: `Tail.MALFORMED`, the next frame cut in half; `Tail.ERROR`, the endpoint's error
    frames (`error_frames(sent)`; by default one `data: {"error": {...}}` event)."""
    failure = plan.failure
    if failure is None or failure.tail is Tail.NOTHING:
        return StreamBody(frames=frames, done=done)
    sent = min(plan.fail_after or 0, len(frames))
    tail: tuple[bytes, ...]
    if failure.tail is Tail.MALFORMED:
        tail = (cut_in_half(frames[sent] if sent < len(frames) else frames[-1]),)
    elif error_frames is not None:
        tail = error_frames(sent)
    else:
        tail = (data(error_body(plan.stream_error or ErrorSpec(status=500), plan.model)),)
    return StreamBody(frames=frames, done=done, tail=tail)


def whole_body(failure: Failure | None, body: bytes) -> bytes:
    """A response that is not streamed, as its failure leaves it: a stream of one frame with
    nothing let through, so its tail alone (`Tail.ERROR` never gets here: without a stream, the
    engine makes it an HTTP error)."""
    if failure is None:
        return body
    if failure.tail is Tail.MALFORMED:
        return body[: len(body) // 2]
    assert failure.tail is Tail.NOTHING, failure
    return b""
