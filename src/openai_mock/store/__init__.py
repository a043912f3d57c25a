"""Everything that outlives a request, behind one interface with two implementations: in
memory (`memory.py`: one process, the default, no dependency) and Redis (`redis.py`: several
worker processes, several machines). The engine, the journal and the admin API ask the store;
they never know which one they have.

What goes through it:
- counters: the steps of each rule per session, and the requests of each session (the seeds of
  ids when the configuration has a `seed`), each an atomic increment;
- stored Responses (with a time to live), and the index of their output items;
- the journal, capped, in the order requests started;
- the configuration, as the sources it was loaded from, with a version number;
- reset, of everything or of one session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs

from ..conversation import Message
from ..journal import Entry
from ..scenario.load import Source as Source  # (re-exported: a configuration's sources)

DEFAULT_RESPONSE_TTL = 3600.0  # seconds a stored Response is kept
DEFAULT_RESPONSE_BUDGET = 256 * 1024 * 1024  # bytes of stored Responses kept in memory, the oldest forgotten first
MAX_SESSIONS = 10_000  # sessions whose state is kept in memory, the least recently used forgotten first
JOURNAL_LIMIT = 10_000  # entries; the oldest go first
JOURNAL_BUDGET = 64 * 1024 * 1024  # bytes of journal entries kept in memory (their bodies, mostly); the oldest go first


class StoreUnavailable(Exception):
    """The store cannot be reached (Redis down or restarting): the request that needed it gets a
    503 that names the store."""

    def __init__(self, where: str, why: str):
        super().__init__(f"openai-mock's state store ({where}) is unavailable: {why}")
        self.where = where


@attrs.frozen
class StoredResponse:
    """A stored Responses API response: the object `GET /v1/responses/{id}` returns, and the
    conversation it ends (every turn so far, its reply included, without instructions), with
    what a continuation would otherwise count again over the whole conversation: its messages'
    tokens and the ids of the tool calls in it. `size` is what keeping it costs (bytes, about):
    its own turn's, since a chain shares the messages of the turns before."""

    body: Mapping[str, Any]
    history: tuple[Message, ...]
    tokens: int = 0
    calls: frozenset[str] = frozenset()
    size: int = 0


@attrs.frozen
class SharedConfig:
    """A configuration as the store keeps it: its version, and the sources every process loads."""

    version: int
    sources: tuple[Source, ...]


class Store(Protocol):
    """What every implementation provides. Every method may raise `StoreUnavailable`."""

    where: str  # how messages name it: "memory", or the Redis URL without its password

    async def count(self, session: str, name: str) -> int:
        """Add one to the session's counter `name` and return the count before (0 the first time)."""

    async def put_response(self, session: str, response_id: str, stored: StoredResponse,
                           items: Mapping[str, Message]) -> None:
        """Keep a response, and its output items by id (each as the message it stands for)."""

    async def response(self, session: str, response_id: str) -> StoredResponse | None: ...

    async def delete_response(self, session: str, response_id: str) -> bool: ...

    async def item(self, session: str, item_id: str) -> Message | None:
        """An output item of a response still stored in the session."""

    async def journal_put(self, entries: Sequence[Entry]) -> None:
        """Add entries, or update those already there (by `key`); the oldest go beyond the cap.
        (In memory the entries themselves are kept, so that what changes later shows at once.)"""

    async def journal(self, session: str | None = None) -> list[dict[str, Any]]:
        """The entries, oldest first: all, or one session's."""

    async def reset(self, session: str | None = None, journal: bool = True) -> None:
        """Forget the counters, the stored responses and (unless told not to) the journal: all,
        or one session's."""

    async def put_config(self, sources: Sequence[Source]) -> int:
        """Publish a configuration; returns its version (one more than the last)."""

    async def config(self) -> SharedConfig | None: ...

    async def config_version(self) -> int:
        """The version of the latest configuration published (0: none)."""

    async def announce(self, member: str, version: int, ttl: float) -> None:
        """Say that process `member` serves configuration `version` (for `ttl` seconds)."""

    async def announced(self) -> dict[str, int]:
        """The version each process that announced itself lately serves."""
