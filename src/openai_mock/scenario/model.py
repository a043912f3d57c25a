"""The scenario model: what a configuration says, as frozen values.

Everything here was validated when it was loaded (`load.py` reads, the node modules check);
code downstream never re-checks a scenario.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any

import attrs
import regex

from ..failures import FAILURES as FAILURES  # (the names a scenario may give)
from .yamlsrc import Pos, Problem

MATCHER_RANK = {"exact": 4, "regex": 3, "contains": 2, "fuzzy": 1, "any": 0}
# the moderation categories, in the order the real API lists them
MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
    "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
    "violence/graphic",
)


@attrs.frozen
class TextMatch:
    """How one message's text is compared."""

    matcher: str = "exact"  # exact | contains | regex | fuzzy | any
    content: str | None = None
    threshold: float = 0.8
    # compiled by the `regex` module (Python's `re` syntax), whose searches take a time budget
    pattern: regex.Pattern[str] | None = attrs.field(default=None, eq=False)

    @property
    def rank(self) -> int:
        return MATCHER_RANK[self.matcher]

    def test(self, text: str | None, timeout: float | None = None) -> bool:
        """Whether `text` passes. A regex search longer than `timeout` seconds raises
        TimeoutError (None: no limit; 0 or less: only a search that needs no time passes)."""
        if self.matcher == "any" or self.content is None:
            return True
        text = text or ""
        if self.matcher == "exact":
            return text.strip() == self.content.strip()
        if self.matcher == "contains":
            return self.content.lower() in text.lower()
        if self.matcher == "regex":
            assert self.pattern is not None
            if timeout is None:
                return self.pattern.search(text) is not None
            # (the regex module reads a negative timeout as "none": the budget is spent)
            return self.pattern.search(text, timeout=max(timeout, 0.0)) is not None
        return self.similarity(text) >= self.threshold

    def similarity(self, text: str) -> float:
        return SequenceMatcher(None, (self.content or "").lower(), text.lower()).ratio()

    def describe_failure(self, text: str | None) -> str:
        """Why `text` failed this test, in a user's words."""
        want = self.content or ""
        if self.matcher == "exact":
            return f"content is not exactly {want.strip()!r} (got {_clip(text)!r})"
        if self.matcher == "contains":
            return f"content does not contain {want!r} (got {_clip(text)!r})"
        if self.matcher == "regex":
            return f"content does not match regex {want!r} (got {_clip(text)!r})"
        return (
            f"content is {self.similarity(text or ''):.2f} similar to {want!r}, "
            f"below the threshold {self.threshold}"
        )


def _clip(text: str | None, width: int = 60) -> str:
    text = text or ""
    return text if len(text) <= width else text[: width - 3] + "..."


@attrs.frozen
class ToolCall:
    id: str
    name: str
    arguments: str = ""
    type: str = "function"


@attrs.frozen
class Reply:
    """What the assistant answers: text, tool calls, or both."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = "stop"
    refusal: str | None = None


# A JSON value as the scenario wrote it (text, a number, true/false, null, a list, a mapping)
Json = Any


@attrs.frozen
class GivenCall:
    """A tool call of a configured `response:`: the call, and the order its keys were written in
    (`id`, `type`, `function`; its function's `name`, `arguments`)."""

    call: ToolCall
    keys: tuple[str, ...]
    function_keys: tuple[str, ...]


@attrs.frozen
class GivenMessage:
    """A choice's message in a configured `response:`. `keys` are the keys written, in order;
    `extra` the ones served as written without being read (annotations, audio, ...)."""

    keys: tuple[str, ...]
    content: str | None = None
    refusal: str | None = None
    tool_calls: tuple[GivenCall, ...] | None = None  # None: not given, or given as null
    finish_reason: str | None = None  # as written on the message (the choice's is what counts)
    extra: tuple[tuple[str, Json], ...] = ()


@attrs.frozen
class GivenChoice:
    """A choice of a configured `response:`; `reply` is what it streams."""

    keys: tuple[str, ...]
    message: GivenMessage
    reply: Reply
    finish_reason: str | None = None  # as written on the choice
    extra: tuple[tuple[str, Json], ...] = ()  # index, logprobs, ...: served as written


@attrs.frozen
class GivenUsage:
    """The `usage` of a configured `response:`: its counts, and every field as written (served
    over the counted usage)."""

    prompt_tokens: int | None
    completion_tokens: int | None
    fields: tuple[tuple[str, Json], ...]


@attrs.frozen
class GivenCompletion:
    """A whole `chat.completion` object from the matcher form's `response:`, served as given:
    what the server reads of it typed, every other field kept as written, and the order of
    the keys, so that the object goes on the wire as the user wrote it (what the real API
    always sends is added after)."""

    keys: tuple[str, ...]
    choices: tuple[GivenChoice, ...]
    id: str | None = None
    created: int | None = None
    model: str | None = None
    usage: GivenUsage | None = None  # None: not given, or given as null (counted)
    extra: tuple[tuple[str, Json], ...] = ()  # object, service_tier, system_fingerprint, ...

    def written(self, name: str) -> tuple[bool, Json]:
        """(whether the key `name` was given among the extra keys, its value)."""
        for key, value in self.extra:
            if key == name:
                return True, value
        return False, None


@attrs.frozen
class ErrorSpec:
    """An injected HTTP error (or the payload of a mid-stream error event)."""

    status: int = 500
    message: str | None = None
    type: str | None = None
    code: str | None = None
    param: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None  # a raw, non-JSON body (a gateway's HTML page)
    content_type: str | None = None


@attrs.frozen
class Moderation:
    """What a moderation rule says about the inputs it matches: the categories it flags."""

    categories: tuple[str, ...] = ()
    scores: tuple[tuple[str, float], ...] = ()  # category -> score, over the defaults

    @property
    def flagged(self) -> bool:
        return bool(self.categories)


@attrs.frozen
class Behaviour:
    """Timing and faults. `None` means "not set here" so that layers can be merged."""

    latency_ms: float | None = None
    first_chunk_delay_ms: float | None = None
    delay_ms: float | None = None
    jitter_ms: float | None = None
    chunking: str | int | None = None
    fail_after_chunks: int | None = None
    failure: str | None = None
    hang_ms: float | None = None
    error: ErrorSpec | None = None
    headers: tuple[tuple[str, str], ...] | None = None
    flow_reply: str | None = None

    def over(self, base: Behaviour) -> Behaviour:
        """These settings, falling back key by key to `base`; headers merge, ours winning."""
        merged = {}
        for field in attrs.fields(Behaviour):
            mine, theirs = getattr(self, field.name), getattr(base, field.name)
            if field.name == "headers" and mine is not None and theirs is not None:
                names = {name.lower() for name, _ in mine}
                mine = tuple(h for h in theirs if h[0].lower() not in names) + mine
            merged[field.name] = theirs if mine is None else mine
        return Behaviour(**merged)


@attrs.frozen
class Turn:
    """One message of a conversation flow, or one message pattern of the matcher form."""

    role: str
    match: TextMatch = TextMatch(matcher="any")
    tool_call_id: str | None = None
    reply: Reply | None = None  # assistant turns of a flow
    pos: Pos | None = attrs.field(default=None, eq=False)

    @property
    def rank(self) -> int:
        if self.tool_call_id is not None:
            return max(self.match.rank, MATCHER_RANK["exact"])
        return self.match.rank


ENDPOINTS = ("chat", "responses", "completions", "embeddings", "moderations")  # what a recorded answer came from


@attrs.frozen
class RecordedEvent:
    """One server-sent event of a recorded stream: its data as sent, its `event:` name (the
    Responses API names its events), and the wait before it."""

    data: str
    wait_ms: float = 0.0
    event: str | None = None


@attrs.frozen
class RecordedItem:
    """An output item of a recorded Responses API answer, by its id (what an `item_reference`
    names later): a message's text, or a function call."""

    id: str
    text: str | None = None
    call: ToolCall | None = None


@attrs.frozen
class Recorded:
    """An answer as an upstream sent it (`openai-mock record`), replayed as it was: the status and
    the headers a client reads, the time until the head, then a stream's events with the wait
    before each, or a plain answer's body. A recorded rule answers only requests of its endpoint."""

    endpoint: str  # one of ENDPOINTS
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    latency_ms: float = 0.0
    events: tuple[RecordedEvent, ...] | None = None  # a stream (None: a plain answer)
    body: str | None = None  # a plain answer's body, as sent
    response_id: str | None = None  # Responses API: the id of the response it carries (read at load)
    items: tuple[RecordedItem, ...] = ()  # Responses API: its output items (read at load)

    def chunks(self) -> tuple[tuple[RecordedEvent, ...], RecordedEvent | None]:
        """A stream's events, and apart from them its closing `[DONE]` (a complete chat or
        completions stream ends with one), if it has one."""
        events = self.events or ()
        if events and events[-1].data == "[DONE]":
            return events[:-1], events[-1]
        return events, None


@attrs.frozen
class Rule:
    id: str
    form: str  # "flow" | "matcher"
    pos: Pos
    turns: tuple[Turn, ...] = ()  # flow: the whole conversation; matcher: the message patterns
    reply: Reply | None = None  # matcher form: the reply
    response: GivenCompletion | None = None  # matcher form: a whole chat.completion object, served as given
    moderation: Moderation | None = None  # a moderation rule: answers /v1/moderations only
    recorded: Recorded | None = None  # a recorded answer: replayed as sent, to its endpoint's requests only
    behaviour: Behaviour = Behaviour()  # the rule's own keys over `defaults`
    steps: tuple[Behaviour, ...] = ()
    cycle: bool = False
    index: int = 0  # position among all rules: file order

    @property
    def file(self) -> str:
        return self.pos.file

    @property
    def line(self) -> int:
        return self.pos.line


@attrs.frozen
class Config:
    rules: tuple[Rule, ...] = ()
    api_key: str | None = None
    port: int | None = None
    seed: int | None = None
    cors_origins: tuple[str, ...] | None = None  # None: any origin (for the API)
    allowed_hosts: tuple[str, ...] = ()  # Host names to answer besides loopback and the bound host
    defaults: Behaviour = Behaviour()
    models: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    api_key_at: Pos | None = attrs.field(default=None, eq=False)  # where `apiKey` was written (for the 401's message)
    # what loads and works but deserves a word: `FILE:LINE:COLUMN: warning: ...` (see `check`)
    warnings: tuple[Problem, ...] = attrs.field(default=(), eq=False)
