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

from ..failures import Cut, Failure
from ..journal import CLIENT_DISCONNECTED, COMPLETED, ERROR, Entry, Journal
from ..plan import Plan, merge_headers
from ..scenario.model import ErrorSpec
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


@attrs.frozen
class Encoder:
    """An endpoint's encoders: the whole object for a plain response, the frames for a stream
    (None for an endpoint that never streams: its plans never ask for a stream)."""

    body: Callable[[Plan], Any]
    stream: Callable[[Plan], sse.StreamBody] | None = None


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
    latency, _ = plan.timing.waits(0)
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
    if not plan.stream:
        body = sse.dumps(encoder.body(plan)) if recorded is None else recorded_wire.body(plan)
        failure = plan.failure
        if failure is None:
            journal.finish(entry, COMPLETED)
        else:  # (one that strikes after the head: its tail alone, and the body ends cleanly)
            assert failure.cut is Cut.END and not failure.hangs, failure
            body = sse.whole_body(failure, body)
            journal.fail(entry, failure)
        return HTTPReply(status, _head(JSON, plan), body)
    assert encoder.stream is not None
    stream = encoder.stream(plan) if recorded is None else recorded_wire.stream(plan)

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
    await journal.settle()  # (written before the client can see how it ended)
    for frame in tail:
        await connection.send_chunk(frame)
    if failure.cut is Cut.FIN:
        connection.drop()
    elif failure.cut is Cut.RST:
        await connection.reset()


async def _stream(plan: Plan, body: sse.StreamBody, connection: Connection, entry: Entry,
                  journal: Journal) -> None:
    """The chunks of a stream, each after its wait, then its end or its failure. The waits are
    on the shared timer, which sends the chunks after them itself when the connection takes them
    at once (see timers.py); the others are sent here."""
    send = connection.send_chunk
    frames = body.frames
    failure = plan.failure
    count = len(frames) if failure is None else min(plan.fail_after or 0, len(frames))
    _, waits = plan.timing.waits(count)

    def send_now(frame: bytes) -> bool:
        if connection.send_chunk_now(frame):
            entry.chunks_sent += 1
            return True
        return False

    try:
        index = 0
        while index < count:
            if waits[index]:
                index = await timers.shared().pace(frames, waits, index, count, send_now)
                if index == count:
                    break
                if not waits[index]:
                    continue  # (its wait is zero: below)
            else:
                await trio.lowlevel.checkpoint()  # a send may not yield: let others run
            await send(frames[index])
            entry.chunks_sent += 1
            index += 1
        if failure is None:
            journal.finish(entry, COMPLETED)
            await journal.settle()  # (written before the client can see the end)
            if plan.timing.tail_ms:  # (a recorded stream: the wait before its `[DONE]`)
                await timers.sleep(plan.timing.tail_ms / 1000)
            await send(body.done)
        else:
            await _fail(plan, failure, body.tail, connection, entry, journal)
    except BaseException:  # trio.Cancelled: the client left first
        journal.finish(entry, CLIENT_DISCONNECTED)
        raise
