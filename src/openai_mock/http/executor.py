"""The executor: carries a Plan out over HTTP. Waits, frames and faults happen here, the same
way for every endpoint; what the frames say was decided by the engine and the encoders, and what
a failure does is its row in `failures.py`.

It answers with an `HTTPReply` (status, headers, a body or a stream), which the router sends
(`router.py`). A stream's chunks, and every fault, go through the request's `Connection`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import attrs
import trio

from .. import heavy
from ..failures import Cut, Failure
from ..journal import CLIENT_DISCONNECTED, COMPLETED, ERROR, Entry, Journal
from ..plan import Plan, merge_headers
from ..scenario.model import ErrorSpec
from ..tokens import LONG
from ..wire import recorded as recorded_wire
from ..wire import sse
from ..wire.errors import error_body, error_object
from . import timers

JSON = "application/json"
EVENT_STREAM = "text/event-stream; charset=utf-8"


class Connection(Protocol):
    """The client connection a response goes out on (`transport.Connection` is the real one)."""

    def drop(self) -> None:
        """Close the connection where it stands (FIN), after what was already sent."""

    async def reset(self) -> None:
        """Abort the connection with a TCP RST, once what was sent has left."""

    async def send_chunk(self, data: bytes) -> None:
        """Send one piece of a streamed body (nothing, for empty `data`), between the response's
        head and its end."""

    def send_chunk_now(self, data: bytes) -> bool:
        """Send one piece of a streamed body without waiting, if the connection takes it at once:
        True when it went out whole. False when it did not: `send_chunk(data)` (the same data)
        must then be awaited before anything else is sent, and sends it (or what is left of it)."""

    def corked(self) -> AbstractAsyncContextManager[None]:
        """A block whose writes leave together, in one send."""


def _long_reply(plan: Plan) -> bool:
    return plan.text_size() >= LONG


@attrs.frozen
class Encoder:
    """An endpoint's encoders: the whole object for a plain response (or its bytes, written
    directly: `raw`), the frames for a stream (None for an endpoint that never streams: its plans
    never ask for a stream). `large(plan)`: whether encoding takes long enough (a reply of
    megabytes) to be done in a worker thread, where it does not hold up other clients."""

    body: Callable[[Plan], Any]
    stream: Callable[[Plan], sse.StreamBody] | None = None
    raw: Callable[[Plan], bytes] | None = None
    large: Callable[[Plan], bool] = _long_reply

    def encode(self, plan: Plan) -> bytes:
        """The plain response's body."""
        return self.raw(plan) if self.raw is not None else sse.dumps(self.body(plan))


@attrs.frozen
class HTTPReply:
    """A response to send: a whole body, or a `stream`, which sends the body's chunks through
    the connection once the head is sent, and returns before the body's end is sent."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    stream: Callable[[], Awaitable[None]] | None = None


def json_response(value: Any, status: int = 200, headers: Any = ()) -> HTTPReply:
    return HTTPReply(status, [("content-type", JSON), *headers], sse.dumps(value))


def error_response(plan: Plan, headers: Any = ()) -> HTTPReply:
    """The plan's error as the real API sends it (or the configured raw body)."""
    spec = plan.error
    assert spec is not None
    merged = merge_headers(plan.headers + tuple(headers), spec.headers)
    if spec.body is not None:
        content_type = spec.content_type or "text/html; charset=utf-8"
        return HTTPReply(spec.status, [("content-type", content_type), *merged], spec.body.encode())
    return json_response(error_body(spec, plan.model), spec.status, merged)


def error_message(spec: ErrorSpec, model: str | None = None) -> str:
    """What the journal says of an error: the message the client got."""
    if spec.body is not None:
        return f"(a raw {spec.content_type or 'text/html'} body)"
    message: str = error_object(spec, model)["message"]
    return message


async def respond(plan: Plan, encoder: Encoder, connection: Connection, entry: Entry,
                  journal: Journal) -> HTTPReply:
    """Wait, then send the plan's response; the journal entry follows what really happened."""
    entry.rule_id, entry.step, entry.stream = plan.rule_id, plan.step, plan.stream
    latency = plan.timing.latency()
    try:
        if latency:
            await timers.sleep(latency)
        if plan.error is not None:
            entry.status = plan.error.status
            entry.error = error_message(plan.error, plan.model)
            journal.finish(entry, ERROR)
            return error_response(plan)
        if plan.fails_before_headers:
            assert plan.failure is not None
            await _fail(plan, plan.failure, (), connection, entry, journal)
            return HTTPReply(200, [])  # never reaches the client: the connection is gone
    except BaseException:
        journal.finish(entry, CLIENT_DISCONNECTED)
        raise
    recorded = plan.recorded  # (an answer as recorded: its own bytes, status and headers)
    status = entry.status = 200 if recorded is None else recorded.status
    large = recorded is None and encoder.large(plan)  # (megabytes: encoded off the event loop)
    if not plan.stream:
        if recorded is not None:
            body = recorded_wire.body(plan)
        elif large:
            body = await heavy.run(encoder.encode, plan)
        else:
            body = encoder.encode(plan)
        failure = plan.failure
        if failure is None:
            journal.finish(entry, COMPLETED)
        else:  # (one that strikes after the head: its tail alone, and the body ends cleanly)
            assert failure.cut is Cut.END and not failure.hangs, failure
            body = sse.whole_body(failure, body)
            journal.fail(entry, failure)
        return HTTPReply(status, _head(JSON, plan), body)
    assert encoder.stream is not None
    if recorded is not None:
        stream = recorded_wire.stream(plan)
    elif large:  # (its pieces counted off the event loop; its frames are made as they are sent)
        stream = await heavy.run(encoder.stream, plan)
    else:
        stream = encoder.stream(plan)

    async def send_stream() -> None:
        await _stream(plan, stream, connection, entry, journal)

    return HTTPReply(status, _head(EVENT_STREAM, plan), stream=send_stream)


def _head(content_type: str, plan: Plan) -> list[tuple[str, str]]:
    """The content type and the plan's headers (a recorded answer's own content type wins)."""
    if plan.recorded is None:
        return [("content-type", content_type), *plan.headers]
    return merge_headers([("content-type", content_type)], plan.headers)


async def _fail(plan: Plan, failure: Failure, tail: tuple[bytes, ...], connection: Connection, entry: Entry,
                journal: Journal) -> None:
    """What the failure does once the chunks it lets through are sent (none, before the head):
    wait if it hangs, send its tail, then end the body or cut the connection."""
    if failure.hangs:
        if plan.timing.hang_ms is None:
            await trio.sleep_forever()  # until the client leaves: trio.Cancelled
        await trio.sleep(plan.timing.hang_ms / 1000)
    journal.fail(entry, failure)
    await journal.ending()  # (written, or on its way, before the client can see how it ended)
    for frame in tail:
        await connection.send_chunk(frame)
    if failure.cut is Cut.FIN:
        connection.drop()
    elif failure.cut is Cut.RST:
        await connection.reset()


async def _stream(plan: Plan, body: sse.StreamBody, connection: Connection, entry: Entry,
                  journal: Journal) -> None:
    """The chunks of a stream, each made and sent after its wait, then its end or its failure.
    The waits are on the shared timer, which also makes and sends the chunks after them itself
    when the connection takes them at once (`Timers.pace`, see timers.py); the others are sent
    here."""
    send = connection.send_chunk
    failure = plan.failure
    count = len(body.frames) if failure is None else min(plan.fail_after or 0, len(body.frames))
    frames = iter(body.frames)
    waits = plan.timing.chunk_waits(count)  # (a wait first: no frame is made past `count`)
    last = b""  # the last frame sent

    def send_now(frame: bytes) -> bool:
        nonlocal last
        if connection.send_chunk_now(frame):
            entry.chunks_sent += 1
            last = frame
            return True
        return False

    try:
        wait = next(waits, None)
        while wait is not None:
            if wait:
                unsent, wait = await timers.shared().pace(wait, waits, frames, send_now)
                if unsent is None:
                    continue  # (every chunk sent, or the next one's wait is zero)
                frame = unsent  # (its wait is over: due now)
            else:
                await trio.lowlevel.checkpoint()  # a send may not yield: let others run
                frame = next(frames)
            await send(frame)
            entry.chunks_sent += 1
            last = frame
            wait = next(waits, None)
        if failure is None:
            journal.finish(entry, COMPLETED)
            await journal.ending()  # (written, or on its way, before the client can see the end)
            if plan.timing.tail_ms:  # (a recorded stream: the wait before its `[DONE]`)
                await timers.sleep(plan.timing.tail_ms / 1000)
            await send(body.done)
        else:  # (the tail is told the frame that would have come next: the last one, after them all)
            await _fail(plan, failure, body.tail(next(frames, last)), connection, entry, journal)
    except BaseException:  # trio.Cancelled: the client left first
        journal.finish(entry, CLIENT_DISCONNECTED)
        raise
