"""The executor (http/executor.py) with a fake connection, in virtual time (trio's MockClock,
autojump): every failure kind, streamed or not, and every timing key, as the exact sequence of
what went out on the connection and when. No sockets, no real sleeps.

Plans come from the engine and a scenario, frames from the chat encoder, as in the server."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from openai_mock.conversation import Message
from openai_mock.engine import Engine, Request
from openai_mock.failures import FAILURES, KINDS
from openai_mock.http import executor, timers
from openai_mock.journal import Entry, Journal
from openai_mock.options import ChatOptions
from openai_mock.plan import Plan
from openai_mock.scenario import load_text
from openai_mock.store.memory import MemoryStore
from openai_mock.wire import chat, responses, sse

REPLY = "one two three four five"  # streamed: the role, five words, the closing chunk
CHAT = executor.Encoder(body=chat.completion, stream=chat.stream)
ERROR_FRAME = (b'data: {"error":{"message":"Slow down","type":"tokens","param":null,'
               b'"code":"rate_limit_exceeded"}}\n\n')
ERROR_BODY = b'{"error":{"message":"Slow down","type":"tokens","param":null,"code":"rate_limit_exceeded"}}'


class FakeConnection:
    """Records what the executor does to the connection, with the virtual time."""

    def __init__(self) -> None:
        self.actions: list[tuple[Any, ...]] = []

    def log(self, *what: Any) -> None:
        self.actions.append((round(trio.current_time(), 9), *what))

    async def send_chunk(self, data: bytes) -> None:
        if data:
            self.log("send", data)

    def send_chunk_now(self, data: bytes) -> bool:
        if data:
            self.log("send", data)
        return True

    def drop(self) -> None:
        self.log("drop")

    async def reset(self) -> None:
        self.log("reset")

    @contextlib.asynccontextmanager
    async def corked(self) -> AsyncIterator[None]:
        yield


def plan_for(behaviour: str, stream: bool, seed: int = 1) -> Plan:
    """The engine's plan for a chat request answered by a rule with these behaviour keys."""
    keys = "".join(f"    {line}\n" for line in behaviour.strip().splitlines())
    config = load_text(f"responses:\n  - id: r\n    matcher: {{type: any}}\n    reply: {REPLY}\n{keys}")
    request = Request(endpoint="chat", model="gpt-4o", conversation=(Message(role="user", content="hi"),),
                      stream=stream, options=ChatOptions())
    engine = Engine(config, MemoryStore(), render=responses.retrieve, clock=lambda: 1_700_000_000.0)
    return trio.run(engine.plan, request, seed)


def execute(plan: Plan, give_up_after: float = math.inf) -> tuple[list[tuple[Any, ...]], Entry]:
    """Carry `plan` out as the router does: the reply's head (and whole body, when not
    streamed), then the stream, then the body's end. The client leaves after `give_up_after`
    virtual seconds."""
    connection, journal = FakeConnection(), Journal(MemoryStore())
    entry = journal.start("req_1", "POST", "/v1/chat/completions", "default")

    async def main() -> None:
        with trio.move_on_after(give_up_after):
            reply = await executor.respond(plan, CHAT, connection, entry, journal)
            connection.log("head", reply.status, reply.body)
            if reply.stream is not None:
                await reply.stream()
                connection.log("end")

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return connection.actions, entry


def sends(frames: tuple[bytes, ...], *times: float) -> list[tuple[Any, ...]]:
    return [(time, "send", frame) for time, frame in zip(times, frames, strict=True)]


def half_of(frame: bytes) -> bytes:
    """A frame with its JSON cut in half, as `malformed` sends it."""
    payload = frame.removeprefix(b"data: ").removesuffix(b"\n\n")
    return b"data: " + payload[: len(payload) // 2] + b"\n\n"


def failing(kind: str, after: int | None = 2) -> str:
    keys = f"failure: {kind}\n"
    if after is not None:
        keys += f"fail_after_chunks: {after}\n"
    if kind == "hang":
        keys += "hang_ms: 300\n"
    if kind == "error_event":
        keys += "error: {status: 429, message: Slow down, code: rate_limit_exceeded, type: tokens}\n"
    return keys


def test_every_failure_kind_is_tested_here():
    assert set(FAILURES) == {"disconnect", "reset", "truncate", "hang", "malformed", "error_event"}


# --- without a failure ------------------------------------------------------------------------


def test_a_stream_sends_every_chunk_then_done():
    plan = plan_for("chunking: word", stream=True)
    frames = chat.stream(plan).frames
    actions, entry = execute(plan)
    assert len(frames) == 7
    assert actions == [(0, "head", 200, b""), *sends(frames, *[0] * 7), (0, "send", sse.DONE), (0, "end")]
    assert (entry.outcome, entry.chunks_sent, entry.status) == ("completed", 7, 200)


def test_a_plain_response_is_its_whole_body():
    plan = plan_for("chunking: word", stream=False)
    actions, entry = execute(plan)
    assert actions == [(0, "head", 200, sse.dumps(chat.completion(plan)))]
    assert (entry.outcome, entry.chunks_sent) == ("completed", 0)


# --- every failure kind, streamed -------------------------------------------------------------


def stream_tail(kind: str, frames: tuple[bytes, ...]) -> list[tuple[Any, ...]]:
    """What follows the two chunks a failure lets through."""
    return {
        "disconnect": [(0, "drop"), (0, "end")],
        "reset": [(0, "reset"), (0, "end")],
        "truncate": [(0, "end")],
        "hang": [(0.3, "drop"), (0.3, "end")],
        "malformed": [(0, "send", half_of(frames[2])), (0, "end")],
        "error_event": [(0, "send", ERROR_FRAME), (0, "end")],
    }[kind]


@pytest.mark.parametrize("kind", FAILURES)
def test_a_stream_fails_after_the_chunks_it_lets_through(kind):
    plan = plan_for(failing(kind), stream=True)
    frames = chat.stream(plan).frames
    actions, entry = execute(plan)
    assert actions == [(0, "head", 200, b""), *sends(frames[:2], 0, 0), *stream_tail(kind, frames)]
    assert (entry.outcome, entry.chunks_sent) == (f"failed:{kind}", 2)


@pytest.mark.parametrize("kind", FAILURES)
def test_a_stream_with_nothing_to_let_through(kind):
    """Without `fail_after_chunks`, the cutting kinds strike before the headers: no response at
    all (the reply the executor returns never reaches the client); the others send their tail
    as the stream's only content."""
    plan = plan_for(failing(kind, after=None), stream=True)
    frames = chat.stream(plan).frames
    actions, entry = execute(plan)
    expected = {
        "disconnect": [(0, "drop"), (0, "head", 200, b"")],
        "reset": [(0, "reset"), (0, "head", 200, b"")],
        "hang": [(0.3, "drop"), (0.3, "head", 200, b"")],
        "truncate": [(0, "head", 200, b""), (0, "end")],
        "malformed": [(0, "head", 200, b""), (0, "send", half_of(frames[0])), (0, "end")],
        "error_event": [(0, "head", 200, b""), (0, "send", ERROR_FRAME), (0, "end")],
    }[kind]
    assert actions == expected
    assert (entry.outcome, entry.chunks_sent) == (f"failed:{kind}", 0)
    assert plan.fails_before_headers == KINDS[kind].before_headers


def test_a_failure_after_more_chunks_than_the_stream_has_replaces_the_end():
    plan = plan_for(failing("malformed", after=50), stream=True)
    frames = chat.stream(plan).frames
    actions, entry = execute(plan)
    assert actions == [(0, "head", 200, b""), *sends(frames, *[0] * 7), (0, "send", half_of(frames[-1])),
                       (0, "end")]
    assert (entry.outcome, entry.chunks_sent) == ("failed:malformed", 7)


def test_fail_after_chunks_alone_disconnects():
    plan = plan_for("fail_after_chunks: 1", stream=True)
    frames = chat.stream(plan).frames
    actions, entry = execute(plan)
    assert actions == [(0, "head", 200, b""), (0, "send", frames[0]), (0, "drop"), (0, "end")]
    assert entry.outcome == "failed:disconnect"


# --- every failure kind, not streamed ----------------------------------------------------------


@pytest.mark.parametrize("kind", FAILURES)
def test_a_plain_response_fails_as_a_stream_with_nothing_let_through(kind):
    """(`fail_after_chunks` counts chunks of a stream: it changes nothing here.)"""
    plan = plan_for(failing(kind), stream=False)
    whole = sse.dumps(chat.completion(plan)) if plan.error is None else b""
    actions, entry = execute(plan)
    expected, outcome = {
        "disconnect": ([(0, "drop"), (0, "head", 200, b"")], "failed:disconnect"),
        "reset": ([(0, "reset"), (0, "head", 200, b"")], "failed:reset"),
        "hang": ([(0.3, "drop"), (0.3, "head", 200, b"")], "failed:hang"),
        "truncate": ([(0, "head", 200, b"")], "failed:truncate"),
        "malformed": ([(0, "head", 200, whole[: len(whole) // 2])], "failed:malformed"),
        "error_event": ([(0, "head", 429, ERROR_BODY)], "error"),  # no stream to carry it: an HTTP error
    }[kind]
    assert actions == expected
    assert (entry.outcome, entry.chunks_sent) == (outcome, 0)


def test_an_error_without_a_failure_is_sent_instead_of_the_reply():
    plan = plan_for("fail_after_chunks: 2\nerror: {status: 503, message: Down}", stream=True)
    actions, entry = execute(plan)
    assert actions == [(0, "head", 503, b'{"error":{"message":"Down","type":"server_error","param":null,'
                                         b'"code":null}}')]
    assert (entry.outcome, entry.status, entry.error) == ("error", 503, "Down")


# --- every timing key -------------------------------------------------------------------------


def test_latency_delays_the_head():
    plan = plan_for("latency_ms: 250", stream=True)
    frames = chat.stream(plan).frames
    actions, _ = execute(plan)
    assert actions == [(0.25, "head", 200, b""), *sends(frames, *[0.25] * 7), (0.25, "send", sse.DONE),
                       (0.25, "end")]
    plain = plan_for("latency_ms: 250", stream=False)
    assert execute(plain)[0] == [(0.25, "head", 200, sse.dumps(chat.completion(plain)))]


def test_latency_delays_an_error_and_a_failure_before_the_headers():
    assert execute(plan_for("latency_ms: 250\nerror: {status: 500}", stream=False))[0][0][:3] == (0.25, "head", 500)
    assert execute(plan_for("latency_ms: 250\nfailure: reset", stream=True))[0] == [
        (0.25, "reset"), (0.25, "head", 200, b"")]


def test_first_chunk_delay_then_delay_between_chunks():
    plan = plan_for("first_chunk_delay_ms: 100\ndelay_ms: 20", stream=True)
    frames = chat.stream(plan).frames
    actions, _ = execute(plan)
    assert actions == [(0, "head", 200, b""), *sends(frames, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2, 0.22),
                       (0.22, "send", sse.DONE), (0.22, "end")]


def test_delay_alone_waits_before_every_chunk_but_the_first():
    plan = plan_for("delay_ms: 50\nlatency_ms: 200", stream=True)
    frames = chat.stream(plan).frames
    actions, _ = execute(plan)
    assert actions == [(0.2, "head", 200, b""), *sends(frames, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5),
                       (0.5, "send", sse.DONE), (0.5, "end")]


def test_delays_stop_at_the_failure():
    plan = plan_for("delay_ms: 40\nfail_after_chunks: 2\nfailure: disconnect", stream=True)
    frames = chat.stream(plan).frames
    assert execute(plan)[0] == [(0, "head", 200, b""), *sends(frames[:2], 0, 0.04), (0.04, "drop"), (0.04, "end")]


def jittered(seed: int) -> list[float]:
    plan = plan_for("latency_ms: 100\ndelay_ms: 40\njitter_ms: 15", stream=True, seed=seed)
    actions, _ = execute(plan)
    return [time for time, kind, *_ in actions if kind in ("head", "send")][:8]  # the head and 7 chunks


def test_jitter_is_drawn_from_the_seed():
    times = jittered(seed=1)
    assert jittered(seed=1) == times
    assert jittered(seed=2) != times
    assert 0.085 <= times[0] <= 0.115 + timers.GRID  # latency 100 ms +- 15
    assert times[0] <= times[1] <= times[0] + 0.015 + timers.GRID  # first chunk 0 ms, +15 at most
    gaps = [after - before for before, after in zip(times[1:], times[2:])]
    assert all(0.025 - 1e-9 <= gap <= 0.055 + timers.GRID + 1e-9 for gap in gaps)  # 40 ms +- 15
    assert len({round(gap, 3) for gap in gaps}) > 1  # not all alike


def test_jitter_follows_the_plans_waits_on_the_timers_grid():
    plan = plan_for("latency_ms: 100\ndelay_ms: 40\njitter_ms: 15", stream=True, seed=3)
    latency, waits = plan.timing.waits(7)
    actions, _ = execute(plan)
    times = [time for time, kind, *_ in actions if kind in ("head", "send")][:8]
    expected = 0.0
    for time, wait in zip(times, [latency, *waits], strict=True):  # never early, at most a tick late
        expected = math.ceil(round((expected + wait) / timers.GRID, 6)) * timers.GRID
        assert time == pytest.approx(expected, abs=timers.GRID + 1e-9)
        expected = time


@pytest.mark.parametrize("stream", [True, False])
def test_hang_ms_then_drop(stream):
    plan = plan_for("failure: hang\nfail_after_chunks: 1\nhang_ms: 1500\nfirst_chunk_delay_ms: 10", stream=stream)
    frames = chat.stream(plan).frames
    actions, entry = execute(plan)
    if stream:
        assert actions == [(0, "head", 200, b""), (0.01, "send", frames[0]), (1.51, "drop"), (1.51, "end")]
    else:
        assert actions == [(1.5, "drop"), (1.5, "head", 200, b"")]
    assert entry.outcome == "failed:hang"


@pytest.mark.parametrize("stream", [True, False])
def test_hang_without_hang_ms_lasts_until_the_client_leaves(stream):
    plan = plan_for("failure: hang\nfail_after_chunks: 2", stream=stream)
    frames = chat.stream(plan).frames
    actions, entry = execute(plan, give_up_after=3600)
    assert actions == ([(0, "head", 200, b""), *sends(frames[:2], 0, 0)] if stream else [])
    assert (entry.outcome, entry.chunks_sent) == ("client_disconnected", 2 if stream else 0)


def test_a_client_that_leaves_mid_stream_is_journaled_as_such():
    plan = plan_for("first_chunk_delay_ms: 100\ndelay_ms: 100", stream=True)
    frames = chat.stream(plan).frames
    actions, entry = execute(plan, give_up_after=0.25)
    assert actions == [(0, "head", 200, b""), *sends(frames[:2], 0.1, 0.2)]
    assert (entry.outcome, entry.chunks_sent) == ("client_disconnected", 2)


class SlowReader(FakeConnection):
    """A client that reads slowly: its socket does not take every chunk at once, which then
    goes the long way (`send_chunk`)."""

    def __init__(self, refused: set[int]) -> None:
        super().__init__()
        self.refused = refused
        self.tries = 0

    def send_chunk_now(self, data: bytes) -> bool:
        self.tries += 1
        if self.tries in self.refused:
            self.log("refused")
            return False
        return super().send_chunk_now(data)


def test_chunks_the_connection_does_not_take_at_once_go_the_long_way_at_the_same_times():
    plan = plan_for("first_chunk_delay_ms: 100\ndelay_ms: 20", stream=True)
    frames = chat.stream(plan).frames
    connection, journal = SlowReader(refused={1, 3, 4}), Journal(MemoryStore())
    entry = journal.start("req_1", "POST", "/v1/chat/completions", "default")

    async def main() -> None:
        reply = await executor.respond(plan, CHAT, connection, entry, journal)
        assert reply.stream is not None
        await reply.stream()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    times = (0.1, 0.12, 0.14, 0.16, 0.18, 0.2, 0.22)
    assert [action for action in connection.actions if action[1] == "send"] == [
        *sends(frames, *times), (0.22, "send", sse.DONE)]
    assert [time for time, kind, *_ in connection.actions if kind == "refused"] == [0.1, 0.14, 0.16]
    assert (entry.outcome, entry.chunks_sent) == ("completed", 7)
