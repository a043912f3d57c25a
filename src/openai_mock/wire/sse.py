"""Server-sent events framing, and the body of a stream as frames."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs

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
    """A stream, ready to send: every chunk frame, what closes a complete stream, and what a
    `malformed` or `error_event` failure sends after its `fail_after` chunks."""

    frames: tuple[bytes, ...]
    done: bytes = b""
    tail: tuple[bytes, ...] = ()


def stream_body(plan: Plan, frames: tuple[bytes, ...], done: bytes,
                error_frames: Callable[[int], tuple[bytes, ...]] | None = None) -> StreamBody:
    """`frames` ready to send, with what the plan's failure adds after the chunks it lets
    through: `malformed`, the next frame cut in half; `error_event`, the endpoint's error
    frames (`error_frames(sent)`; by default one `data: {"error": {...}}` event)."""
    tail: tuple[bytes, ...] = ()
    if plan.failure in ("malformed", "error_event"):
        sent = min(plan.fail_after or 0, len(frames))
        if plan.failure == "malformed":
            tail = (cut_in_half(frames[sent] if sent < len(frames) else frames[-1]),)
        elif error_frames is not None:
            tail = error_frames(sent)
        else:
            tail = (data(error_body(plan.stream_error or ErrorSpec(status=500), plan.model)),)
    return StreamBody(frames=frames, done=done, tail=tail)
