"""Every key a scenario file may use, in one place.

The loader checks files against these tables and `openai-mock schema` turns the same
tables into a JSON Schema, so the two can never disagree on a name.
"""

from __future__ import annotations

import ipaddress
import re

from .model import FAILURES, MATCHER_RANK, MODERATION_CATEGORIES

MATCHERS = tuple(MATCHER_RANK)
BEHAVIOUR_FAILURES = FAILURES
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

# key -> (JSON Schema fragment, description)
BEHAVIOUR = {
    "latency_ms": ({"type": "number", "minimum": 0}, "Wait before the status and headers are sent."),
    "first_chunk_delay_ms": ({"type": "number", "minimum": 0}, "Streaming: wait after the headers before the first chunk."),
    "delay_ms": ({"type": "number", "minimum": 0}, "Streaming: wait between consecutive chunks."),
    "jitter_ms": ({"type": "number", "minimum": 0}, "Every wait varies uniformly within plus or minus this (seeded)."),
    "chunking": (
        {"anyOf": [{"enum": ["word", "char"]}, {"type": "integer", "minimum": 1}]},
        "How text is split into chunks: word (default), char, or N characters a chunk.",
    ),
    "fail_after_chunks": ({"type": "integer", "minimum": 0}, "Streaming: deliver exactly N chunks, then fail as `failure` says."),
    "failure": ({"enum": list(FAILURES)}, "How the response fails (default disconnect)."),
    "hang_ms": ({"type": "number", "minimum": 0}, "How long a `hang` lasts; absent means until the client leaves."),
    "error": ({"$ref": "#/$defs/error"}, "Respond with this HTTP error instead of the reply (or, with failure: error_event, the error event's payload)."),
    "headers": ({"$ref": "#/$defs/headers"}, "Extra response headers."),
}

# behaviour keys that make a response fail; in a rule with steps they belong in the steps
FAULTS = ("error", "failure", "fail_after_chunks", "hang_ms")

ERROR = {
    "status": ({"type": "integer", "minimum": 400, "maximum": 599}, "HTTP status (default 500)."),
    "message": ({"type": "string"}, "error.message (default: the real API's message for the status)."),
    "type": ({"type": "string"}, "error.type (default per status)."),
    "code": ({"type": ["string", "null"]}, "error.code (default per status)."),
    "param": ({"type": ["string", "null"]}, "error.param."),
    "headers": ({"$ref": "#/$defs/headers"}, "Headers sent with the error (retry-after, x-should-retry, ...)."),
    "body": ({"type": "string"}, "A raw body sent instead of the JSON error (e.g. a gateway's HTML page)."),
    "content_type": ({"type": "string"}, "Content-Type of the raw body (default text/html)."),
}

TOP = {
    "apiKey": ({"type": "string"}, "When set, /v1 and /_mock requests must carry Authorization: Bearer <apiKey>."),
    "api_key": ({"type": "string"}, "Alias of apiKey."),
    "port": ({"type": "integer", "minimum": 0, "maximum": 65535}, "Port to listen on (default 3000; the CLI's --port wins)."),
    "seed": ({"type": "integer"}, "Makes jitter, generated ids and probabilistic faults reproducible."),
    "cors": ({"$ref": "#/$defs/cors"}, "CORS settings: {origins: [...]} (default: any origin for the API; the admin API only for origins listed by name)."),
    "allowed_hosts": (
        {"type": "array", "items": {"type": "string", "pattern": ALLOWED_HOST}},
        "Host names (besides loopback and the bound address) that requests may be addressed to; .example.com for a domain and its subdomains, \"*\" for any.",
    ),
    "defaults": ({"$ref": "#/$defs/defaults"}, "Behaviour keys applied to every rule that does not set them."),
    "models": ({"type": "array", "items": {"type": "string"}}, "Model ids that GET /v1/models lists (added to the built-in ones)."),
    "responses": ({"type": ["array", "null"], "items": {"$ref": "#/$defs/rule"}}, "The rules."),
    "scenarios": ({"type": ["array", "null"], "items": {"$ref": "#/$defs/rule"}}, "Alias of responses."),
}

DEFAULTS_ONLY = {
    "flow_reply": ({"enum": list(FLOW_REPLIES)}, "Conversation flows answer with the next assistant turn (default) or always the last (openai-mock-api 0.4)."),
}

RULE = {
    "id": ({"type": ["string", "number"], "pattern": r"\S"}, "Unique rule id (unique across all files)."),
    "description": ({"type": ["string", "null"]}, "Free text for people; ignored."),
    "messages": ({"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/flowTurn"}}, "Conversation flow (openai-mock-api 0.4 form)."),
    "matcher": ({"$ref": "#/$defs/matcher"}, "Matcher form: messages compared with the last messages of the request."),
    "response": ({"$ref": "#/$defs/response"}, "Matcher form: a whole chat.completion object, served as given."),
    "reply": (
        {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/assistantTurn"}]},
        "Matcher form shorthand: the reply text (or an assistant turn); ids, model and usage are filled in.",
    ),
    "moderation": (
        {"$ref": "#/$defs/moderation"},
        "Makes this a moderation rule: /v1/moderations inputs that the `matcher` matches are flagged in these categories (no reply; chat and other endpoints never match it).",
    ),
    "steps": (
        {"type": "array", "minItems": 1, "items": {"anyOf": [{"$ref": "#/$defs/behaviour"}, {"type": "null"}]}},
        "Behaviour for the 1st, 2nd, ... matching request ({} is the plain reply); the last repeats unless cycle is true.",
    ),
    "cycle": ({"type": "boolean"}, "Start `steps` over after the last one."),
    **DEFAULTS_ONLY,
    **BEHAVIOUR,
}

FLOW_TURN = {
    "role": ({"enum": list(ROLES)}, "Message role."),
    "content": ({"type": ["string", "null"]}, "Text to compare (or, on an assistant turn, the reply text)."),
    "matcher": ({"enum": list(MATCHERS)}, "How content is compared (default exact)."),
    "threshold": ({"type": "number", "minimum": 0, "maximum": 1}, "fuzzy: minimum similarity (default 0.8)."),
    "tool_call_id": ({"type": "string"}, "A tool turn: the tool call it answers."),
    "tool_calls": ({"type": "array", "items": {"$ref": "#/$defs/toolCall"}}, "An assistant turn: tool calls to make."),
    "finish_reason": ({"enum": list(FINISH_REASONS)}, "An assistant turn: the finish reason (default tool_calls or stop)."),
    "refusal": ({"type": "string"}, "An assistant turn: a refusal instead of content."),
    "name": ({"type": "string"}, "Message name (ignored when matching)."),
}

ASSISTANT_TURN = {
    key: FLOW_TURN[key] for key in ("role", "content", "tool_calls", "finish_reason", "refusal")
}

MATCHER = {
    "type": ({"enum": list(MATCHERS)}, "How message contents are compared (default exact)."),
    "threshold": ({"type": "number", "minimum": 0, "maximum": 1}, "fuzzy: minimum similarity (default 0.8)."),
    "messages": ({"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/matcherMessage"}}, "Compared with the request's last messages."),
}

MATCHER_MESSAGE = {
    "role": FLOW_TURN["role"],
    "content": ({"type": "string"}, "Text to compare."),
    "matcher": ({"enum": list(MATCHERS)}, "Overrides the matcher's type for this message."),
    "threshold": FLOW_TURN["threshold"],
    "tool_call_id": FLOW_TURN["tool_call_id"],
    "name": FLOW_TURN["name"],
}

TOOL_CALL = {
    "id": ({"type": "string"}, "Tool call id (call_...)."),
    "type": ({"const": "function"}, "Always function."),
    "function": ({"$ref": "#/$defs/function"}, "The function called."),
}

FUNCTION = {
    "name": ({"type": "string"}, "Function name."),
    "arguments": ({"type": ["string", "object"]}, "Arguments as a JSON string (a mapping is encoded for you)."),
}

CORS = {
    "origins": (
        {"anyOf": [{"type": "array", "items": {"type": "string", "pattern": ORIGIN}},
                   {"type": "string", "pattern": ORIGIN}, {"type": "null"}]},
        "Allowed origins, like https://app.example (default: any; \"*\" is any, [] is none).",
    ),
}

MODERATION = {
    "categories": (
        {"type": "array", "items": {"enum": list(MODERATION_CATEGORIES)}},
        "The categories flagged (an empty list: not flagged).",
    ),
    "scores": (
        {"type": "object", "propertyNames": {"enum": list(MODERATION_CATEGORIES)},
         "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1}},
        "category_scores by category, 0..1 (default 0.9 for a flagged category, near 0 otherwise).",
    ),
}
