"""What the routes share: the engine (configuration and state), who may reach it, the journal,
the log."""

from __future__ import annotations

from typing import Any

from ..engine import Engine
from ..journal import Journal
from ..log import RequestLog
from ..scenario.model import Config
from ..wire import models
from .access import Access

DEFAULT_MAX_BODY = 32 * 1024 * 1024


class MockState:
    """What the routes share: the engine (configuration and state), the journal, the log."""

    def __init__(self, config: Config, log: RequestLog | None = None, max_body: int = DEFAULT_MAX_BODY,
                 bound_host: str | None = None, extra_hosts: tuple[str, ...] = ()):
        self.engine = Engine(config)
        self.bound_host, self.extra_hosts = bound_host, extra_hosts
        self.access = Access(config, bound_host, extra_hosts)
        self.log = log or RequestLog(None)
        self.journal = Journal(on_finish=self.log.entry)
        self.max_body = max_body
        self.models = self._models(config)

    @property
    def config(self) -> Config:
        return self.engine.config

    def replace(self, config: Config) -> None:
        """Serve `config` from the next request on; requests in flight keep their plans."""
        self.engine.replace(config)
        self.access = Access(config, self.bound_host, self.extra_hosts)
        self.models = self._models(config)

    @staticmethod
    def _models(config: Config) -> dict[str, dict[str, Any]]:
        named = [r.response["model"] for r in config.rules
                 if isinstance(r.response, dict) and isinstance(r.response.get("model"), str)]
        return models.catalogue(tuple(config.models) + tuple(named))
