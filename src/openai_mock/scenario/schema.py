"""The JSON Schema of scenario files (`openai-mock schema`), built from `keys.py`."""

from __future__ import annotations

from typing import Any

from . import keys


def _object(table: dict[str, tuple[dict[str, Any], str]], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: {**fragment, "description": text} for name, (fragment, text) in table.items()},
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return schema


def json_schema() -> dict[str, Any]:
    rule = _object(keys.RULE, required=("id",))
    rule["oneOf"] = [
        {"required": ["messages"]},
        {"anyOf": [{"required": ["response"]}, {"required": ["reply"]}]},
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/openai-mock/openai-mock/scenario.schema.json",
        "title": "openai-mock scenario file",
        "anyOf": [_object(keys.TOP), {"type": "array", "items": {"$ref": "#/$defs/rule"}}],
        "$defs": {
            "rule": rule,
            "behaviour": _object(keys.BEHAVIOUR),
            "defaults": _object({**keys.BEHAVIOUR, **keys.DEFAULTS_ONLY}),
            "error": {
                "anyOf": [
                    {"type": "integer", "minimum": 400, "maximum": 599},
                    _object(keys.ERROR),
                ]
            },
            "headers": {
                "type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            },
            "flowTurn": _object(keys.FLOW_TURN, required=("role",)),
            "assistantTurn": _object(keys.ASSISTANT_TURN),
            "matcher": _object(keys.MATCHER),
            "matcherMessage": _object(keys.MATCHER_MESSAGE, required=("role",)),
            "toolCall": _object(keys.TOOL_CALL, required=("id", "function")),
            "function": _object(keys.FUNCTION, required=("name",)),
            "cors": _object(keys.CORS),
        },
    }
