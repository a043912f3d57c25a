"""Fuzzing the five generation endpoints with requests shaped by OpenAI's own spec.

Each example builds a request body from the endpoint's request schema in OpenAI's OpenAPI spec
(copied into tests/data/openapi_schemas.json by tests/data/make_openapi_schemas.py), then
mutates it: values at any depth are swapped for values of another type or unexpected ones
(`{"type": {}}` where a content part's type belongs, a list where a string does, a huge
integer where a small one does). The real server, with a rule that answers anything, must
answer every such body like the real API would: a 2xx, or a 4xx with an OpenAI error body;
never a 5xx, and never a traceback in its log.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schema_check import DATA_FILE

SCHEMAS: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))["schemas"]

# path -> its request schema, and the fields every request has (the spec leaves the Responses
# API's `input` optional, for requests that name a stored prompt)
ENDPOINTS = {
    "/v1/chat/completions": ("CreateChatCompletionRequest", ("model", "messages")),
    "/v1/responses": ("CreateResponse", ("model", "input")),
    "/v1/completions": ("CreateCompletionRequest", ("model", "prompt")),
    "/v1/embeddings": ("CreateEmbeddingRequest", ("model", "input")),
    "/v1/moderations": ("CreateModerationRequest", ("input",)),
}

# what openai-mock refuses by design (docs/responses.md)
NOT_IMPLEMENTED = {"conversation"}

ANSWER_ANYTHING = """
responses:
  - id: anything
    matcher: {type: any}
    reply: Fuzzed.
  - id: moderated
    matcher: {type: any}
    moderation: {categories: [violence]}
"""

# the keys whose value picks what the rest of an object means: a parser looks them up in tables,
# compares them, dispatches on them, so half of the swaps go there
SWITCHES = {"type", "role"}

OPTIONAL_DEPTH = 5  # below this depth an object gets only its required properties
LAST_DEPTH = 10  # and below this one, nothing at all (a schema may require itself)

# What replaces a value: another type (containers most often: a dict or a list where a string or
# a number belongs is what breaks lookups and comparisons), or a value that looks right but is not.
CONTAINERS = st.sampled_from([{}, [], {"type": {}}, {"type": []}, [{}], [[]], [None], {"": {}}, ["a"] * 5])
ODD_VALUES = st.one_of(
    CONTAINERS, CONTAINERS,
    st.sampled_from([None, "", "bogus", True, False, -1, 0, 1.5, 2**63, -(2**70), 1e308]),
    st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6),
)


# strings as clients write them, and now and then any text (an empty one is one of the odd values)
WORDS = st.one_of(st.sampled_from(["hello", "x", "gpt-4o", "call_1", "{}"]), st.text(min_size=1, max_size=8))


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        target = SCHEMAS[schema["$ref"].removeprefix("#/schemas/")]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _merged(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One object schema from an `allOf`: the parts' properties and required names together."""
    merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for part in map(_resolve, parts):
        if "allOf" in part:
            part = _merged(part["allOf"])
        merged["properties"].update(part.get("properties", {}))
        merged["required"] += part.get("required", [])
    return merged


def _value(draw: st.DrawFn, schema: dict[str, Any], depth: int, always: tuple[str, ...] = ()) -> Any:
    """A value of `schema`, drawn the way a client would write it."""
    schema = _resolve(schema)
    if depth > LAST_DEPTH:
        return None
    if "allOf" in schema:
        schema = _merged(schema["allOf"])
    if "enum" in schema:
        return draw(st.sampled_from(schema["enum"]))
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        # conversations are mostly messages, but the Responses API lists 30 other kinds of item
        messages = [a for a in alternatives if "role" in _resolve(a).get("properties", {})]
        if messages and draw(st.booleans()):
            alternatives = messages
        return _value(draw, draw(st.sampled_from(alternatives)), depth)
    if schema.get("nullable") and draw(st.integers(0, 9)) == 0:
        return None
    kind = schema.get("type") or ("object" if "properties" in schema else "array" if "items" in schema else None)
    if kind == "object":
        required = {*schema.get("required", ()), *always}
        return {name: _value(draw, property_schema, depth + 1)
                for name, property_schema in schema.get("properties", {}).items()
                if name in required or (depth < OPTIONAL_DEPTH and draw(st.integers(0, 4)) == 0)}
    if kind == "array":
        low = schema.get("minItems", 0)
        high = max(low, min(schema.get("maxItems", low + 2), low + 2)) if depth < OPTIONAL_DEPTH else low
        return [_value(draw, schema.get("items", {}), depth + 1) for _ in range(draw(st.integers(low, high)))]
    if kind == "string":
        return draw(WORDS)
    if kind in ("integer", "number"):
        low = schema.get("minimum", -10)
        high = min(schema.get("maximum", low + 300), low + 2**31)
        if kind == "integer":
            return draw(st.integers(min_value=int(low), max_value=int(high)))
        return draw(st.floats(min_value=low, max_value=high))
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "null":
        return None
    return draw(st.sampled_from(["x", 1, {}]))  # a schema that says nothing


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where each value inside `value` sits, at every depth."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    found = [path] if path else []
    for key, child in children:
        found += _paths(child, (*path, key))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    if isinstance(value, dict):
        return {**value, head: _replaced(value[head], tuple(rest), new)}
    return [_replaced(item, tuple(rest), new) if i == head else item for i, item in enumerate(value)]


def _usable(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """`body` without what the spec allows but the real API refuses (`stream_options` on a request
    that does not stream, `top_logprobs` without `logprobs`) or openai-mock refuses by design
    (several prompts in one request, the Conversations API), so that a body's faults are the ones
    the mutation made."""
    body = {key: value for key, value in body.items() if key not in NOT_IMPLEMENTED}
    if "stream_options" in body:
        body["stream"] = True
    if path == "/v1/chat/completions" and "top_logprobs" in body:
        body["logprobs"] = True
    if path == "/v1/completions" and isinstance(body["prompt"], list) and len(body["prompt"]) != 1:
        body["prompt"] = body["prompt"][:1] or "hello"
    return body


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, Any]:
    path = draw(st.sampled_from(sorted(ENDPOINTS)))
    schema, always = ENDPOINTS[path]
    body = _usable(path, _value(draw, SCHEMAS[schema], 0, always))
    # one swap, anywhere in the body with the same chance, reaches deep fields past the checks of
    # the outer ones; a few at once break several things together
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        paths = _paths(body)
        switches = [p for p in paths if p[-1] in SWITCHES]
        if switches and draw(st.booleans()):
            where = draw(st.sampled_from(switches))
        else:
            depth = draw(st.sampled_from(sorted({len(p) for p in paths})))  # every depth as often
            where = draw(st.sampled_from([p for p in paths if len(p) == depth]))
        body = _replaced(body, where, draw(ODD_VALUES))
    return path, body


@pytest.fixture(scope="module")
def fuzzed(servers):
    server = servers(ANSWER_ANYTHING)
    with httpx.Client(base_url=server.root, timeout=30,
                      headers={"Authorization": f"Bearer {server.api_key}"}) as http:
        yield server, http


# A fixed number of examples from a fixed seed (derandomize): every run, here and in CI, sends
# the same requests, so the test's time is steady and a failure is the same one everywhere.
# hypothesis's example database is off for the same reason: no run depends on an earlier one.
@settings(max_examples=1500, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(request=requests())
def test_no_request_shaped_by_the_spec_gets_a_5xx_or_a_traceback(fuzzed, request):
    server, http = fuzzed
    path, body = request
    logged = len(server.log())
    response = http.post(path, json=body)
    assert response.status_code < 500, f"{path} {json.dumps(body)[:2000]} -> {response.text[:2000]}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str) and error["message"], error
        assert error["type"] == "invalid_request_error", error
        assert error["param"] is None or isinstance(error["param"], str), error
        assert error["code"] is None or isinstance(error["code"], str), error
    assert "Traceback" not in server.log()[logged:], f"{path} {json.dumps(body)[:2000]}"
