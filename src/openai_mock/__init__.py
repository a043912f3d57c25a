"""openai-mock: a mock server of the OpenAI HTTP API for testing LLM client code."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .scenario import ConfigError

if TYPE_CHECKING:
    from .mockserver import MockServer, MockSession

__version__ = "0.1.0"

__all__ = ["ConfigError", "MockServer", "MockSession", "__version__"]


def __getattr__(name: str) -> Any:
    # the server's modules (quart, hypercorn) load only when asked for: `openai-mock check`
    # and `schema` start twice as fast without them
    if name in ("MockServer", "MockSession"):
        from . import mockserver

        return getattr(mockserver, name)
    raise AttributeError(f"module 'openai_mock' has no attribute {name!r}")
