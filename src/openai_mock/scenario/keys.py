"""Every key a scenario file may use, in one place: its name, what it means, and its check.

A key's check reads its value for the loader and gives its JSON Schema fragment to
`openai-mock schema`, so the two can never disagree on a name, a type or a bound. A key whose
value is a node of its own (`error`, `matcher`, ...) names that node; the node's module reads it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .kernel import (
    Boolean,
    Checker,
    Failed,
    Ignored,
    Integer,
    Key,
    Known,
    Node,
    Number,
    OneOf,
    Parts,
    String,
    Strings,
    closest,
    json_text,
    ref,
    table,
)
from .model import ENDPOINTS, FAILURES, MATCHER_RANK, MODERATION_CATEGORIES
from .yamlsrc import Pos, YMap

MATCHERS = tuple(MATCHER_RANK)
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")
FLOW_REPLIES = ("next", "last")

# An HTTP header name (RFC 9110 token), and a browser Origin (`scheme://host[:port]`, no path).
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
ORIGIN = r"^(\*|null|[A-Za-z][A-Za-z0-9+.-]*://[^/\s?#]+)$"
# An `allowed_hosts` entry: a host name or IP address without port, `.domain` for a domain and
# its subdomains, or `*`.
ALLOWED_HOST = r"^(\*|\.?[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$"


def valid_host_name(name: str) -> bool:
    """An `allowed_hosts` entry: a name or address alone (no scheme, port or path), `.domain`, `*`."""
    if not re.fullmatch(ALLOWED_HOST, name):
        return False
    if ":" in name:
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return False
    return True


# Top-level keys starting with this are the user's own (YAML anchors to share, notes), ignored.
EXTENSION_PREFIX = "x-"

# Headers the server sets from the body it sends; a scenario cannot set them.
FRAMING_HEADERS = ("content-length", "transfer-encoding")


# --- checks of this vocabulary -------------------------------------------------------------------


class Chunking:
    __slots__ = ()

    @property
    def schema(self) -> dict[str, Any]:
        return {"anyOf": [{"enum": ["word", "char"]}, {"type": "integer", "minimum": 1}]}

    def __call__(self, checker: Checker, value: Any, pos: Pos, name: str) -> str | int | Failed[Any]:
        if value in ("word", "char") or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value  # type: ignore[no-any-return]
        return checker.report(pos, "`chunking` must be `word`, `char` or a whole number of characters (1 or more)")


class Code:
    """An error's `code` or `param`: text (a number is taken as its text), or null."""
    __slots__ = ()


    @property
    def schema(self) -> dict[str, Any]:
        return {"type": ["string", "null"]}

    def __call__(self, checker: Checker, value: Any, pos: Pos, name: str) -> str | None | Failed[Any]:
        if value is not None and not isinstance(value, (str, int)):
            return checker.report(pos, f"`{name}` must be a string or null")
        return None if value is None else str(value)


class RuleId:
    """A rule's id: text, or a number taken as its text (`id: 1` is the rule "1")."""
    __slots__ = ()


    @property
    def schema(self) -> dict[str, Any]:
        return {"type": ["string", "number"], "pattern": r"\S"}

    def __call__(self, checker: Checker, value: Any, pos: Pos, name: str) -> str | Failed[Any]:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            return checker.report(pos, "`id` must be a non-empty string")
        return value


class Arguments:
    """A tool call's arguments: JSON text, or a mapping that becomes the JSON text the API sends."""
    __slots__ = ()


    @property
    def schema(self) -> dict[str, Any]:
        return {"type": ["string", "object"]}

    def __call__(self, checker: Checker, value: Any, pos: Pos, name: str) -> str | Failed[Any]:
        if isinstance(value, dict):
            return json_text(value)
        if value is None:
            return ""
        if not isinstance(value, str):
            return checker.report(pos, "`arguments` must be a JSON string or a mapping")
        return value


MILLISECONDS = Number(minimum=0, message="`{name}` must be a number of milliseconds, 0 or more")
THRESHOLD = Number(minimum=0, maximum=1, message="`{name}` must be a number from 0 to 1 (got {shown})")


# --- the tables --------------------------------------------------------------------------------

LATENCY_MS = Key("latency_ms", "Wait before the status and headers are sent.", MILLISECONDS)
FIRST_CHUNK_DELAY_MS = Key("first_chunk_delay_ms", "Streaming: wait after the headers before the first chunk.",
                           MILLISECONDS)
DELAY_MS = Key("delay_ms", "Streaming: wait between consecutive chunks.", MILLISECONDS)
JITTER_MS = Key("jitter_ms", "Every wait varies uniformly within plus or minus this (seeded).", MILLISECONDS)
CHUNKING: Key[str | int] = Key("chunking", "How text is split into chunks: word (default), char, or N characters a chunk.", Chunking())
FAIL_AFTER_CHUNKS = Key("fail_after_chunks", "Streaming: deliver exactly N chunks, then fail as `failure` says.",
                        Integer(minimum=0))
FAILURE = Key("failure", "How the response fails (default disconnect).", OneOf(FAILURES))
HANG_MS = Key("hang_ms", "How long a `hang` lasts; absent means until the client leaves.", MILLISECONDS)
ERROR_KEY = Key("error", "Respond with this HTTP error instead of the reply (or, with failure: error_event, the "
                         "error event's payload).", ref("error"))
HEADERS = Key("headers", "Extra response headers.", ref("headers"))
FLOW_REPLY = Key("flow_reply", "Conversation flows answer with the next assistant turn (default) or always the "
                               "last (openai-mock-api 0.4).", OneOf(FLOW_REPLIES))

BEHAVIOUR = table(LATENCY_MS, FIRST_CHUNK_DELAY_MS, DELAY_MS, JITTER_MS, CHUNKING, FAIL_AFTER_CHUNKS, FAILURE,
                  HANG_MS, ERROR_KEY, HEADERS)

# behaviour keys that make a response fail; in a rule with steps they belong in the steps
FAULTS = ("error", "failure", "fail_after_chunks", "hang_ms")

STATUS = Key("status", "HTTP status (default 500).", Integer(minimum=400, maximum=599))
MESSAGE = Key("message", "error.message (default: the real API's message for the status).", String())
TYPE = Key("type", "error.type (default per status).", String())
CODE = Key("code", "error.code (default per status).", Code())
PARAM = Key("param", "error.param.", Code())
ERROR_HEADERS = Key("headers", "Headers sent with the error (retry-after, x-should-retry, ...).", ref("headers"))
BODY = Key("body", "A raw body sent instead of the JSON error (e.g. a gateway's HTML page).", String())
CONTENT_TYPE = Key("content_type", "Content-Type of the raw body (default text/html).", String())
ERROR = table(STATUS, MESSAGE, TYPE, CODE, PARAM, ERROR_HEADERS, BODY, CONTENT_TYPE)

API_KEY = Key("apiKey", "When set, /v1 and /_mock requests must carry Authorization: Bearer <apiKey>.", String())
API_KEY_ALIAS = Key("api_key", "Alias of apiKey.", String())
PORT = Key("port", "Port to listen on (default 3000; the CLI's --port wins).", Integer(minimum=0, maximum=65535))
SEED = Key("seed", "Makes jitter, generated ids and probabilistic faults reproducible.", Integer())
CORS_KEY = Key("cors", "CORS settings: {origins: [...]} (default: any origin for the API; the admin API only for "
                       "origins listed by name).", ref("cors"))
ALLOWED_HOSTS = Key(
    "allowed_hosts",
    "Host names (besides loopback and the bound address) that requests may be addressed to; .example.com for a "
    "domain and its subdomains, \"*\" for any.",
    Node({"type": "array", "items": {"type": "string", "pattern": ALLOWED_HOST}}))
MODELS = Key("models", "Model ids that GET /v1/models lists (added to the built-in ones).", Strings())
_RULES = Node({"type": ["array", "null"], "items": {"$ref": "#/$defs/rule"}})

TOP = table(
    API_KEY, API_KEY_ALIAS, PORT, SEED, CORS_KEY, ALLOWED_HOSTS,
    Key("defaults", "Behaviour keys applied to every rule that does not set them.", ref("defaults")),
    MODELS,
    Key("responses", "The rules.", _RULES),
    Key("scenarios", "Alias of responses.", _RULES),
)
# the settings of the top level, in the order they are read
SETTINGS = (API_KEY, API_KEY_ALIAS, PORT, SEED, CORS_KEY, MODELS, ALLOWED_HOSTS)

DEFAULTS_ONLY = table(FLOW_REPLY)

RULE_ID = Key("id", "Unique rule id (unique across all files).", RuleId())
DESCRIPTION = Key("description", "Free text for people; ignored.", String(nullable=True))
CYCLE = Key("cycle", "Start `steps` over after the last one.", Boolean())
RULE = table(
    RULE_ID, DESCRIPTION,
    Key("messages", "Conversation flow (openai-mock-api 0.4 form).",
        Node({"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/flowTurn"}})),
    Key("matcher", "Matcher form: messages compared with the last messages of the request.", ref("matcher")),
    Key("response", "Matcher form: a whole chat.completion object, served as given.", ref("response")),
    Key("reply", "Matcher form shorthand: the reply text (or an assistant turn); ids, model and usage are filled in.",
        Node({"anyOf": [{"type": "string"}, {"$ref": "#/$defs/assistantTurn"}]})),
    Key("moderation", "Makes this a moderation rule: /v1/moderations inputs that the `matcher` matches are flagged in "
                      "these categories (no reply; chat and other endpoints never match it).", ref("moderation")),
    Key("recorded", "Matcher form: an answer as an upstream sent it (openai-mock record), replayed as it was, to "
                    "requests of its endpoint only; `reply` then says what it answered, for the conversations "
                    "that continue from it.", ref("recorded")),
    Key("steps", "Behaviour for the 1st, 2nd, ... matching request ({} is the plain reply); the last repeats unless "
                 "cycle is true.",
        Node({"type": "array", "minItems": 1, "items": {"anyOf": [{"$ref": "#/$defs/behaviour"}, {"type": "null"}]}})),
    CYCLE,
    *DEFAULTS_ONLY.values(),
    *BEHAVIOUR.values(),
)

ROLE = Key("role", "Message role.", OneOf(ROLES))
CONTENT = Key("content", "Text to compare (or, on an assistant turn, the reply text).", String(nullable=True))
TURN_MATCHER = Key("matcher", "How content is compared (default exact).", OneOf(MATCHERS))
THRESHOLD_KEY = Key("threshold", "fuzzy: minimum similarity (default 0.8).", THRESHOLD)
TOOL_CALL_ID = Key("tool_call_id", "A tool turn: the tool call it answers.", String())
TOOL_CALLS = Key("tool_calls", "An assistant turn: tool calls to make.",
                 Node({"type": "array", "items": {"$ref": "#/$defs/toolCall"}}))
FINISH_REASON = Key("finish_reason", "An assistant turn: the finish reason (default tool_calls or stop).",
                    OneOf(FINISH_REASONS))
REFUSAL = Key("refusal", "An assistant turn: a refusal instead of content.",
              String(nullable=True, message="`{name}` must be a string"), {"type": "string"})
NAME = Key("name", "Message name (ignored when matching).", Ignored({"type": "string"}))
FLOW_TURN = table(ROLE, CONTENT, TURN_MATCHER, THRESHOLD_KEY, TOOL_CALL_ID, TOOL_CALLS, FINISH_REASON, REFUSAL, NAME)

ASSISTANT_TURN = {key: FLOW_TURN[key] for key in ("role", "content", "tool_calls", "finish_reason", "refusal")}

MATCHER_TYPE = Key("type", "How message contents are compared (default exact).", OneOf(MATCHERS))
MATCHER = table(
    MATCHER_TYPE, THRESHOLD_KEY,
    Key("messages", "Compared with the request's last messages.",
        Node({"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/matcherMessage"}})),
)

MESSAGE_CONTENT = Key("content", "Text to compare.", String(nullable=True), {"type": "string"})
MESSAGE_MATCHER = Key("matcher", "Overrides the matcher's type for this message.", OneOf(MATCHERS))
MESSAGE_TOOL_CALL_ID = Key("tool_call_id", TOOL_CALL_ID.description,
                           String(nullable=True, message="`{name}` must be a string"), {"type": "string"})
MATCHER_MESSAGE = table(ROLE, MESSAGE_CONTENT, MESSAGE_MATCHER, THRESHOLD_KEY, MESSAGE_TOOL_CALL_ID, NAME)

CALL_TYPE = Key("type", "Always function.", OneOf(("function",), message="a tool call's `type` is `function`"))
TOOL_CALL = table(
    Key("id", "Tool call id (call_...).", Node({"type": "string"})),
    CALL_TYPE,
    Key("function", "The function called.", ref("function")),
)

ARGUMENTS = Key("arguments", "Arguments as a JSON string (a mapping is encoded for you).", Arguments())
FUNCTION = table(Key("name", "Function name.", Node({"type": "string"})), ARGUMENTS)

CORS = table(Key(
    "origins", "Allowed origins, like https://app.example (default: any; \"*\" is any, [] is none).",
    Node({"anyOf": [{"type": "array", "items": {"type": "string", "pattern": ORIGIN}},
                    {"type": "string", "pattern": ORIGIN}, {"type": "null"}]})))

CATEGORY = OneOf(MODERATION_CATEGORIES)  # a moderation category, in a list or as a score's name
MODERATION = table(
    Key("categories", "The categories flagged (an empty list: not flagged).",
        Node({"type": "array", "items": CATEGORY.schema})),
    Key("scores", "category_scores by category, 0..1 (default 0.9 for a flagged category, near 0 otherwise).",
        Node({"type": "object", "propertyNames": CATEGORY.schema,
              "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1}})),
)


RECORDED_ENDPOINT = Key("endpoint", "The endpoint it was recorded from: chat, responses, completions, embeddings or "
                                    "moderations.", OneOf(ENDPOINTS))
RECORDED_STATUS = Key("status", "The HTTP status as sent (default 200; an HTTP error is recorded as `error:`).",
                      Integer(minimum=200, maximum=299))
RECORDED_HEADERS = Key("headers", "The headers a client reads, as sent (x-request-id, openai-processing-ms, "
                                  "x-ratelimit-*, content-type, ...).", ref("headers"))
RECORDED_LATENCY = Key("latency_ms", "The time the upstream took to send its head (the rule's own latency_ms "
                                     "replaces it).", MILLISECONDS)
RECORDED_EVENTS = Key("events", "A stream: every server-sent event as sent, with the wait before it (the rule's "
                                "own delay_ms and first_chunk_delay_ms replace the waits).",
                      Node({"type": "array", "items": {"$ref": "#/$defs/recordedEvent"}}))
RECORDED_BODY = Key("body", "A plain answer: its body as sent.", String())
RECORDED = table(RECORDED_ENDPOINT, RECORDED_STATUS, RECORDED_HEADERS, RECORDED_LATENCY, RECORDED_EVENTS,
                 RECORDED_BODY)
EVENT_DATA = Key("data", "The event's data, as sent (JSON text, or [DONE]).", String())
EVENT_WAIT = Key("wait_ms", "The wait before this event: after the head for the first, else after the one "
                            "before.", MILLISECONDS)
EVENT_NAME = Key("event", "The event's name, when it had one (the Responses API's events do).", String())
RECORDED_EVENT = table(EVENT_DATA, EVENT_WAIT, EVENT_NAME)


# --- unknown keys --------------------------------------------------------------------------------


def known(checker: Checker, raw: YMap, allowed: dict[str, Key[Any]], where: str, ignore: str | None = None) -> Known:
    """Report each key of `raw` that `allowed` does not list, with the key it likely misspells
    or where it belongs."""
    unknown = [key for key in raw if key not in allowed
               and not (ignore and isinstance(key, str) and key.startswith(ignore))]
    if not unknown:
        return Known(raw)
    guessed: set[str] = set()
    parts = Parts()
    for key in unknown:
        hint = ""
        close = closest(key, tuple(allowed))
        if close is not None:
            hint = f"; did you mean `{close}`?"
            guessed.add(close)
        elif isinstance(key, str):
            hint = _misplaced(key, where) or _cut_value(raw, key)
        parts.fail(checker.report(raw.key_at(key), f"unknown key `{key}` {where}{hint}"))
    return Known(raw, frozenset(guessed), Failed(shown=parts.shown) if parts.failed else None)


def _cut_value(raw: YMap, key: str) -> str:
    """A hint for words taken as a key: in `{content: Revenue up, costs down.}` the comma ends the
    value, and `costs down.` becomes a key of its own (with no value)."""
    if raw[key] is not None or not any(c.isspace() or c in ".!?" for c in key):
        return ""
    names = list(raw)
    before = names[names.index(key) - 1] if names.index(key) > 0 else None
    if before is None or not isinstance(raw[before], (str, int, float)) or isinstance(raw[before], bool):
        return "; a comma inside `{...}` ends a value: quote a value that holds a comma"
    whole = f"{raw[before]}, {key}".replace('"', '\\"')
    return (f"; a comma inside `{{...}}` ends a value, so `{key}` was read as a key: quote the value, "
            f"like `{before}: \"{whole}\"`")


def _misplaced(key: str, where: str) -> str:
    """A hint for a key that is valid, but somewhere else."""
    if where == "at the top level":
        if key in BEHAVIOUR:
            return "; to apply it to every rule, put it under `defaults:`"
        if key in RULE:
            return "; rule keys go in a rule, inside the `responses:` list"
    elif where in ("in a step", "in `defaults`") and key in RULE:
        return f"; only behaviour keys are allowed {where} (`{key}` is a key of the rule itself)"
    return ""

