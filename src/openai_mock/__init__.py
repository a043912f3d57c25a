"""openai-mock: a mock server of the OpenAI HTTP API for testing LLM client code."""

__version__ = "0.1.0"

__all__ = ["__version__"]
