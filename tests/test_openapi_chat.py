"""Every chat response and stream chunk the mock sends validates against OpenAI's OpenAPI spec
(schemas copied into tests/data/openapi_schemas.json; see tests/schema_check.py)."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import chat_body, data_chunks
from schema_check import validate

CONFIG = """
responses:
  - id: text
    matcher: {type: contains, messages: [{role: user, content: text}]}
    reply: "Plain text, streamed word by word."
  - id: tools
    matcher: {type: contains, messages: [{role: user, content: tools}]}
    reply:
      content: Calling two tools.
      tool_calls:
        - {id: call_1, type: function, function: {name: lookup, arguments: '{"q": "a"}'}}
        - {id: call_2, type: function, function: {name: lookup, arguments: {q: b}}}
  - id: refusal
    matcher: {type: contains, messages: [{role: user, content: refus}]}
    reply: {refusal: "I can't help with that."}
  - id: as-given
    matcher: {type: contains, messages: [{role: user, content: given}]}
    response:
      id: chatcmpl-given
      object: chat.completion
      created: 1677649420
      model: gpt-3.5-turbo
      choices:
        - index: 0
          message: {role: assistant, content: As configured.}
          finish_reason: stop
      usage: {prompt_tokens: 10, completion_tokens: 3, total_tokens: 13}
  - id: refused
    matcher: {type: contains, messages: [{role: user, content: error}]}
    reply: never
    error: {status: 429}
"""

CASES = ["text", "tools", "refusal", "given"]


@pytest.fixture
def http(servers):
    with servers(CONFIG).http() as client:
        yield client


@pytest.mark.parametrize("case", CASES)
def test_completion_objects_match_the_spec(http, case):
    response = http.post("/v1/chat/completions", json=chat_body(case, stream=False))
    assert response.status_code == 200
    validate(response.json(), "CreateChatCompletionResponse")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("include_usage", [False, True])
def test_every_chunk_matches_the_spec(http, case, include_usage):
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    response = http.post("/v1/chat/completions", json=chat_body(case, **extra))
    chunks = data_chunks(response.content)
    assert len(chunks) >= 3
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert ("usage" in chunks[-1] and chunks[-1]["choices"] == []) == include_usage


def test_errors_match_the_spec(http):
    for response in (http.post("/v1/chat/completions", json=chat_body("error", stream=False)),
                     http.post("/v1/chat/completions", content=b"{"),
                     http.get("/v1/models/nope"), http.get("/v1/nothing")):
        assert response.status_code >= 400
        validate(response.json(), "ErrorResponse")


def test_models_match_the_spec(http):
    listing = http.get("/v1/models").json()
    validate(listing, "ListModelsResponse")
    assert listing["data"]
    validate(http.get("/v1/models/gpt-4o").json(), "Model")


def test_chunk_keys_follow_real_traffic_order(http):
    response = http.post("/v1/chat/completions", json=chat_body("text", stream_options={"include_usage": True}))
    chunks = data_chunks(response.content)
    assert list(chunks[0]) == ["id", "object", "created", "model", "service_tier", "system_fingerprint",
                               "choices", "usage", "obfuscation"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[-2]["choices"][0]["delta"] == {}
    # no obfuscation when the client turns it off
    plain = http.post("/v1/chat/completions", json=chat_body("text", stream_options={"include_obfuscation": False}))
    assert all("obfuscation" not in c for c in data_chunks(plain.content))


def test_tool_call_fragments_carry_id_and_name_once(http):
    chunks = data_chunks(http.post("/v1/chat/completions", json=chat_body("tools")).content)
    fragments = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])] if chunks else []
    heads = [f for f in fragments if "id" in f]
    assert [(f["index"], f["id"], f["function"]["name"], f["function"]["arguments"]) for f in heads] == [
        (0, "call_1", "lookup", ""), (1, "call_2", "lookup", "")]
    for index, expected in ((0, '{"q": "a"}'), (1, '{"q": "b"}')):
        pieces = [f for f in fragments if f["index"] == index and "id" not in f]
        assert pieces and all(set(f) == {"index", "function"} for f in pieces)
        assert "".join(f["function"]["arguments"] for f in pieces) == expected
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_recorded_real_chunks_pass_the_same_validation():
    # a guard that the validator itself accepts real traffic (gpt-4o, 2024, from the SDK's snapshots)
    real = json.loads(
        '{"id":"chatcmpl-ABfwERreu9s99xXsVuOWtIB2UOx62","object":"chat.completion.chunk","created":1727346182,'
        '"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_143bb8492c","choices":[{"index":0,"delta":'
        '{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_4XzlGBLtUe9dy3GVNV4jhq7h",'
        '"type":"function","function":{"name":"get_weather","arguments":""}}],"refusal":null},"logprobs":null,'
        '"finish_reason":null}]}')
    validate(real, "CreateChatCompletionStreamResponse")
    with pytest.raises(Exception):  # noqa: B017 - and rejects a chunk without its id
        validate({k: v for k, v in real.items() if k != "id"}, "CreateChatCompletionStreamResponse")


def test_the_real_sdk_parses_what_was_validated(servers):
    client = servers(CONFIG).client()
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "refuse"}])
    assert completion.choices[0].message.refusal == "I can't help with that."
    assert httpx.get(f"{servers(CONFIG).root}/health").status_code == 200
