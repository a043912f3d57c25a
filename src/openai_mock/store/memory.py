"""The store of one process: plain dictionaries. Every method completes without waiting, so under
trio each request sees and updates the state atomically."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..conversation import Message
from ..journal import Entry
from . import DEFAULT_RESPONSE_TTL, JOURNAL_LIMIT, SharedConfig, Source, StoredResponse


class MemoryStore:
    where = "memory"

    def __init__(self, response_ttl: float = DEFAULT_RESPONSE_TTL, journal_limit: int = JOURNAL_LIMIT,
                 clock: Callable[[], float] = time.monotonic):
        self.response_ttl = response_ttl
        self._clock = clock
        self._counts: dict[str, dict[str, int]] = defaultdict(dict)
        # session -> response id -> (expiry, the response); session -> item id -> (response id, item)
        self._responses: dict[str, dict[str, tuple[float, StoredResponse]]] = defaultdict(dict)
        self._items: dict[str, dict[str, tuple[str, Message]]] = defaultdict(dict)
        self._journal: dict[str, Entry] = {}  # by key, in the order they started
        self._journal_limit = journal_limit
        self._config: SharedConfig | None = None
        self._members: dict[str, tuple[float, int]] = {}  # member -> (until, version)

    async def count(self, session: str, name: str) -> int:
        counts = self._counts[session]
        before = counts.get(name, 0)
        counts[name] = before + 1
        return before

    async def put_response(self, session: str, response_id: str, stored: StoredResponse,
                           items: Mapping[str, Message]) -> None:
        self._responses[session][response_id] = (self._clock() + self.response_ttl, stored)
        kept = self._items[session]
        for item_id, message in items.items():
            kept[item_id] = (response_id, message)

    async def response(self, session: str, response_id: str) -> StoredResponse | None:
        return self._live(session, response_id)

    async def delete_response(self, session: str, response_id: str) -> bool:
        found = self._live(session, response_id) is not None
        self._responses.get(session, {}).pop(response_id, None)
        return found

    async def item(self, session: str, item_id: str) -> Message | None:
        found = self._items.get(session, {}).get(item_id)
        if found is None or self._live(session, found[0]) is None:
            return None
        return found[1]

    def _live(self, session: str, response_id: str) -> StoredResponse | None:
        kept = self._responses.get(session, {}).get(response_id)
        if kept is None:
            return None
        if kept[0] < self._clock():
            del self._responses[session][response_id]
            return None
        return kept[1]

    async def journal_put(self, entries: Sequence[Entry]) -> None:
        journal = self._journal
        for entry in entries:
            if entry.key not in journal:  # (kept as is: what changes later shows at once)
                journal[entry.key] = entry
                if len(journal) > self._journal_limit:
                    del journal[next(iter(journal))]

    async def journal(self, session: str | None = None) -> list[dict[str, Any]]:
        return [e.as_json() for e in self._journal.values() if session is None or e.session == session]

    async def reset(self, session: str | None = None, journal: bool = True) -> None:
        if session is None:
            self._counts.clear()
            self._responses.clear()
            self._items.clear()
            if journal:
                self._journal.clear()
            return
        for table in (self._counts, self._responses, self._items):
            table.pop(session, None)
        if journal:
            self._journal = {k: e for k, e in self._journal.items() if e.session != session}

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
