"""A recorded answer (`openai-mock record`), as it was sent: a stream's events framed as
server-sent events again, with their data byte for byte, or a plain answer's body."""

from __future__ import annotations

from typing import Any

from ..plan import Plan
from ..scenario import recorded as scenario_recorded
from ..scenario.model import Recorded, RecordedEvent
from . import sse


def frame(event: RecordedEvent) -> bytes:
    """One event as the real API frames it: `event: NAME` (when it had one), then `data:`."""
    data = b"data: " + event.data.encode() + b"\n\n"
    return data if event.event is None else b"event: " + event.event.encode() + b"\n" + data


def stream(plan: Plan) -> sse.StreamBody:
    """Every event but a closing `[DONE]`, which closes the stream (as a complete stream's end)."""
    recorded = plan.recorded
    assert recorded is not None and recorded.events is not None
    events, done = recorded.chunks()
    return sse.stream_body(plan, tuple(frame(event) for event in events), frame(done) if done else b"")


def body(plan: Plan) -> bytes:
    recorded = plan.recorded
    assert recorded is not None and recorded.body is not None
    return recorded.body.encode()


def response_object(recorded: Recorded) -> dict[str, Any] | None:
    """The Responses API object the answer ends with (what `GET /v1/responses/{id}` returns)."""
    return scenario_recorded.response_object(recorded.body, [event.data for event in recorded.events or ()])
