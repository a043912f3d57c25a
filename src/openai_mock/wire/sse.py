"""Server-sent events framing, and the body of a stream as frames, each made as it is sent."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

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
    return b"".join((b"data: ", dumps(value), b"\n\n"))  # (one copy of a long payload, not two)


def event(name: str, value: Any) -> bytes:
    return b"".join((b"event: ", name.encode(), b"\ndata: ", dumps(value), b"\n\n"))


def cut_in_half(frame: bytes) -> bytes:
    """The same event with its JSON cut in half: a malformed event."""
    head, _, rest = frame.partition(b"data: ")
    payload = rest.rstrip(b"\n")
    return head + b"data: " + payload[: max(1, len(payload) // 2)] + b"\n\n"


class Frames(Sequence[bytes]):
    """The frames of a stream, made as they are sent: how many there are is known before any is
    made, and each is encoded when it is reached (a long reply's frames never exist together).
    `make()` gives them in order, `count` of them; indexing makes the frames up to the one asked."""

    def __init__(self, count: int, make: Callable[[], Iterator[bytes]]):
        self._count = count
        self._make = make

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[bytes]:
        return self._make()

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[bytes, ...]: ...

    def __getitem__(self, index: int | slice) -> bytes | tuple[bytes, ...]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._count)
            if step < 0:
                return tuple(self)[index]
            return tuple(itertools.islice(self, start, stop, step))
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        return next(itertools.islice(self, index, None))


def _nothing(following: bytes) -> tuple[bytes, ...]:
    return ()


@attrs.frozen
class StreamBody:
    """A stream, ready to send: its chunk frames, what closes a complete stream, and what the
    plan's failure sends after its `fail_after` chunks (its `Tail`): `tail(following)`, given the
    frame that would have come next (the last one, when every frame was sent)."""

    frames: Sequence[bytes]
    done: bytes = b""
    tail: Callable[[bytes], tuple[bytes, ...]] = _nothing


def stream_body(plan: Plan, frames: Sequence[bytes], done: bytes,
                error_frames: Callable[[int], tuple[bytes, ...]] | None = None) -> StreamBody:
    """`frames` ready to send, with the tail of the plan's failure after the chunks it lets
    through: `Tail.MALFORMED`, the next frame cut in half; `Tail.ERROR`, the endpoint's error
    frames (`error_frames(sent)`; by default one `data: {"error": {...}}` event)."""
    failure = plan.failure
    if failure is None or failure.tail is Tail.NOTHING:
        return StreamBody(frames=frames, done=done)
    if failure.tail is Tail.MALFORMED:
        return StreamBody(frames=frames, done=done, tail=lambda following: (cut_in_half(following),))
    if error_frames is not None:
        sent = min(plan.fail_after or 0, len(frames))
        return StreamBody(frames=frames, done=done, tail=lambda following: error_frames(sent))
    tail = (data(error_body(plan.stream_error or ErrorSpec(status=500), plan.model)),)
    return StreamBody(frames=frames, done=done, tail=lambda following: tail)


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
