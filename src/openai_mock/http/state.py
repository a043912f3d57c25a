"""What the routes share: the engine (configuration and state), who may reach it, the journal,
the log, and how the server was started."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from ..engine import Engine
from ..journal import Journal
from ..log import RequestLog
from ..scenario.model import Config
from ..store import Source, Store, StoreUnavailable
from ..store.memory import MemoryStore
from ..store.redis import RedisStore
from ..wire import models, responses
from .access import Access
from .common import BODY_TIMEOUT

DEFAULT_MAX_BODY = 32 * 1024 * 1024
# Processes that share a store say which configuration they serve (`Server._follow`), so that a
# publication returns once every one of them serves it, or after PUBLISH_WAIT.
ANNOUNCE_TTL = 1.0
PUBLISH_WAIT = 1.0
# A reader of the journal waits this long at most for the other processes to write theirs.
FLUSH_WAIT = 1.0


@attrs.frozen
class Settings:
    """How the server was started: what the command line says, beside the configuration file."""

    max_body: int = DEFAULT_MAX_BODY  # bytes; a larger request body gets 413
    body_timeout: float = BODY_TIMEOUT  # seconds a request body may take to arrive, else 408
    bound_host: str | None = None  # the --host given: requests may name it in `Host`
    allowed_hosts: tuple[str, ...] = ()  # --allowed-host: more hosts they may name


class MockState:
    """What the routes share: the engine (configuration and state), the journal, the log."""

    def __init__(self, config: Config, log: RequestLog | None = None, settings: Settings | None = None,
                 store: Store | None = None, config_version: int = 0, sources: Sequence[Source] = ()):
        self.store: Store = store or MemoryStore()
        self.engine = Engine(config, self.store, render=responses.retrieve)
        self.config_version = config_version  # of the configuration served, as the store numbers them
        self.sources = tuple(sources)  # what it was loaded from (to publish it again, if the store lost it)
        self.member = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"  # how this server announces itself
        self.settings = settings = settings or Settings()
        self.access = Access(config, settings.bound_host, settings.allowed_hosts)
        self.log = log or RequestLog(None)
        shared = isinstance(self.store, RedisStore)  # (other processes may use it too)
        self.journal = Journal(self.store, on_finish=self.log.entry, on_lost=self._journal_lost, write_behind=shared)
        if shared:
            self.journal.barrier = self.flush_everywhere
        self.models = self._models(config)
        self._lost_since: float | None = None

    @property
    def max_body(self) -> int:
        return self.settings.max_body

    @property
    def config(self) -> Config:
        return self.engine.config

    def replace(self, config: Config, version: int | None = None, sources: Sequence[Source] | None = None) -> None:
        """Serve `config` from the next request on; requests in flight keep their plans. (The
        state is not reset: `publish` does that where a change starts.)"""
        if version is not None:
            self.config_version = version
        if sources is not None:
            self.sources = tuple(sources)
        self.engine.replace(config)
        self.access = Access(config, self.settings.bound_host, self.settings.allowed_hosts)
        self.models = self._models(config)

    async def publish(self, config: Config, sources: Sequence[Source]) -> None:
        """Serve `config` (loaded from `sources`) here, and everywhere that shares the store: a
        PUT or a --watch reload. The state starts afresh; the journal is kept."""
        version = await self.store.put_config(sources)
        await self.store.reset(journal=False)
        self.replace(config, version, sources)
        await self.store.announce(self.member, version, ANNOUNCE_TTL)
        with trio.move_on_after(PUBLISH_WAIT):  # every process serves it when this returns
            while any(served < version for served in (await self.store.announced()).values()):  # noqa: ASYNC110
                await trio.sleep(0.01)

    async def flush_everywhere(self) -> None:
        """Return once every process that shares the store has written what its journal held
        when asked (or after FLUSH_WAIT, for those that do not answer: gone, or hung): so that
        the journal, read after a client has seen the end of an answer, lists it whichever
        process served it (`Journal`)."""
        store = self.store
        assert isinstance(store, RedisStore)
        others = [member for member in await store.announced() if member != self.member]
        if not others:
            return
        token = uuid.uuid4().hex
        await store.ask_to_flush(others, token)
        await store.flushed(token, len(others), FLUSH_WAIT)

    async def answer_flushes(self) -> None:
        """Write the journal whenever another process that reads it asks (`flush_everywhere`)."""
        store = self.store
        assert isinstance(store, RedisStore)
        while True:
            try:
                tokens = await store.flush_asked(self.member, 1.0)
                if tokens:
                    await self.journal.settle()
                    await store.say_flushed(self.member, tokens)
            except StoreUnavailable:
                await trio.sleep(0.1)  # (the requests that need the store say so; this asks again)

    async def reset(self, session: str | None = None) -> None:
        """`POST /_mock/reset`: the state and the journal, of everything or one session. (Other
        processes may hold entries of answers that ended before it, not written yet: they are
        written first, then forgotten with the rest.)"""
        await self.journal.settle()
        if self.journal.barrier is not None:
            await self.journal.barrier()
        self.journal.forget_pending(session)
        await self.store.reset(session)

    def _journal_lost(self, error: Exception) -> None:
        """The store refused a journal write: said once a minute at most, not per request."""
        now = time.monotonic()
        if self._lost_since is None or now - self._lost_since > 60:
            self._lost_since = now
            self.log.message(f"journal entries not kept: {error}")

    @staticmethod
    def _models(config: Config) -> dict[str, dict[str, Any]]:
        named = [r.response.model for r in config.rules if r.response is not None and r.response.model is not None]
        return models.catalogue(tuple(config.models) + tuple(named))
