"""Legacy `/v1/completions` and `/v1/moderations` through the official Python SDK and raw."""

from __future__ import annotations

import json

import openai
import pytest
from conftest import data_chunks, raw_request, sse_events
from schema_check import validate

from openai_mock.scenario import load_text
from openai_mock.scenario.load import ConfigError

CONFIG = """
responses:
  - id: haiku
    messages:
      - {role: user, content: haiku, matcher: contains}
      - {role: assistant, content: "Silent circuits hum"}
  - id: cut
    matcher: {type: contains, messages: [{role: user, content: "cut me"}]}
    reply: one two three four five
    fail_after_chunks: 2
  - id: threats
    matcher: {type: contains, messages: [{role: user, content: hurt you}]}
    moderation:
      categories: [violence, harassment/threatening]
      scores: {violence: 0.97}
  - id: hate-and-images
    matcher: {type: regex, messages: [{role: user, content: '\\bhateful\\b'}]}
    moderation: {categories: [hate, violence/graphic]}
  - id: moderation-outage
    matcher: {type: contains, messages: [{role: user, content: outage}]}
    moderation: {categories: []}
    steps:
      - error: {status: 503}
      - {}
"""


@pytest.fixture
def server(servers):
    return servers(CONFIG)


def check_completion_chunk(chunk: dict, last: bool) -> None:
    """The spec shares one schema between the object and its chunks but forbids the null
    finish_reason that every chunk but the last carries on the real API: checked apart."""
    for choice in chunk["choices"]:
        if not last:
            assert choice["finish_reason"] is None
            choice = dict(choice, finish_reason="stop")
        validate({**chunk, "choices": [choice]}, "CreateCompletionResponse")
    if not chunk["choices"]:
        validate(chunk, "CreateCompletionResponse")


# --- legacy completions -----------------------------------------------------------------------


def test_completion_through_the_sdk(server):
    completion = server.client().completions.create(model="gpt-3.5-turbo-instruct", prompt="Write a haiku")
    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-")
    assert completion.model == "gpt-3.5-turbo-instruct"
    (choice,) = completion.choices
    assert (choice.text, choice.index, choice.finish_reason, choice.logprobs) == ("Silent circuits hum", 0, "stop", None)
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    with server.http() as http:
        validate(http.post("/v1/completions", json={"model": "m", "prompt": "haiku"}).json(),
                 "CreateCompletionResponse")


def test_completion_stream(server):
    chunks = list(server.client().completions.create(model="gpt-3.5-turbo-instruct", prompt="haiku",
                                                     stream=True))
    assert "".join(c.choices[0].text for c in chunks) == "Silent circuits hum"
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None, "stop"]
    assert {c.id for c in chunks} == {chunks[0].id}
    assert {c.object for c in chunks} == {"text_completion"}


def test_completion_stream_on_the_wire_with_usage(server):
    response = raw_request("127.0.0.1", server.port, "POST", "/v1/completions",
                           {"model": "m", "prompt": "haiku", "stream": True, "stream_options": {"include_usage": True}})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.body)
    assert events[-1] == "[DONE]"
    chunks = data_chunks(response.body)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert all("usage" not in c for c in chunks[:-1])
    for n, chunk in enumerate(chunks):
        check_completion_chunk(chunk, last=n >= len(chunks) - 2)
    assert response.terminated


def test_echo_sends_the_prompt_back(server):
    client = server.client()
    assert client.completions.create(model="m", prompt="haiku: ", echo=True).choices[0].text == \
        "haiku: Silent circuits hum"
    chunks = list(client.completions.create(model="m", prompt="haiku: ", echo=True, stream=True))
    assert chunks[0].choices[0].text == "haiku: "


def test_prompt_forms(server):
    client = server.client(max_retries=0)
    assert client.completions.create(model="m", prompt=["a haiku please"]).choices[0].text == "Silent circuits hum"
    with pytest.raises(openai.BadRequestError, match="one prompt per request") as caught:
        client.completions.create(model="m", prompt=["haiku one", "haiku two"])
    assert caught.value.param == "prompt"
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="m", prompt="no rule for this")
    assert caught.value.code == "no_matching_rule"
    with server.http() as http:
        error = http.post("/v1/completions", json={"model": "m"}).json()["error"]
        assert (error["param"], error["code"]) == ("prompt", "missing_required_parameter")


def test_faults_apply_to_completion_streams(server, session_id):
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in server.client(session_id, max_retries=0).completions.create(model="m", prompt="cut me",
                                                                                 stream=True):
            received.append(chunk.choices[0].text)
    assert received == ["one", " two"]
    entry = server.journal(session_id)[-1]
    assert (entry["outcome"], entry["chunks_sent"], entry["rule_id"]) == ("failed:disconnect", 2, "cut")


# --- moderations ------------------------------------------------------------------------------


def test_not_flagged_unless_a_rule_says_so(server):
    result = server.client().moderations.create(input="What a lovely day")
    assert result.id.startswith("modr-")
    assert result.model == "omni-moderation-latest"
    (verdict,) = result.results
    assert verdict.flagged is False
    assert not any(verdict.categories.model_dump().values())
    assert all(0 <= s < 0.01 for s in verdict.category_scores.model_dump().values())


def test_a_moderation_rule_flags_its_categories(server, session_id):
    result = server.client(session_id).moderations.create(
        model="omni-moderation-latest", input=["I will hurt you", "hello", "such hateful words"])
    threat, calm, hateful = result.results
    assert threat.flagged and not calm.flagged and hateful.flagged
    flagged = {k for k, v in threat.categories.model_dump(by_alias=True).items() if v}
    assert flagged == {"violence", "harassment/threatening"}
    scores = threat.category_scores.model_dump(by_alias=True)
    assert scores["violence"] == 0.97 and scores["harassment/threatening"] == 0.9
    assert {k for k, v in hateful.categories.model_dump(by_alias=True).items() if v} == {"hate", "violence/graphic"}
    assert server.journal(session_id)[-1]["rule_id"] == "threats"


def test_moderation_body_passes_the_spec(server):
    with server.http() as http:
        for value in ("I will hurt you", ["a", "hateful b"],
                      [{"type": "text", "text": "I will hurt you"},
                       {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]):
            body = http.post("/v1/moderations", json={"input": value}).json()
            validate(body, "CreateModerationResponse")


def test_category_applied_input_types(server):
    with server.http() as http:
        both = http.post("/v1/moderations", json={"input": [
            {"type": "text", "text": "I will hurt you"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}).json()
        image = http.post("/v1/moderations", json={"input": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}).json()
    (result,) = both["results"]
    assert result["flagged"] is True  # the text part matched
    types = result["category_applied_input_types"]
    assert types["violence"] == ["text", "image"]
    assert types["harassment"] == ["text"]
    (only_image,) = image["results"]
    assert only_image["category_applied_input_types"]["sexual"] == ["image"]
    assert only_image["category_applied_input_types"]["hate"] == []


def test_behaviour_keys_apply_to_moderation_rules(server, session_id):
    client = server.client(session_id, max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.moderations.create(input="during the outage")
    result = client.moderations.create(input="during the outage")
    assert result.results[0].flagged is False  # `categories: []` flags nothing
    assert [e["step"] for e in server.journal(session_id)] == [0, 1]


def test_moderation_rules_never_answer_chat(server):
    with pytest.raises(openai.BadRequestError, match="No rule matched"):
        server.client(max_retries=0).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "I will hurt you"}])


@pytest.mark.parametrize(("body", "param"), [
    ({}, "input"),
    ({"input": 5}, "input"),
    ({"input": [{"type": "video", "video": {}}]}, "input[0].type"),
    ({"input": [{"type": "text"}]}, "input[0].text"),
])
def test_bad_moderation_requests(server, body, param):
    with server.http() as http:
        response = http.post("/v1/moderations", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(("rule", "problem"), [
    ("matcher: {type: any}\n    moderation: {categories: [violent]}", "`category` must be one of"),
    ("matcher: {type: any}\n    moderation: {categories: [hate]}\n    reply: hi", "a moderation rule has"),
    ("moderation: {categories: [hate]}", "needs a `matcher`"),
    ("matcher: {type: any}\n    moderation: {}", "needs `categories`"),
    ("matcher: {type: any}\n    moderation: {categories: [hate], scores: {hate: 2}}", "from 0 to 1"),
])
def test_bad_moderation_rules_are_reported_with_their_place(rule, problem):
    with pytest.raises(ConfigError) as caught:
        load_text(f"responses:\n  - id: m\n    {rule}\n", "mod.yaml")
    assert problem in str(caught.value)
    assert str(caught.value).startswith("mod.yaml:")


def test_the_schema_command_knows_moderation_rules():
    from openai_mock.scenario.schema import json_schema

    schema = json_schema()
    moderation = schema["$defs"]["moderation"]
    assert "categories" in moderation["required"]
    assert "violence" in json.dumps(moderation)
    rule = schema["$defs"]["moderationRule"]  # (one schema per rule form, told by its own key)
    assert set(rule["required"]) == {"matcher", "moderation"}
    assert "moderation" in rule["properties"]
    import jsonschema

    good = {"responses": [{"id": "m", "matcher": {"type": "any"},
                           "moderation": {"categories": ["hate"], "scores": {"violence": 0.5}}}]}
    jsonschema.validate(good, schema)
    for bad in ({"categories": ["violent"]}, {"categories": ["hate"], "scores": {"hate": 2}}, {}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"responses": [{"id": "m", "matcher": {"type": "any"}, "moderation": bad}]}, schema)
