"""What `openai-mock record` writes: each exchange with the upstream as an ordinary rule of the
scenario format (a matcher of the request's messages, and the answer `recorded:` as sent, its
breaks as `fail_after_chunks` + `failure` or `error:`), and the file that keeps them, whole
after every rule.

Identical requests (a retry, then its success) become one rule with `steps`, so that a replay
fails and then succeeds as the upstream did. Credentials never reach the file: only the headers
a client reads are kept, and `--redact` patterns are masked in bodies (a masked prompt is
matched by a regular expression in its place).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml

from .conversation import Message

# the response headers a client reads, and the only ones written
KEPT_HEADERS = ("content-type", "retry-after", "retry-after-ms", "x-request-id", "openai-processing-ms",
                "x-should-retry", "openai-version", "openai-organization-id")
KEPT_PREFIXES = ("x-ratelimit-",)
REDACTED = "[REDACTED]"


@attrs.frozen
class Event:
    """One server-sent event as it arrived: the wait before it (ms), its name, its data."""

    wait_ms: float
    data: str
    event: str | None = None


@attrs.frozen
class Exchange:
    """One request forwarded, and how the upstream answered it."""

    endpoint: str  # chat | responses | completions | embeddings | moderations
    conversation: tuple[Message, ...]  # what a replay's request must match
    stream: bool
    status: int
    headers: tuple[tuple[str, str], ...]  # as sent (filtered when written)
    latency_ms: float
    body: str | None = None  # a plain answer, or an error's body
    events: tuple[Event, ...] = ()  # a stream
    ending: str = "complete"  # complete | disconnect | reset: how a stream ended
    reply: dict[str, Any] | None = None  # what the assistant said (content, tool_calls), for later turns

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.endpoint, self.stream, self.conversation)


def kept_headers(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The headers a client reads; never credentials or cookies (they are not in the list)."""
    return {name.lower(): value for name, value in headers
            if name.lower() in KEPT_HEADERS or name.lower().startswith(KEPT_PREFIXES)}


class Recording:
    """The rules recorded so far, and the file they are written to (whole, after each one)."""

    def __init__(self, path: Path, match: str = "conversation", redact: Sequence[str] = (), source: str = ""):
        self.path = path
        self.match = match
        self.redact = [re.compile(pattern) for pattern in redact]
        self.source = source  # the upstream's URL, for the file's first line
        self.head: dict[str, Any] = {}
        self.rules: list[dict[str, Any]] = []
        self._by_key: dict[tuple[Any, ...], tuple[int, list[Exchange]]] = {}
        if path.exists() and path.stat().st_size:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if isinstance(loaded, dict):
                self.rules = list(loaded.pop("responses", None) or [])
                self.head = loaded

    def add(self, exchange: Exchange) -> dict[str, Any]:
        """Record an exchange: a new rule, or a step more of the rule of the same request."""
        index, exchanges = self._by_key.get(exchange.key, (len(self.rules), []))
        exchanges.append(exchange)
        rule = self._rule(exchanges, self._id(exchange.endpoint, index, exchanges))
        if index == len(self.rules):
            self.rules.append(rule)
        else:
            self.rules[index] = rule
        self._by_key[exchange.key] = (index, exchanges)
        self.write()
        return rule

    def write(self) -> None:
        """The whole file, written beside it and renamed over it: never half written."""
        document = {**self.head, "responses": self.rules}
        text = (f"# recorded by openai-mock record{' from ' + self.source if self.source else ''}; "
                "an ordinary scenario file: edit it freely\n")
        text += yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1_000_000,
                               default_flow_style=None)
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _id(self, endpoint: str, index: int, exchanges: list[Exchange]) -> str:
        if len(exchanges) > 1:
            existing = self.rules[index].get("id")
            if isinstance(existing, str):
                return existing
        taken = {rule.get("id") for rule in self.rules}
        number = index + 1
        while f"{endpoint}-{number}" in taken:
            number += 1
        return f"{endpoint}-{number}"

    # --- one rule -------------------------------------------------------------------------------

    def _rule(self, exchanges: list[Exchange], rule_id: str) -> dict[str, Any]:
        """The rule of one request recorded once or more: the last answer that was not an HTTP
        error is the rule's; every earlier attempt is a step."""
        last = exchanges[-1]
        answered = [e for e in exchanges if e.status < 400]
        main = answered[-1] if answered else last
        rule: dict[str, Any] = {"id": rule_id, "matcher": self._matcher(main)}
        if main.status < 400:
            if main.reply is not None:
                rule["reply"] = self._redacted_value(main.reply)
            rule["recorded"] = self._recorded(main)
        else:
            rule["reply"] = ""  # (no answer was recorded: every attempt was an error)
        behaviours = [self._behaviour(e, main) for e in exchanges]
        if len(exchanges) == 1:
            rule.update(behaviours[0])
        else:
            rule["steps"] = behaviours
        return rule

    def _matcher(self, exchange: Exchange) -> dict[str, Any]:
        messages = list(exchange.conversation)
        if self.match == "last-user":
            users = [i for i, message in enumerate(messages) if message.role == "user"]
            messages = messages[users[-1]:] if users else messages[-1:]
        patterns = [self._pattern(message) for message in messages] or [{"role": "user", "matcher": "any"}]
        return {"type": "exact", "messages": patterns}

    def _pattern(self, message: Message) -> dict[str, Any]:
        pattern: dict[str, Any] = {"role": message.role}
        if message.tool_call_id is not None:
            pattern["tool_call_id"] = message.tool_call_id
        if message.content is None:
            if message.role in ("assistant", "tool"):
                pattern["matcher"] = "any"
            else:
                pattern["content"] = ""
            return pattern
        redacted = self._redacted(message.content)
        if redacted == message.content:
            pattern["content"] = message.content
            return pattern
        # a masked prompt: a regular expression of what is left, the masked parts any text
        pieces = self._split(message.content)
        pattern["matcher"] = "regex"
        pattern["content"] = "^" + "".join(re.escape(piece) if kept else ".*" for piece, kept in pieces) + "$"
        return pattern

    def _recorded(self, exchange: Exchange) -> dict[str, Any]:
        recorded: dict[str, Any] = {"endpoint": exchange.endpoint}
        if exchange.status != 200:
            recorded["status"] = exchange.status
        headers = kept_headers(exchange.headers)
        if headers:
            recorded["headers"] = headers
        recorded["latency_ms"] = round(exchange.latency_ms, 3)
        if exchange.stream:
            recorded["events"] = [self._event(event) for event in exchange.events]
        else:
            recorded["body"] = self._redacted(exchange.body or "")
        return recorded

    def _event(self, event: Event) -> dict[str, Any]:
        written: dict[str, Any] = {"wait_ms": round(event.wait_ms, 3)}
        if event.event is not None:
            written["event"] = event.event
        written["data"] = self._redacted(event.data)
        return written

    def _behaviour(self, exchange: Exchange, main: Exchange) -> dict[str, Any]:
        """What this attempt did, as behaviour keys over the rule's answer (`{}`: the answer)."""
        if exchange.status >= 400:
            error: dict[str, Any] = {"status": exchange.status}
            headers = {k: v for k, v in kept_headers(exchange.headers).items() if k != "content-type"}
            if headers:
                error["headers"] = headers
            error["body"] = self._redacted(exchange.body or "")
            content_type = _header(exchange.headers, "content-type")
            if content_type:
                error["content_type"] = content_type
            behaviour: dict[str, Any] = {"error": error}
            if exchange.latency_ms:
                behaviour["latency_ms"] = round(exchange.latency_ms, 3)
            return behaviour
        if exchange.stream and exchange.ending != "complete":
            sent = sum(1 for event in exchange.events if event.data != "[DONE]")
            return {"fail_after_chunks": sent, "failure": exchange.ending}
        return {}

    def _split(self, text: str) -> list[tuple[str, bool]]:
        """`text` in pieces: (piece, kept) with the redacted matches as (match, False)."""
        spans = sorted((m.start(), m.end()) for pattern in self.redact for m in pattern.finditer(text) if m.end() > m.start())
        pieces, at = [], 0
        for start, end in spans:
            if start < at:
                continue
            pieces.append((text[at:start], True))
            pieces.append((text[start:end], False))
            at = end
        pieces.append((text[at:], True))
        return [(piece, kept) for piece, kept in pieces if piece or not kept]

    def _redacted(self, text: str) -> str:
        for pattern in self.redact:
            text = pattern.sub(REDACTED, text)
        return text

    def _redacted_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redacted(value)
        if isinstance(value, dict):
            return {key: self._redacted_value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._redacted_value(item) for item in value]
        return value


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None
