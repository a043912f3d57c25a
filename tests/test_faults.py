"""Mid-stream failures, faults before anything is sent, and error injection (issue 3)."""

from __future__ import annotations

import json
import time

import openai
import pytest
from conftest import chat_body, failure_rules, raw_request

REPLY = "one two three four five six seven eight"

FAULTS = failure_rules(REPLY) + """
  - id: error-payload
    matcher: {type: contains, messages: [{role: user, content: "custom error event"}]}
    reply: "one two three"
    fail_after_chunks: 1
    failure: error_event
    error: {status: 429, message: "Slow down mid-stream", code: rate_limit_exceeded, type: tokens}
  - id: few-chunks
    matcher: {type: contains, messages: [{role: user, content: "few chunks"}]}
    reply: "hi"
    fail_after_chunks: 50
    failure: truncate
"""


@pytest.fixture
def faults(servers):
    return servers(FAULTS)


def collect(client: openai.OpenAI, text: str, **kwargs):
    """(the chunks received, the exception that ended the stream or None, seconds taken)."""
    received = []
    started = time.monotonic()
    try:
        stream = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": text}], stream=True, **kwargs)
        for chunk in stream:
            received.append(chunk)
    except Exception as error:  # noqa: BLE001 - what the SDK raises is what the test is about
        return received, error, time.monotonic() - started
    return received, None, time.monotonic() - started


def assert_first_three(chunks) -> None:
    assert len(chunks) == 3
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:]] == ["one", " two"]


@pytest.mark.parametrize("kind", ["disconnect", "reset"])
def test_cut_connections_raise_api_connection_error_after_three_chunks(faults, session_id, kind):
    chunks, error, _ = collect(faults.client(session_id), f"fail:{kind}")
    assert_first_three(chunks)
    assert isinstance(error, openai.APIConnectionError)
    entry = faults.journal(session_id)[-1]
    assert (entry["outcome"], entry["chunks_sent"], entry["rule_id"]) == (f"failed:{kind}", 3, kind)


def test_truncate_ends_cleanly_without_done(faults, session_id):
    chunks, error, _ = collect(faults.client(session_id), "fail:truncate")
    assert error is None  # every SDK takes a clean end as success: that is the trap
    assert_first_three(chunks)
    assert all(c.choices[0].finish_reason is None for c in chunks)


def test_hang_then_drop(faults, session_id):
    chunks, error, seconds = collect(faults.client(session_id), "fail:hang")
    assert_first_three(chunks)
    assert isinstance(error, openai.APIConnectionError)
    assert seconds >= 0.3
    assert faults.journal(session_id)[-1]["outcome"] == "failed:hang"


def test_malformed_event_breaks_the_json_parser(faults):
    chunks, error, _ = collect(faults.client(), "fail:malformed")
    assert_first_three(chunks)
    assert isinstance(error, json.JSONDecodeError)


def test_error_event_raises_api_error(faults, session_id):
    chunks, error, _ = collect(faults.client(session_id), "fail:error_event")
    assert_first_three(chunks)
    assert isinstance(error, openai.APIError)
    assert error.type == "server_error"
    assert faults.journal(session_id)[-1]["chunks_sent"] == 3
    chunks, error, _ = collect(faults.client(), "custom error event")
    assert len(chunks) == 1
    assert isinstance(error, openai.APIError)
    assert error.message == "Slow down mid-stream"
    assert error.code == "rate_limit_exceeded"


def test_short_reply_fails_in_place_of_done(faults):
    response = raw_request("127.0.0.1", faults.port, "POST", "/v1/chat/completions", chat_body("few chunks"))
    events = response.events
    assert json.loads(events[-1])["choices"][0]["finish_reason"] == "stop"  # every chunk arrived
    assert "[DONE]" not in events
    assert response.terminated


# --- what a raw socket sees -----------------------------------------------------------------


def raw(server, text: str):
    return raw_request("127.0.0.1", server.port, "POST", "/v1/chat/completions", chat_body(text))


@pytest.mark.parametrize(("kind", "ending", "terminated"), [
    ("disconnect", "eof", False),  # FIN mid-body: the chunked body is left unterminated
    ("reset", "reset", False),  # a TCP reset
    ("truncate", "complete", True),  # a clean end, too early
    ("hang", "eof", False),  # nothing more for hang_ms, then FIN
])
def test_raw_cuts_after_three_events(faults, kind, ending, terminated):
    response = raw(faults, f"fail:{kind}")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert len(response.events) == 3
    assert (response.ending, response.terminated) == (ending, terminated)
    if kind == "hang":
        assert response.elapsed >= 0.3


def test_raw_malformed_sends_half_an_event(faults):
    response = raw(faults, "fail:malformed")
    events = response.events
    assert len(events) == 4
    for event in events[:3]:
        json.loads(event)
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[3])
    assert events[3].startswith('{"id":"chatcmpl-')
    assert response.terminated


def test_raw_error_event(faults):
    response = raw(faults, "fail:error_event")
    events = response.events
    assert len(events) == 4
    assert set(json.loads(events[3])["error"]) == {"message", "type", "param", "code"}
    assert "[DONE]" not in events
    assert response.terminated


# --- faults before anything is sent ---------------------------------------------------------

BEFORE = """
responses:
  - id: drop-at-once
    matcher: {type: contains, messages: [{role: user, content: "drop at once"}]}
    reply: never sent
    failure: disconnect
  - id: reset-at-once
    matcher: {type: contains, messages: [{role: user, content: "reset at once"}]}
    reply: never sent
    failure: reset
  - id: hang-at-once
    matcher: {type: contains, messages: [{role: user, content: "hang at once"}]}
    reply: never sent
    failure: hang
"""


def test_disconnect_before_anything_is_retried_twice(servers, session_id):
    server = servers(BEFORE)
    client = server.client(session_id)
    for text in ("drop at once", "reset at once"):
        for stream in (False, True):
            started = len(server.journal(session_id))
            with pytest.raises(openai.APIConnectionError):
                client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": text}], stream=stream)
            entries = server.journal(session_id)[started:]
            kind = text.split()[0].replace("drop", "disconnect")
            assert [e["outcome"] for e in entries] == [f"failed:{kind}"] * 3  # the SDK's 2 retries
            assert [e["status"] for e in entries] == [None] * 3


def test_hang_against_a_client_timeout(servers, session_id):
    server = servers(BEFORE)
    client = server.client(session_id, timeout=0.5, max_retries=0)
    for stream in (True, False):
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hang at once"}], stream=stream)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        outcomes = [e["outcome"] for e in server.journal(session_id)]
        if outcomes == ["client_disconnected"] * 2:
            break
        time.sleep(0.05)
    assert outcomes == ["client_disconnected"] * 2


def test_mid_stream_hang_against_a_read_timeout(servers, session_id):
    server = servers("""
responses:
  - id: stall
    matcher: {type: any}
    reply: one two three four
    fail_after_chunks: 2
    failure: hang
""")
    chunks, error, _ = collect(server.client(session_id, timeout=0.5, max_retries=0), "anything")
    assert len(chunks) == 2
    assert isinstance(error, openai.APITimeoutError)
    deadline = time.monotonic() + 5
    while server.journal(session_id)[-1]["outcome"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    entry = server.journal(session_id)[-1]
    assert (entry["outcome"], entry["chunks_sent"]) == ("client_disconnected", 2)
