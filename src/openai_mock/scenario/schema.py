"""The JSON Schema of scenario files (`openai-mock schema`), built from `keys.py`.

Key names, types, bounds and enums all come from the keys of `keys.py` (each key's check gives
its fragment, so the loader and the schema read the same bounds); this module adds only
the structure between keys (which keys go together, which exclude each other), so that an
editor flags most of what `openai-mock check` would. Rules that need the whole file (unique
ids, a flow ending with an assistant turn) are left to `check`.
"""

from __future__ import annotations

from typing import Any

from . import keys
from .kernel import Key


def _object(table: dict[str, Key[Any]], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: {**key.schema, "description": key.description} for name, key in table.items()},
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return schema


def _has(*names: str) -> dict[str, Any]:
    # ("type" too: jsonschema's best_match ranks an error of a schema without one above the
    # `additionalProperties` error that names a misspelt key)
    return {"type": "object", "required": list(names)}


def _none_of(*names: str) -> dict[str, Any]:
    return {"not": {"anyOf": [_has(name) for name in names]}}


def _is(key: str, *values: str) -> dict[str, Any]:
    """`key` is present and one of `values`."""
    return {"type": "object", "required": [key], "properties": {key: {"enum": list(values)}}}


# The forms of a rule, each the keys it may have besides the common ones, and the keys it needs.
# A rule's form is told by the key that only it has (`messages`, `moderation`, `recorded`,
# `response`; else the reply form), so that a validator reports the mistake within the form the
# rule is written in: a missing `reply`, an unexpected key named, never "matches none of the forms".
_FORM_KEYS = ("messages", "matcher", "response", "reply", "moderation", "recorded", "flow_reply")
FORMS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    # $defs name: (title, its own keys, the keys it needs)
    "flowRule": ("conversation flow (`messages`)", ("messages", "flow_reply"), ("messages",)),
    "moderationRule": ("moderation rule (`matcher` and `moderation`)", ("matcher", "moderation"),
                       ("matcher", "moderation")),
    "recordedRule": ("recorded answer (`matcher` and `recorded`)", ("matcher", "recorded", "reply"),
                     ("matcher", "recorded")),
    "responseRule": ("matcher form with a whole `response`", ("matcher", "response"), ("matcher", "response")),
    "replyRule": ("matcher form with a `reply`", ("matcher", "reply"), ("matcher", "reply")),
}


def _form(name: str) -> dict[str, Any]:
    title, own, needed = FORMS[name]
    allowed = [key for key in keys.RULE if key not in _FORM_KEYS or key in own]
    return {"title": title, "type": "object", "properties": dict.fromkeys(allowed, True),
            "required": list(needed), "additionalProperties": False}


def _rule() -> dict[str, Any]:
    rule = _object(keys.RULE, required=("id",))
    del rule["additionalProperties"]  # (each form lists the keys it allows)

    def form(name: str) -> dict[str, Any]:
        return {"$ref": f"#/$defs/{name}"}

    rule["if"], rule["then"] = _has("messages"), form("flowRule")
    rule["else"] = {"if": _has("moderation"), "then": form("moderationRule"),
                    "else": {"if": _has("recorded"), "then": form("recordedRule"),
                             "else": {"if": _has("response"), "then": form("responseRule"),
                                      "else": form("replyRule")}}}
    rule["dependentRequired"] = {"cycle": ["steps"]}
    rule["allOf"] = [{"if": _has("steps"), "then": _none_of(*keys.FAULTS)}]  # faults go in the steps
    return rule


def _flow_turn() -> dict[str, Any]:
    turn = _object(keys.FLOW_TURN, required=("role",))
    compared = [role for role in keys.ROLES if role != "assistant"]
    turn["allOf"] = [
        {  # an assistant turn is a reply: it says something and is not compared
            "if": _is("role", "assistant"),
            "then": {"anyOf": [_has("content"), _has("tool_calls"), _has("refusal")],
                     **_none_of("matcher", "threshold", "tool_call_id")},
            "else": _none_of("tool_calls", "finish_reason", "refusal"),
        },
        {"if": _has("tool_call_id"), "then": _is("role", "tool")},
        {"if": _has("threshold"), "then": _is("matcher", "fuzzy")},
        {  # a compared turn needs text to compare, unless it matches any (tool turns default to any)
            "if": {"allOf": [_is("role", *[r for r in compared if r != "tool"]),
                             {"not": _is("matcher", "any")}]},
            "then": _has("content"),
        },
    ]
    return turn


def _assistant_turn() -> dict[str, Any]:
    turn = _object(keys.ASSISTANT_TURN)
    turn["properties"]["role"] = {**turn["properties"]["role"], "const": "assistant"}
    turn["anyOf"] = [_has("content"), _has("tool_calls"), _has("refusal")]
    return turn


def _any_case(words: tuple[str, ...]) -> str:
    """A pattern matching any of `words` ignoring case (JSON Schema patterns have no flags)."""
    spelled = ("".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)
               for word in words)
    return "^(" + "|".join(spelled) + ")$"


def _matcher() -> dict[str, Any]:
    matcher = _object(keys.MATCHER)
    fuzzy_message = {"type": "array", "contains": _is("matcher", "fuzzy")}
    matcher["allOf"] = [
        {"if": _has("threshold"),
         "then": {"anyOf": [_is("type", "fuzzy"), {"required": ["messages"], "properties": {"messages": fuzzy_message}}]}},
        {"if": {"not": _is("type", "any")}, "then": _has("messages")},
    ]
    return matcher


def _response() -> dict[str, Any]:
    """A chat.completion object: served as given, so any key is allowed; `choices` is checked."""
    message = _object(keys.ASSISTANT_TURN)
    message["additionalProperties"] = True  # e.g. annotations, audio: passed through
    message["anyOf"] = [_has("content"), _has("tool_calls"), _has("refusal")]
    return {
        "type": "object",
        "required": ["choices"],
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string"},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {
                        "index": {"type": "integer", "minimum": 0},
                        "message": message,
                        "finish_reason": {"enum": list(keys.FINISH_REASONS)},
                    },
                },
            },
            "usage": {
                "type": ["object", "null"],
                "properties": {name: {"type": "integer", "minimum": 0}
                               for name in ("prompt_tokens", "completion_tokens", "total_tokens")},
            },
        },
    }


def _top() -> dict[str, Any]:
    """The top level: its keys, or `x-...` keys of the user's own. An unknown key is reported by
    name with the keys allowed ("'respones' is not one of [...]"), not as a mismatch of patterns."""
    top = _object(keys.TOP)
    del top["additionalProperties"]
    extension = f"^{keys.EXTENSION_PREFIX}"
    top["patternProperties"] = {extension: {"description": "Your own: anchors to share, notes; ignored."}}
    top["propertyNames"] = {"if": {"not": {"pattern": extension}}, "then": {"enum": list(keys.TOP)}}
    top["allOf"] = [  # an alias and its name, not both
        {"not": _has("apiKey", "api_key")},
        {"not": _has("responses", "scenarios")},
    ]
    return top


def json_schema() -> dict[str, Any]:
    error = _object(keys.ERROR)
    error["dependentRequired"] = {"content_type": ["body"]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/openai-mock/openai-mock/scenario.schema.json",
        "title": "openai-mock scenario file",
        "description": "A configuration of openai-mock: settings and a `responses:` list of rules "
                       "(or a bare list of rules). An empty file is an empty configuration.",
        # one schema by the document's type (not `anyOf`, whose errors would all be "is not an array")
        "type": ["object", "array", "null"],
        "allOf": [{"if": {"type": "object"}, "then": {"$ref": "#/$defs/top"}},
                  {"if": {"type": "array"}, "then": {"items": {"$ref": "#/$defs/rule"}}}],
        "$defs": {
            "top": _top(),
            "rule": _rule(),
            **{name: _form(name) for name in FORMS},
            "behaviour": _object(keys.BEHAVIOUR),
            "defaults": {"anyOf": [_object({**keys.BEHAVIOUR, **keys.DEFAULTS_ONLY}), {"type": "null"}]},
            "error": {
                "anyOf": [
                    keys.STATUS.schema,  # (a status alone)
                    error,
                ]
            },
            "headers": {
                "type": "object",
                "propertyNames": {"pattern": keys.HEADER_NAME,
                                  "not": {"pattern": _any_case(keys.FRAMING_HEADERS)}},
                "additionalProperties": {"type": ["string", "number", "boolean", "null"],
                                         "pattern": r"^[\t\u0020-\u007e\u0080-\u00ff]*$"},
            },
            "flowTurn": _flow_turn(),
            "assistantTurn": _assistant_turn(),
            "matcher": _matcher(),
            "matcherMessage": _object(keys.MATCHER_MESSAGE, required=("role",)),
            "response": _response(),
            "toolCall": _object(keys.TOOL_CALL, required=("id", "function")),
            "function": _object(keys.FUNCTION, required=("name",)),
            "cors": {"anyOf": [_object(keys.CORS), {"type": "null"}]},
            "moderation": _object(keys.MODERATION, required=("categories",)),
            "recorded": {**_object(keys.RECORDED, required=("endpoint",)),
                         "oneOf": [{"required": ["events"]}, {"required": ["body"]}]},
            "recordedEvent": _object(keys.RECORDED_EVENT, required=("data",)),
        },
    }
