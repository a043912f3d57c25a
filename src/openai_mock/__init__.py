"""openai-mock: a mock server of the OpenAI HTTP API for testing LLM client code."""

from .mockserver import MockServer, MockSession
from .scenario import ConfigError

__version__ = "0.1.0"

__all__ = ["ConfigError", "MockServer", "MockSession", "__version__"]
