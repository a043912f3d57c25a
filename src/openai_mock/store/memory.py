"""The store of one process: plain dictionaries. Every method completes without waiting, so under
trio each request sees and updates the state atomically.

Bounded: stored responses by their size (`response_budget` bytes in all, the oldest forgotten
first) as well as by their time to live, and the state of at most `max_sessions` sessions (the
one used least recently forgotten first: its counters, stored responses and items)."""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..conversation import Message
from ..journal import Entry
from . import (
    DEFAULT_RESPONSE_BUDGET,
    DEFAULT_RESPONSE_TTL,
    JOURNAL_BUDGET,
    JOURNAL_LIMIT,
    MAX_SESSIONS,
    SharedConfig,
    Source,
    StoredResponse,
)


class _Session:
    """One session's state: its counters, stored responses (with their expiry) and their items."""

    __slots__ = ("counts", "items", "responses")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.responses: dict[str, tuple[float, StoredResponse]] = {}
        self.items: dict[str, tuple[str, Message]] = {}  # item id -> (its response's id, what it stands for)


class MemoryStore:
    where = "memory"

    def __init__(self, response_ttl: float = DEFAULT_RESPONSE_TTL, journal_limit: int = JOURNAL_LIMIT,
                 clock: Callable[[], float] = time.monotonic, response_budget: int = DEFAULT_RESPONSE_BUDGET,
                 max_sessions: int = MAX_SESSIONS, journal_budget: int = JOURNAL_BUDGET):
        self.response_ttl = response_ttl
        self.response_budget = response_budget
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()  # least recently used first
        # (session, id, response), oldest first: the response by weak reference, so that one forgotten
        # otherwise (its session reset or evicted, deleted, replaced) is freed at once
        self._kept: deque[tuple[str, str, weakref.ref[StoredResponse]]] = deque()
        self._response_bytes = 0
        self._journal: dict[str, Entry] = {}  # by key, in the order they started
        self._journal_limit = journal_limit
        self._journal_budget = journal_budget
        self._journal_bytes = 0
        self._config: SharedConfig | None = None
        self._members: dict[str, tuple[float, int]] = {}  # member -> (until, version)

    def _session(self, session: str, make: bool = True) -> _Session | None:
        """A session's state (made when `make`), now its most recently used."""
        found = self._sessions.get(session)
        if found is not None:
            self._sessions.move_to_end(session)
            return found
        if not make:
            return None
        found = self._sessions[session] = _Session()
        while len(self._sessions) > self.max_sessions:
            _, gone = self._sessions.popitem(last=False)
            self._response_bytes -= sum(stored.size for _, stored in gone.responses.values())
        return found

    async def count(self, session: str, name: str) -> int:
        state = self._session(session)
        assert state is not None
        before = state.counts.get(name, 0)
        state.counts[name] = before + 1
        return before

    async def put_response(self, session: str, response_id: str, stored: StoredResponse,
                           items: Mapping[str, Message]) -> None:
        state = self._session(session)
        assert state is not None
        self._forget(state, response_id)
        state.responses[response_id] = (self._clock() + self.response_ttl, stored)
        for item_id, message in items.items():
            state.items[item_id] = (response_id, message)
        self._kept.append((session, response_id, weakref.ref(stored)))
        self._response_bytes += stored.size
        while self._response_bytes > self.response_budget and len(self._kept) > 1:  # the oldest go first
            old_session, old_id, old_stored = self._kept.popleft()
            old = self._sessions.get(old_session)
            if old is not None and old.responses.get(old_id, (0.0, None))[1] is old_stored():
                self._forget(old, old_id)
        # deleted, expired and replaced ones pile up here: drop them now and then (each response
        # kept takes 1 KiB or more of the budget, so more entries than that are mostly gone ones)
        if len(self._kept) > 2 * (self._response_bytes // 1024) + 1000:
            self._kept = deque(kept for kept in self._kept if self._is_kept(*kept))

    def _is_kept(self, session: str, response_id: str, stored: weakref.ref[StoredResponse]) -> bool:
        state = self._sessions.get(session)
        return state is not None and state.responses.get(response_id, (0.0, None))[1] is stored()

    def _forget(self, state: _Session, response_id: str) -> None:
        gone = state.responses.pop(response_id, None)
        if gone is not None:
            self._response_bytes -= gone[1].size

    async def response(self, session: str, response_id: str) -> StoredResponse | None:
        state = self._session(session, make=False)
        return self._live(state, response_id) if state is not None else None

    async def delete_response(self, session: str, response_id: str) -> bool:
        state = self._session(session, make=False)
        if state is None or self._live(state, response_id) is None:
            return False
        self._forget(state, response_id)
        return True

    async def item(self, session: str, item_id: str) -> Message | None:
        state = self._session(session, make=False)
        found = state.items.get(item_id) if state is not None else None
        if state is None or found is None or self._live(state, found[0]) is None:
            return None
        return found[1]

    def _live(self, state: _Session, response_id: str) -> StoredResponse | None:
        kept = state.responses.get(response_id)
        if kept is None:
            return None
        if kept[0] < self._clock():
            self._forget(state, response_id)
            return None
        return kept[1]

    async def journal_put(self, entries: Sequence[Entry]) -> None:
        journal = self._journal
        for entry in entries:
            if entry.key not in journal:  # (kept as is: what changes later shows at once)
                journal[entry.key] = entry
                self._journal_bytes += entry.size
                while len(journal) > self._journal_limit or (self._journal_bytes > self._journal_budget
                                                             and len(journal) > 1):
                    self._journal_bytes -= journal.pop(next(iter(journal))).size

    async def journal(self, session: str | None = None) -> list[dict[str, Any]]:
        return [e.as_json() for e in self._journal.values() if session is None or e.session == session]

    async def reset(self, session: str | None = None, journal: bool = True) -> None:
        if session is None:
            self._sessions.clear()
            self._kept.clear()
            self._response_bytes = 0
            if journal:
                self._journal.clear()
                self._journal_bytes = 0
            return
        gone = self._sessions.pop(session, None)
        if gone is not None:
            self._response_bytes -= sum(stored.size for _, stored in gone.responses.values())
        if journal:
            self._journal = {k: e for k, e in self._journal.items() if e.session != session}
            self._journal_bytes = sum(entry.size for entry in self._journal.values())

    async def put_config(self, sources: Sequence[Source]) -> int:
        version = (self._config.version if self._config is not None else 0) + 1
        self._config = SharedConfig(version, tuple(sources))
        return version

    async def config(self) -> SharedConfig | None:
        return self._config

    async def config_version(self) -> int:
        return self._config.version if self._config is not None else 0

    async def announce(self, member: str, version: int, ttl: float) -> None:
        self._members[member] = (self._clock() + ttl, version)

    async def announced(self) -> dict[str, int]:
        now = self._clock()
        return {member: version for member, (until, version) in self._members.items() if until >= now}
