"""What each endpoint's request asks for beyond its conversation: the request readers
(`requests/`) make these values and the wire encoders (`wire/`) read them from the plan."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class ChatOptions:
    include_usage: bool = False
    include_obfuscation: bool = True


@attrs.frozen
class CompletionOptions:
    include_usage: bool = False
    echo: str | None = None  # echo: true sends the prompt back before the completion


@attrs.frozen
class ModerationOptions:
    """Per input, the kinds of content it holds: ("text",), ("image",) or ("text", "image")."""

    input_types: tuple[tuple[str, ...], ...] = ()


@attrs.frozen
class ResponsesOptions:
    """What the request asked for that the response object echoes."""

    instructions: Any = None  # as sent: a string or a list of input items
    previous_response_id: str | None = None
    store: bool = True
    background: bool = False
    tools: tuple[Any, ...] = ()
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_logprobs: int = 0
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    text: Any = attrs.Factory(lambda: {"format": {"type": "text"}, "verbosity": "medium"})
    reasoning: Any = attrs.Factory(lambda: {"effort": None, "summary": None})
    truncation: str = "disabled"
    metadata: Any = attrs.Factory(dict)
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    include_obfuscation: bool = True




# --- embeddings: answered without rules, so the request itself is what the encoder reads -------

NATIVE_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
DEFAULT_DIMENSIONS = 1536
FIXED_DIMENSIONS = frozenset({"text-embedding-ada-002"})  # models that refuse `dimensions`
MAX_DIMENSIONS = 3072  # for models the mock does not know: the largest real one (text-embedding-3-large)

Input = str | tuple[int, ...]  # a text, or a list of token ids


@attrs.frozen
class EmbeddingsRequest:
    model: str
    inputs: tuple[Input, ...]
    dimensions: int
    encoding_format: str  # float | base64
    prompt_tokens: int


def native_dimensions(model: str) -> int:
    return NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)


def max_dimensions(model: str) -> int:
    return NATIVE_DIMENSIONS.get(model, MAX_DIMENSIONS)


Options = ChatOptions | CompletionOptions | ModerationOptions | ResponsesOptions | EmbeddingsRequest
