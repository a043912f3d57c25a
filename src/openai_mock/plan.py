"""A Plan: everything that will happen to one request, as plain data.

The engine makes plans; the wire encoders read them; the executor carries them out. The
same seed and state give the same plan, waits and ids included.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import string
from collections.abc import Iterator
from typing import TypeVar

import attrs

from .failures import Failure
from .options import (
    ChatOptions,
    CompletionOptions,
    EmbeddingsRequest,
    ModerationOptions,
    Options,
    ResponsesOptions,
)
from .scenario.model import ErrorSpec, GivenCompletion, GivenUsage, Moderation, Recorded, Reply

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
ITEM_ID_LENGTH = 48  # Responses API output items: msg_ and fc_ then 48 hex digits

AnOptions = TypeVar("AnOptions", ChatOptions, CompletionOptions, ModerationOptions, ResponsesOptions, EmbeddingsRequest)


_TABLES: dict[str, bytes] = {}


def _table(alphabet: str) -> bytes:
    """For bytes.translate: byte b becomes alphabet[b % len(alphabet)]."""
    table = _TABLES.get(alphabet)
    if table is None:
        table = _TABLES[alphabet] = bytes(ord(alphabet[b % len(alphabet)]) for b in range(256))
    return table


def token(seed: int, label: str, length: int, alphabet: str = ALNUM) -> str:
    """A random-looking string that depends only on (seed, label). (A hash, not a seeded
    random.Random: every request makes a few of these, and Random's set-up costs ten times more.)"""
    return hashlib.shake_256(f"{seed}/{label}".encode()).digest(length).translate(_table(alphabet)).decode()


def paddings(seed: int, label: str, count: int) -> list[str]:
    """`count` random-looking strings of 1 to 16 letters and digits (the `obfuscation` padding of
    stream events), depending only on (seed, label)."""
    raw = hashlib.shake_256(f"{seed}/{label}".encode()).digest(count * 17)
    text = raw[count:].translate(_table(ALNUM)).decode()
    return [text[16 * i: 16 * i + raw[i] % 16 + 1] for i in range(count)]


PADDINGS_AT_ONCE = 4096


def each_padding(seed: int, label: str, count: int) -> Iterator[str]:
    """`paddings(seed, label, count)` made as they are asked for, PADDINGS_AT_ONCE at a time (the
    same strings up to that count; a longer stream's are as random, and as fixed by the seed)."""
    if count <= PADDINGS_AT_ONCE:
        yield from paddings(seed, label, count)
        return
    for start in range(0, count, PADDINGS_AT_ONCE):
        yield from paddings(seed, f"{label}@{start}", min(PADDINGS_AT_ONCE, count - start))


def merge_headers(*layers: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Headers of several layers, a later layer's winning per name (in any case)."""
    merged: dict[str, tuple[str, str]] = {}
    for layer in layers:
        for name, value in layer:
            merged[name.lower()] = (name, value)
    return list(merged.values())


@attrs.frozen
class Timing:
    """The waits of one response, in milliseconds as configured; `jitter_ms` is drawn from `seed`."""

    latency_ms: float = 0.0
    first_chunk_delay_ms: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    hang_ms: float | None = None
    seed: int = 0
    # a recorded stream: the wait before each chunk as recorded (they replace the delays), and
    # before its closing `[DONE]`
    gaps_ms: tuple[float, ...] | None = None
    tail_ms: float = 0.0

    def waits(self, chunks: int) -> tuple[float, list[float]]:
        """(the wait before the headers, the wait before each chunk), in seconds."""
        return self.latency(), list(self.chunk_waits(chunks))

    def latency(self) -> float:
        """The wait before the headers, in seconds."""
        if not self.jitter_ms:
            return self.latency_ms / 1000
        return self._vary(random.Random(self.seed), self.latency_ms)

    def chunk_waits(self, chunks: int) -> Iterator[float]:
        """The wait before each chunk, in seconds, as they are reached (a stream of millions of
        chunks does not make a list of millions of waits)."""
        if self.jitter_ms:
            return self._jittered(chunks)
        if self.gaps_ms is not None:
            return (ms / 1000 for ms in self._delays(chunks))
        if not chunks:
            return iter(())
        return itertools.chain((self.first_chunk_delay_ms / 1000,), itertools.repeat(self.delay_ms / 1000, chunks - 1))

    def _delays(self, chunks: int) -> Iterator[float]:
        """The milliseconds before each chunk, before jitter: a recorded stream's gaps as recorded
        (none after them), else the first chunk's delay then `delay_ms`."""
        if self.gaps_ms is not None:
            gaps = self.gaps_ms[:chunks]
            return itertools.chain(gaps, itertools.repeat(0.0, chunks - len(gaps)))
        if not chunks:
            return iter(())
        return itertools.chain((self.first_chunk_delay_ms,), itertools.repeat(self.delay_ms, chunks - 1))

    def _jittered(self, chunks: int) -> Iterator[float]:
        rng = random.Random(self.seed)
        self._vary(rng, self.latency_ms)  # (the headers' wait is drawn first)
        for ms in self._delays(chunks):
            yield self._vary(rng, ms)

    def _vary(self, rng: random.Random, ms: float) -> float:
        return max(0.0, ms + rng.uniform(-self.jitter_ms, self.jitter_ms)) / 1000


def text_size(reply: Reply) -> int:
    """The characters of a reply's text, refusal and tool call arguments."""
    size = len(reply.content or "") + len(reply.refusal or "")
    for call in reply.tool_calls:
        size += len(call.arguments)
    return size


@attrs.frozen
class Usage:
    prompt_tokens: int
    completion_tokens: int
    given: GivenUsage | None = None  # a configured `response:`'s usage, served as given

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@attrs.frozen
class Plan:
    request_id: str  # x-request-id
    seed: int  # every other generated id and padding derives from it
    stream: bool
    rule_id: str | None = None
    step: int | None = None
    timing: Timing = Timing()
    headers: tuple[tuple[str, str], ...] = ()
    # what is sent: an HTTP error instead of the reply, or the reply
    error: ErrorSpec | None = None
    reply: Reply | None = None
    id: str = ""  # chatcmpl-..., resp_..., cmpl-...
    created: int = 0
    model: str = ""
    usage: Usage | None = None
    given: GivenCompletion | None = None  # chat, matcher form: the chat.completion as configured
    # moderations: per input, what the rule that matched it flags (None: no rule matched it)
    verdicts: tuple[Moderation | None, ...] = ()
    recorded: Recorded | None = None  # a recorded answer, sent as it was recorded
    unmatched: bool = False  # no rule answers the request (`openai-mock record` asks the upstream)
    chunking: str | int = "word"
    # how it ends: a failure after `fail_after` chunks (None: with nothing let through)
    fail_after: int | None = None
    failure: Failure | None = None
    stream_error: ErrorSpec | None = None  # the payload of a failure that carries an error
    # the endpoint's own request options (include_usage, instructions, ...); None only in a plan
    # that answers with an error before an endpoint read the request
    options: Options | None = None

    def options_of(self, kind: type[AnOptions]) -> AnOptions:
        """The plan's options, which its endpoint's encoder knows the type of."""
        options = self.options
        assert isinstance(options, kind), (kind, options)
        return options

    def make_id(self, label: str, length: int, alphabet: str = ALNUM) -> str:
        return token(self.seed, label, length, alphabet)

    def output_item_ids(self) -> tuple[str | None, tuple[str, ...]]:
        """The Responses API ids of the reply's output items: its message (None when the reply
        is tool calls alone) and each tool call's, in order."""
        reply = self.reply
        assert reply is not None
        message = None
        if reply.content is not None or reply.refusal is not None or not reply.tool_calls:
            message = "msg_" + self.make_id("msg", ITEM_ID_LENGTH, HEX)
        return message, tuple("fc_" + self.make_id(f"fc{i}", ITEM_ID_LENGTH, HEX) for i in range(len(reply.tool_calls)))

    def text_size(self) -> int:
        """The characters of its reply (of every choice of a configured `response:`)."""
        if self.given is not None:
            return sum(text_size(choice.reply) for choice in self.given.choices)
        return text_size(self.reply) if self.reply is not None else 0

    @property
    def fails_before_headers(self) -> bool:
        """A failure that strikes before anything is sent: no response at all."""
        failure = self.failure
        return failure is not None and failure.before_headers and (self.fail_after is None or not self.stream)
