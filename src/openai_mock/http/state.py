"""What the routes share: the engine (configuration and state), who may reach it, the journal,
the log, and how the server was started."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import attrs

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
                 store: Store | None = None, config_version: int = 0):
        self.store: Store = store or MemoryStore()
        self.engine = Engine(config, self.store, render=responses.retrieve)
        self.config_version = config_version  # of the configuration served, as the store numbers them
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

    def replace(self, config: Config, version: int | None = None) -> None:
        """Serve `config` from the next request on; requests in flight keep their plans. (The
        state is not reset: `publish` does that where a change starts.)"""
        if version is not None:
            self.config_version = version
        self.engine.replace(config)
        self.access = Access(config, self.settings.bound_host, self.settings.allowed_hosts)
        self.models = self._models(config)

    async def publish(self, config: Config, sources: Sequence[Source]) -> None:
        """Serve `config` (loaded from `sources`) here, and everywhere that shares the store: a
        PUT or a --watch reload. The state starts afresh; the journal is kept."""
        version = await self.store.put_config(sources)
        self.journal.forget_pending()
        await self.store.reset(journal=False)
        self.replace(config, version)

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
