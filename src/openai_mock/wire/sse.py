"""Server-sent events framing, and the body of a stream as frames."""

from __future__ import annotations

import json
from typing import Any

import attrs

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
