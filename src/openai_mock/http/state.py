"""What the routes share: the engine (configuration and state), who may reach it, the journal,
the log, and how the server was started."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from ..engine import Engine
from ..journal import Journal
from ..log import RequestLog
from ..scenario.model import Config
from ..store import Source, Store
from ..store.memory import MemoryStore
from ..wire import models, responses
from .access import Access
from .common import BODY_TIMEOUT

DEFAULT_MAX_BODY = 32 * 1024 * 1024
# Processes that share a store say which configuration they serve (`Server._follow`), so that a
# publication returns once every one of them serves it, or after PUBLISH_WAIT.
ANNOUNCE_TTL = 1.0
PUBLISH_WAIT = 1.0


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
        self.journal = Journal(self.store, on_finish=self.log.entry, on_lost=self._journal_lost)
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
        self.journal.forget_pending()
        await self.store.reset(journal=False)
        self.replace(config, version, sources)
        await self.store.announce(self.member, version, ANNOUNCE_TTL)
        with trio.move_on_after(PUBLISH_WAIT):  # every process serves it when this returns
            while any(served < version for served in (await self.store.announced()).values()):  # noqa: ASYNC110
                await trio.sleep(0.01)

    async def reset(self, session: str | None = None) -> None:
        """`POST /_mock/reset`: the state and the journal, of everything or one session."""
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
