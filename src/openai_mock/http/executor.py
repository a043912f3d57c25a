"""The executor: carries a Plan out over HTTP. Waits, frames and faults happen here, the same
way for every endpoint; what the frames say was decided by the engine and the encoders.

It answers with an `HTTPReply` (status, headers, a body or a stream of frames), which the
router sends (`router.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import trio

from ..journal import Entry, Journal
from ..plan import Plan
from ..scenario.model import ErrorSpec
from ..wire import sse
from ..wire.errors import error_body, error_object
from . import timers
from .transport import Connection

JSON = "application/json"
EVENT_STREAM = "text/event-stream; charset=utf-8"


@attrs.frozen
class Encoder:
    """An endpoint's encoders: the whole object for a plain response, the frames for a stream
    (None for an endpoint that never streams: its plans never ask for a stream)."""

    body: Callable[[Plan], Any]
    stream: Callable[[Plan], sse.StreamBody] | None = None


@attrs.frozen
class HTTPReply:
    """A response to send: a whole body, or (`stream`) frames that are sent as they come."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None


def json_response(value: Any, status: int = 200, headers: Any = ()) -> HTTPReply:
    return HTTPReply(status, [("content-type", JSON), *headers], sse.dumps(value))


def error_response(plan: Plan, headers: Any = ()) -> HTTPReply:
    """The plan's error as the real API sends it (or the configured raw body)."""
    spec = plan.error
    assert spec is not None
    merged = _merge(plan.headers + tuple(headers), spec.headers)
    if spec.body is not None:
        content_type = spec.content_type or "text/html; charset=utf-8"
        return HTTPReply(spec.status, [("content-type", content_type), *merged], spec.body.encode())
    return json_response(error_body(spec, plan.model), spec.status, merged)


def error_message(spec: ErrorSpec, model: str | None = None) -> str:
    """What the journal says of an error: the message the client got."""
    if spec.body is not None:
        return f"(a raw {spec.content_type or 'text/html'} body)"
    return error_object(spec, model)["message"]


def _merge(*layers: Any) -> list[tuple[str, str]]:
    merged: dict[str, tuple[str, str]] = {}
    for layer in layers:
        for name, value in layer:
            merged[name.lower()] = (name, value)
    return list(merged.values())


async def respond(plan: Plan, encoder: Encoder, connection: Connection | None, entry: Entry,
                  journal: Journal, direct: bool = False) -> HTTPReply:
    """Wait, then send the plan's response; the journal entry follows what really happened."""
    entry.rule_id, entry.step, entry.stream = plan.rule_id, plan.step, plan.stream
    latency, _ = plan.timing.waits(0)
    try:
        if latency:
            await timers.sleep(latency)
        if plan.error is not None:
            entry.status = plan.error.status
            entry.error = error_message(plan.error, plan.model)
            journal.finish(entry, "error")
            return error_response(plan)
        if plan.fails_before_headers:
            await _strike(plan, connection, entry, journal)
            return HTTPReply(200, [])  # never reaches the client: the connection is gone
    except BaseException:
        journal.finish(entry, "client_disconnected")
        raise
    entry.status = 200
    if not plan.stream:
        return _plain(plan, encoder, entry, journal)
    assert encoder.stream is not None
    frames = _stream(plan, encoder.stream(plan), connection, direct, entry, journal)
    return HTTPReply(200, [("content-type", EVENT_STREAM), *plan.headers], stream=frames)


async def _strike(plan: Plan, connection: Connection | None, entry: Entry, journal: Journal) -> None:
    """A failure with nothing sent: drop, reset, or hang and then drop."""
    if plan.failure == "hang":
        await _hang(plan)
    journal.finish(entry, f"failed:{plan.failure}")
    await _cut(plan.failure, connection)


async def _hang(plan: Plan) -> None:
    if plan.timing.hang_ms is None:
        await trio.sleep_forever()  # until the client leaves: trio.Cancelled
    await trio.sleep(plan.timing.hang_ms / 1000)


async def _cut(failure: str | None, connection: Connection | None) -> None:
    if connection is None:  # pragma: no cover - only when served without our transport
        raise RuntimeError("connection faults need openai_mock's transport")
    if failure == "reset":
        await connection.reset()
    else:
        connection.drop()


def _plain(plan: Plan, encoder: Encoder, entry: Entry, journal: Journal) -> HTTPReply:
    body = sse.dumps(encoder.body(plan))
    outcome = "completed"
    if plan.failure == "truncate":  # the body ends cleanly before anything was in it
        body, outcome = b"", "failed:truncate"
    elif plan.failure == "malformed":
        body, outcome = body[: len(body) // 2], "failed:malformed"
    journal.finish(entry, outcome)
    return HTTPReply(200, [("content-type", JSON), *plan.headers], body)


async def _stream(plan: Plan, body: sse.StreamBody, connection: Connection | None, direct: bool,
                  entry: Entry, journal: Journal) -> AsyncIterator[bytes]:
    """The body of a stream. With `direct`, chunks go straight to the connection (see
    `Connection.send_chunk`); else they are yielded to Quart, which sends them the long way."""
    send = connection.send_chunk if direct and connection is not None else None
    frames = body.frames
    count = len(frames) if plan.failure is None else min(plan.fail_after or 0, len(frames))
    _, waits = plan.timing.waits(count)
    try:
        for frame, wait in zip(frames[:count], waits, strict=True):
            if wait:
                await timers.sleep(wait)  # (a shared timer: see timers.py)
            elif send is not None:
                await trio.lowlevel.checkpoint()  # a direct send may not yield: let others run
            if send is None:
                yield frame
            else:
                await send(frame)
            entry.chunks_sent += 1
        if plan.failure is None:
            journal.finish(entry, "completed")
            last = (body.done,)
        else:
            if plan.failure == "hang":
                await _hang(plan)
            journal.finish(entry, f"failed:{plan.failure}")
            if plan.failure in ("disconnect", "reset", "hang"):
                await _cut(plan.failure, connection)
                return
            last = body.tail  # malformed, error_event; truncate has none
        for frame in last:
            if not frame:
                continue
            if send is None:
                yield frame
            else:
                await send(frame)
    except BaseException:  # trio.Cancelled or GeneratorExit: the client left first
        journal.finish(entry, "client_disconnected")
        raise
