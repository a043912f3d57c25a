"""The journal: what each request got, for `GET /_mock/requests` and the pytest report."""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any

import attrs

from .failures import Failure

LIMIT = 10_000  # the oldest entries go first beyond this
# an entry's key: unique among every process and machine that share a store (request ids are
# not: with a `seed` they repeat after a reset)
_KEYS = (f"{os.urandom(6).hex()}{n:x}" for n in itertools.count())
# how a request ended (`Entry.outcome`), besides `Failure.outcome` (failed:<name>) for a failure
COMPLETED = "completed"
ERROR = "error"  # answered with an HTTP error
CLIENT_DISCONNECTED = "client_disconnected"  # the client left before the answer was complete


@attrs.define
class Entry:
    id: str
    time: float
    method: str
    path: str
    session: str
    stream: bool = False
    rule_id: str | None = None
    step: int | None = None
    status: int | None = None
    chunks_sent: int = 0
    outcome: str | None = None  # COMPLETED | ERROR | CLIENT_DISCONNECTED | a Failure's failed:<name>
    duration_ms: float | None = None
    body: Any = None  # the request's JSON body
    error: str | None = None  # the error message, when the response was an error
    key: str = attrs.field(factory=lambda: next(_KEYS), repr=False)
    started: float = attrs.field(factory=perf_counter, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "time": self.time, "method": self.method, "path": self.path,
            "session": self.session, "rule_id": self.rule_id, "step": self.step, "status": self.status,
            "stream": self.stream, "chunks_sent": self.chunks_sent, "outcome": self.outcome,
            "duration_ms": self.duration_ms, "error": self.error, "body": self.body,
        }


class Journal:
    def __init__(self, limit: int = LIMIT, on_finish: Callable[[Entry], None] | None = None):
        self._entries: deque[Entry] = deque(maxlen=limit)
        self.on_finish = on_finish

    def start(self, request_id: str, method: str, path: str, session: str, body: Any = None) -> Entry:
        entry = Entry(id=request_id, time=time.time(), method=method, path=path, session=session, body=body)
        self._entries.append(entry)
        return entry

    def finish(self, entry: Entry, outcome: str) -> None:
        """Record how `entry` ended; only the first call counts."""
        if entry.duration_ms is not None:
            return
        entry.outcome = outcome
        entry.duration_ms = round((perf_counter() - entry.started) * 1000, 3)
        if self.on_finish is not None:
            self.on_finish(entry)

    def fail(self, entry: Entry, failure: Failure) -> None:
        """Record that `entry` ended with `failure` (unless it had ended already)."""
        self.finish(entry, failure.outcome)

    def entries(self, session: str | None = None) -> list[dict[str, Any]]:
        return [e.as_json() for e in self._entries if session is None or e.session == session]

    def clear(self, session: str | None = None) -> None:
        if session is None:
            self._entries.clear()
        else:
            kept = [e for e in self._entries if e.session != session]
            self._entries.clear()
            self._entries.extend(kept)
