"""What the routes share: the engine (configuration and state), who may reach it, the journal,
the log, and how the server was started."""

from __future__ import annotations

from typing import Any

import attrs

from ..engine import Engine
from ..journal import Journal
from ..log import RequestLog
from ..scenario.model import Config
from ..wire import models
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

    def __init__(self, config: Config, log: RequestLog | None = None, settings: Settings | None = None):
        self.engine = Engine(config)
        self.settings = settings = settings or Settings()
        self.access = Access(config, settings.bound_host, settings.allowed_hosts)
        self.log = log or RequestLog(None)
        self.journal = Journal(on_finish=self.log.entry)
        self.models = self._models(config)

    @property
    def max_body(self) -> int:
        return self.settings.max_body

    @property
    def config(self) -> Config:
        return self.engine.config

    def replace(self, config: Config) -> None:
        """Serve `config` from the next request on; requests in flight keep their plans."""
        self.engine.replace(config)
        self.access = Access(config, self.settings.bound_host, self.settings.allowed_hosts)
        self.models = self._models(config)

    @staticmethod
    def _models(config: Config) -> dict[str, dict[str, Any]]:
        named = [r.response.model for r in config.rules if r.response is not None and r.response.model is not None]
        return models.catalogue(tuple(config.models) + tuple(named))
