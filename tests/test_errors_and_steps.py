"""Injected HTTP errors, the SDK's retries against them, and `steps` state per session."""

from __future__ import annotations

import httpx
import openai
import pytest

CONFIG = """
responses:
  - id: flaky
    matcher: {type: contains, messages: [{role: user, content: flaky}]}
    reply: "Finally."
    steps:
      - error: {status: 429, headers: {retry-after-ms: "20"}}
      - error: {status: 503}
      - {}
  - id: bad-request
    matcher: {type: contains, messages: [{role: user, content: refuse}]}
    reply: never
    error: {status: 400, message: "Invalid 'temperature': decimal above maximum value.", param: temperature, code: decimal_above_max_value}
  - id: gateway
    matcher: {type: contains, messages: [{role: user, content: gateway}]}
    reply: never
    error:
      status: 502
      body: "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"
  - id: rate-limited
    matcher: {type: contains, messages: [{role: user, content: rate limit}]}
    reply: never
    error:
      status: 429
      headers:
        x-ratelimit-limit-requests: "60"
        x-ratelimit-remaining-requests: "0"
        x-ratelimit-reset-requests: "1s"
  - id: no-retry
    matcher: {type: contains, messages: [{role: user, content: do not retry}]}
    reply: never
    error: {status: 500, headers: {x-should-retry: "false"}}
  - id: please-retry
    matcher: {type: contains, messages: [{role: user, content: please retry}]}
    reply: "ok"
    steps:
      - error: {status: 400, headers: {x-should-retry: "true"}}
      - {}
  - id: far-retry
    matcher: {type: contains, messages: [{role: user, content: come back later}]}
    reply: never
    error: {status: 429, headers: {retry-after: "300"}}
  - id: counter
    matcher: {type: contains, messages: [{role: user, content: count}]}
    reply: "plain"
    steps:
      - {error: {status: 500, message: first}}
      - {error: {status: 500, message: second}}
      - {}
  - id: cycler
    matcher: {type: contains, messages: [{role: user, content: cycle}]}
    reply: "even"
    cycle: true
    steps:
      - {}
      - {error: {status: 409}}
"""


@pytest.fixture
def server(servers):
    return servers(CONFIG)


def ask(client: openai.OpenAI, text: str, **kwargs) -> str:
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}], **kwargs)
    return completion.choices[0].message.content


def test_retries_get_through_429_then_503(server, session_id):
    assert ask(server.client(session_id), "flaky please") == "Finally."
    entries = server.journal(session_id)
    assert [(e["status"], e["step"], e["outcome"]) for e in entries] == [
        (429, 0, "error"), (503, 1, "error"), (200, 2, "completed")]
    assert all(e["rule_id"] == "flaky" for e in entries)


def test_retries_on_a_stream_too(server, session_id):
    stream = server.client(session_id).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "flaky"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "Finally."
    assert [e["status"] for e in server.journal(session_id)] == [429, 503, 200]


def test_a_400_is_not_retried(server, session_id):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(server.client(session_id), "refuse this")
    assert caught.value.param == "temperature"
    assert caught.value.code == "decimal_above_max_value"
    assert caught.value.message == "Error code: 400 - Invalid 'temperature': decimal above maximum value."
    assert len(server.journal(session_id)) == 1


def test_a_raw_html_502_is_an_internal_server_error(server, session_id):
    with pytest.raises(openai.InternalServerError) as caught:
        ask(server.client(session_id, max_retries=0), "gateway")
    assert caught.value.status_code == 502
    assert "502 Bad Gateway" in str(caught.value.body)
    response = httpx.post(f"{server.base_url}/chat/completions", json={
        "model": "m", "messages": [{"role": "user", "content": "gateway"}]})
    assert response.headers["content-type"].startswith("text/html")


def test_error_defaults_and_headers_per_status(server, session_id):
    with pytest.raises(openai.RateLimitError) as caught:
        ask(server.client(session_id, max_retries=0), "rate limit")
    error = caught.value
    assert (error.code, error.type) == ("rate_limit_exceeded", "tokens")
    assert "Rate limit reached for gpt-4o" in error.message
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.request_id and error.request_id.startswith("req_")


def test_x_should_retry_overrides_the_status(server, session_id):
    with pytest.raises(openai.InternalServerError):
        ask(server.client(session_id), "do not retry")
    assert len(server.journal(session_id)) == 1
    assert ask(server.client(session_id), "please retry") == "ok"
    assert [e["status"] for e in server.journal(session_id)][1:] == [400, 200]


def test_a_far_retry_after_is_not_retried_by_the_sdk(server, session_id):
    with pytest.raises(openai.RateLimitError):
        ask(server.client(session_id), "come back later")
    assert len(server.journal(session_id)) == 1  # retry-after 300 s is over the SDK's limit


def test_sessions_step_independently_and_reset_restarts_them(server, session_id):
    a, b = server.client(session_id + "-a", max_retries=0), server.client(session_id + "-b", max_retries=0)

    def outcome(client: openai.OpenAI) -> str:
        try:
            return ask(client, "count")
        except openai.InternalServerError as error:
            return error.body["message"]

    assert [outcome(a), outcome(a)] == ["first", "second"]
    assert outcome(b) == "first"
    assert [outcome(a), outcome(a)] == ["plain", "plain"]  # the last step repeats
    server.reset(session_id + "-a")
    assert outcome(a) == "first"
    assert outcome(b) == "second"  # only session a was reset
    assert server.journal(session_id + "-a")[0]["step"] == 0
    server.reset()
    assert outcome(b) == "first"


def test_cycle_starts_steps_over(server, session_id):
    client = server.client(session_id, max_retries=0)
    results = []
    for _ in range(4):
        try:
            results.append(ask(client, "cycle"))
        except openai.ConflictError:
            results.append(409)
    assert results == ["even", 409, "even", 409]


def test_defaults_apply_to_rules_that_do_not_set_the_key(servers, session_id):
    server = servers("""
defaults:
  headers: {x-team: mock, x-override: default}
  chunking: char
responses:
  - id: inherits
    matcher: {type: contains, messages: [{role: user, content: inherit}]}
    reply: abc
  - id: overrides
    matcher: {type: contains, messages: [{role: user, content: override}]}
    reply: abc def
    chunking: word
    headers: {x-override: rule}
""")
    client = server.client(session_id)

    def pieces(text: str) -> tuple[list[str], dict[str, str]]:
        response = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": text}], stream=True)
        chunks = [c.choices[0].delta.content for c in response.parse() if c.choices[0].delta.content]
        return chunks, response.headers

    chunks, headers = pieces("inherit")
    assert chunks == ["a", "b", "c"]
    assert (headers["x-team"], headers["x-override"]) == ("mock", "default")
    chunks, headers = pieces("override")
    assert chunks == ["abc", " def"]
    assert (headers["x-team"], headers["x-override"]) == ("mock", "rule")
