"""The journal: what each request got, for `GET /_mock/requests` and the pytest report."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import Any, Protocol

import attrs
import trio

from .failures import Failure

# an entry's key: unique among every process and machine that share a store (request ids are
# not: with a `seed` they repeat after a reset)
_KEYS = (f"{os.urandom(6).hex()}{n:x}" for n in itertools.count())
# how a request ended (`Entry.outcome`), besides `Failure.outcome` (failed:<name>) for a failure
COMPLETED = "completed"
ERROR = "error"  # answered with an HTTP error
CLIENT_DISCONNECTED = "client_disconnected"  # the client left before the answer was complete
_last_order = 0.0


def _order(started: float) -> float:
    """Where an entry that started at `started` (time.time()) goes in a shared journal: its start
    time, nudged so that this process's entries keep the order they started in (a clock that
    steps back, two starts within its resolution)."""
    global _last_order
    _last_order = max(started, _last_order + 1e-6)
    return _last_order


BODY_KEPT = 64 * 1024  # bytes of a request body the journal keeps whole
STRING_KEPT = 1024  # characters of each string of a bigger body it keeps


def _cut(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= STRING_KEPT else f"{value[:STRING_KEPT]}... [{len(value):,} characters]"
    if isinstance(value, dict):
        return {key: _cut(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cut(item) for item in value]
    return value


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
    body: Any = None  # the request's JSON body (its long strings cut, when it is big: see `keep_body`)
    body_bytes: int = 0  # the request body's size as sent
    error: str | None = None  # the error message, when the response was an error
    key: str = attrs.field(factory=lambda: next(_KEYS), repr=False)
    started: float = attrs.field(factory=perf_counter, repr=False)
    # (where it goes among the entries of every process that shares the store: see `_order`)
    order: float = attrs.field(default=attrs.Factory(lambda self: _order(self.time), takes_self=True), repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "time": self.time, "method": self.method, "path": self.path,
            "session": self.session, "rule_id": self.rule_id, "step": self.step, "status": self.status,
            "stream": self.stream, "chunks_sent": self.chunks_sent, "outcome": self.outcome,
            "duration_ms": self.duration_ms, "error": self.error, "body": self.body, "body_bytes": self.body_bytes,
        }

    def keep_body(self, body: Any, size: int) -> None:
        """Keep the request's body: whole up to BODY_KEPT bytes; a bigger one with each string
        longer than STRING_KEPT characters cut, saying how long it was (the journal holds many)."""
        self.body_bytes = size
        self.body = body if size <= BODY_KEPT else _cut(body)

    @property
    def size(self) -> int:
        """About what keeping the entry costs, in bytes (for the journal's budget)."""
        return 512 + min(self.body_bytes, BODY_KEPT)


class Journal:
    """The journal, kept in a store (`store/`): entries start and finish here at once, and reach
    the store when `settle()` is awaited, a batch at a time. The router calls `ending()` before a
    plain answer goes out and the executor before a stream's last frame:
    - in one process (the store in memory) that settles at once, so the entry is there before
      the client can see the end;
    - with a shared store (`write_behind`), it returns at once: no answer waits on a round trip
      to Redis, and what is pending is written ten times a second (`Server._write_journal`),
      a batch at a time. The guarantee moves to the readers: `entries()` first awaits
      `barrier`, which asks every process that shares the store to settle and waits for their
      word (`MockState.flush_everywhere`).
    Either way, once a client has seen the end of an answer, the journal lists it wherever it is
    read."""

    def __init__(self, store: JournalStore, on_finish: Callable[[Entry], None] | None = None,
                 on_lost: Callable[[Exception], None] | None = None, write_behind: bool = False):
        self._store = store
        self.write_behind = write_behind
        self.barrier: Callable[[], Awaitable[None]] | None = None  # (see the class's docstring)
        self._pending: list[Entry] = []
        self._writing: trio.Event | None = None  # set when the write on its way has landed
        self._taken = 0  # batches taken from `_pending` so far (numbered from 1)...
        self._landed = 0  # ...and how many of them have landed (or been lost): one write at a time, in order
        self.on_finish = on_finish
        self.on_lost = on_lost  # a write the store refused (it is down): the journal is best-effort

    def start(self, request_id: str, method: str, path: str, session: str, body: Any = None) -> Entry:
        entry = Entry(id=request_id, time=time.time(), method=method, path=path, session=session, body=body)
        self._pending.append(entry)
        return entry

    def finish(self, entry: Entry, outcome: str) -> None:
        """Record how `entry` ended; only the first call counts."""
        if entry.duration_ms is not None:
            return
        entry.outcome = outcome
        entry.duration_ms = round((perf_counter() - entry.started) * 1000, 3)
        self._pending.append(entry)
        if self.on_finish is not None:
            self.on_finish(entry)

    def fail(self, entry: Entry, failure: Failure) -> None:
        """Record that `entry` ended with `failure` (unless it had ended already)."""
        self.finish(entry, failure.outcome)

    async def settle(self) -> None:
        """Write what started or finished since the last time to the store; return once it
        and every write taken before it have landed. One write at a time: a batch taken
        earlier (a started entry) never lands over a later one (its end), and an answer does
        not go out while its entry is still on its way in another caller's batch.

        Callers that wait on the same write all return when it lands, whatever started or
        finished meanwhile: that is for the next write, which the first caller to need it
        takes. (Were each waiter to write what arrived meanwhile before returning, a busy
        server would let one answer out per round trip to the store, and the others' ends
        would wait on the writes of requests that came after them.)"""
        needed = self._taken + 1 if self._pending else self._taken  # the batch that holds our entries
        while self._landed < needed:
            if self._writing is not None:
                await self._writing.wait()
                continue
            batch, self._pending = self._pending, []
            self._taken += 1
            number = self._taken
            self._writing = written = trio.Event()
            try:
                if batch:  # (none when a reset dropped what was pending)
                    await self._store.journal_put(batch)
            except Exception as error:  # (the store is down: the answers go on without the journal)
                if self.on_lost is None:
                    raise
                self.on_lost(error)
            finally:
                self._landed = number
                self._writing = None
                written.set()

    async def ending(self) -> None:
        """An answer's end is about to go out: its entry must be written, unless written behind
        (see the class)."""
        if not self.write_behind:
            await self.settle()

    async def entries(self, session: str | None = None) -> list[dict[str, Any]]:
        await self.settle()
        if self.barrier is not None:
            await self.barrier()
        return await self._store.journal(session)

    def forget_pending(self, session: str | None = None) -> None:
        """Drop what is not written yet (of one session): the store is being reset."""
        self._pending = [e for e in self._pending if session is not None and e.session != session]


class JournalStore(Protocol):
    """The store's part that the journal uses (`store.Store` provides it)."""

    async def journal_put(self, entries: Sequence[Entry]) -> None: ...

    async def journal(self, session: str | None = None) -> list[dict[str, Any]]: ...
