"""The rules of a `recorded:` answer (`openai-mock record` writes them): its endpoint, status and
headers, the time until its head, and a stream's events with the wait before each, or a plain
answer's body."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from . import keys
from .behaviour import headers
from .kernel import Checker, Failed, Parts
from .model import Recorded, RecordedEvent, RecordedItem, ToolCall
from .yamlsrc import Pos, YList, YMap


def recorded(checker: Checker, raw: Any, pos: Pos) -> Recorded | Failed[Recorded]:
    if not isinstance(raw, YMap):
        return checker.report(pos, "`recorded` must be a mapping like {endpoint: chat, events: [...]} "
                                   "(openai-mock record writes it)")
    parts = Parts()
    known = keys.known(checker, raw, keys.RECORDED, "in `recorded`")
    parts.fail(known.failure)
    if "endpoint" not in raw:
        return parts.stop(checker.missing(known, "endpoint", raw.pos, "`recorded` needs the `endpoint` it was "
                                                                      "recorded from (chat, responses, ...)"))
    endpoint = parts(keys.RECORDED_ENDPOINT.read_or(checker, raw, "chat"))
    status = parts(keys.RECORDED_STATUS.read_or(checker, raw, 200))
    latency = parts(keys.RECORDED_LATENCY.read_or(checker, raw, 0.0))
    given = parts(headers(checker, raw["headers"], raw.at("headers")) if "headers" in raw else ())
    body = parts(keys.RECORDED_BODY.read_or(checker, raw, None))
    events = parts(_events(checker, raw["events"], raw.at("events"))) if "events" in raw else None
    if ("events" in raw) == ("body" in raw):
        parts.fail(checker.report(raw.pos, "`recorded` has either `events` (a stream) or `body` (a plain answer): "
                                           "give one of them"))
    if parts.failed or endpoint is None or status is None or latency is None or given is None:
        return parts.stop()
    response = response_object(body, [event.data for event in events or ()])
    return parts.result(Recorded(endpoint=endpoint, status=status, headers=given, latency_ms=float(latency),
                                 events=events, body=body, response_id=response.get("id") if response else None,
                                 items=_items(response) if response else ()))


def _events(checker: Checker, raw: Any, pos: Pos) -> tuple[RecordedEvent, ...] | Failed[tuple[RecordedEvent, ...]]:
    if not isinstance(raw, YList):
        return checker.report(pos, "`events` must be a list of {wait_ms, data} mappings")
    parts = Parts()
    events = []
    for item in parts.mappings(checker, raw, "an event must be a mapping like {wait_ms: 12.5, data: '{...}'}"):
        known = keys.known(checker, item, keys.RECORDED_EVENT, "in a recorded event")
        parts.fail(known.failure)
        if "data" not in item:
            parts.fail(checker.missing(known, "data", item.pos, "a recorded event needs its `data`"))
            continue
        checked = Parts()
        data = checked(keys.EVENT_DATA.read_or(checker, item, ""))
        wait = checked(keys.EVENT_WAIT.read_or(checker, item, 0.0))
        name = checked(keys.EVENT_NAME.read_or(checker, item, None))
        if checked.failed or data is None or wait is None:
            parts.fail(checked.stop())
            continue
        events.append(RecordedEvent(data=data, wait_ms=float(wait), event=name))
    return parts.result(tuple(events))


def response_object(body: str | None, events: Sequence[str]) -> dict[str, Any] | None:
    """The Responses API response object an answer ends with (a plain answer's body, or the last
    of a stream's events, by their data, that carries one), if it carries one."""
    texts = [body] if body is not None else list(reversed(events))
    for text in texts:
        try:
            value = json.loads(text) if text else None
        except ValueError:
            continue
        if isinstance(value, dict):
            found = value.get("response", value)
            if isinstance(found, dict) and found.get("object") == "response" and isinstance(found.get("id"), str):
                return found
    return None


def _items(response: dict[str, Any]) -> tuple[RecordedItem, ...]:
    """Its output items that a later request may name: messages (their text) and function calls."""
    items = []
    for item in response.get("output") or ():
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        if item.get("type") == "message":
            texts = [part.get("text") or part.get("refusal") or "" for part in item.get("content") or ()
                     if isinstance(part, dict)]
            items.append(RecordedItem(id=item["id"], text="\n".join(texts)))
        elif item.get("type") == "function_call":
            call = ToolCall(id=str(item.get("call_id", "")), name=str(item.get("name", "")),
                            arguments=str(item.get("arguments", "")))
            items.append(RecordedItem(id=item["id"], call=call))
    return tuple(items)
