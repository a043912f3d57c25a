"""The Responses API (`/v1/responses`): the official Python SDK, raw streams compared with real
recorded ones, state through previous_response_id, GET/DELETE, and every failure kind."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai
import pytest
from conftest import failure_rules, raw_request
from schema_check import response_event_schema_name, validate

RECORDED = Path(__file__).parent / "data" / "recorded_responses"

CONFIG = """
responses:
  - id: hello
    messages:
      - {role: user, content: hello, matcher: contains}
      - {role: assistant, content: "Hello, World!"}
  - id: weather-flow
    messages:
      - {role: user, content: weather, matcher: contains}
      - role: assistant
        tool_calls:
          - {id: call_abc123, type: function, function: {name: get_weather, arguments: '{"location": "New York City, USA"}'}}
      - {role: tool, tool_call_id: call_abc123}
      - {role: assistant, content: "Current weather in New York City, USA: Sunny."}
  - id: two-calls
    matcher: {type: contains, messages: [{role: user, content: both cities}]}
    reply:
      content: Let me look both up.
      tool_calls:
        - {id: call_paris, type: function, function: {name: get_weather, arguments: '{"city": "Paris"}'}}
        - {id: call_rome, type: function, function: {name: get_time, arguments: '{"city": "Rome"}'}}
  - id: with-instructions
    messages:
      - {role: system, content: You are terse.}
      - {role: user, content: instructions please}
      - {role: assistant, content: "Terse answer."}
      - {role: user, content: again}
      - {role: assistant, content: "Second answer."}
  - id: no-instructions
    messages:
      - {role: user, content: instructions please}
      - {role: assistant, content: "Untold answer."}
      - {role: user, content: again}
      - {role: assistant, content: "Second answer without instructions."}
  - id: refuse
    matcher: {type: contains, messages: [{role: user, content: forbidden}]}
    reply: {refusal: "I can't help with that."}
  - id: cut-short
    matcher: {type: contains, messages: [{role: user, content: long story}]}
    reply: {content: "Once upon a", finish_reason: length}
  - id: flaky
    matcher: {type: contains, messages: [{role: user, content: flaky}]}
    reply: "Made it."
    steps:
      - error: {status: 429, headers: {retry-after-ms: "10"}}
      - {}
  - id: quota
    matcher: {type: contains, messages: [{role: user, content: quota}]}
    reply: "never"
    error: {status: 429, type: insufficient_quota, code: insufficient_quota, message: "You exceeded your current quota."}
"""

WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Get the weather.",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                               "required": ["location"], "additionalProperties": False}, "strict": True}


@pytest.fixture
def server(servers):
    return servers(CONFIG)


def parse_stream(raw: bytes) -> list[tuple[str, dict]]:
    """(event name, data) of every event, checking the `event:` + `data:` framing as it goes."""
    text = raw.decode()
    assert text.endswith("\n\n")
    events = []
    for block in text.split("\n\n")[:-1]:
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        events.append((lines[0][len("event: "):], json.loads(lines[1][len("data: "):])))
    return events


def recorded(name: str) -> list[tuple[str, dict]]:
    # the recordings were saved without the final blank line
    return parse_stream((RECORDED / name).read_bytes().rstrip(b"\n") + b"\n\n")


def post_stream(server, body: dict, session: str | None = None) -> list[tuple[str, dict]]:
    headers = {"X-Mock-Session": session} if session else {}
    with server.http() as http:
        response = http.post("/v1/responses", json={"model": "gpt-5", "stream": True, **body}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_stream(response.content)


def check_schemas(events: list[tuple[str, dict]]) -> None:
    for name, data in events:
        assert name == data["type"]
        validate(data, response_event_schema_name(name))


def collapsed(types: list[str]) -> list[str]:
    """Event types with each run of deltas counted once: the structure, whatever the chunking."""
    result: list[str] = []
    for kind in types:
        if not (kind.endswith(".delta") and result and result[-1] == kind):
            result.append(kind)
    return result


def without_reasoning(events: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """The recording minus its reasoning item (gpt-5 reasons; the mock's replies do not)."""
    return [(n, d) for n, d in events
            if not (n.startswith("response.output_item.") and d["item"]["type"] == "reasoning")]


# --- the SDK --------------------------------------------------------------------------------


def test_create_returns_the_reply_as_a_message(server):
    response = server.client().responses.create(model="gpt-5", input="hello there")
    assert response.output_text == "Hello, World!"
    assert response.id.startswith("resp_") and len(response.id) == len("resp_") + 48
    assert response.status == "completed"
    assert response.model == "gpt-5"
    (message,) = response.output
    assert (message.type, message.role, message.status) == ("message", "assistant", "completed")
    assert message.id.startswith("msg_")
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens > 0
    validate(response.model_dump(mode="json", exclude_unset=True), "Response")


def test_create_returns_function_calls(server):
    response = server.client().responses.create(model="gpt-5", input="What's the weather in NYC?",
                                                tools=[WEATHER_TOOL])
    (call,) = response.output
    assert call.type == "function_call"
    assert (call.call_id, call.name, call.arguments) == (
        "call_abc123", "get_weather", '{"location": "New York City, USA"}')
    assert call.id.startswith("fc_")
    assert response.output_text == ""
    assert response.tools[0].name == "get_weather"


def test_raw_body_passes_the_spec(server):
    with server.http() as http:
        for body in ({"input": "hello"}, {"input": "both cities please", "tools": [WEATHER_TOOL]},
                     {"input": "forbidden thing"}, {"input": "a long story", "user": "u-1",
                                                    "metadata": {"team": "qa"}, "instructions": "Be kind."}):
            response = http.post("/v1/responses", json={"model": "gpt-5", **body})
            assert response.status_code == 200, response.text
            validate(response.json(), "Response")


def test_text_and_calls_together_become_three_items(server):
    response = server.client().responses.create(model="gpt-5", input="time and forecast in both cities")
    assert [item.type for item in response.output] == ["message", "function_call", "function_call"]
    assert response.output_text == "Let me look both up."
    assert [(c.call_id, c.name) for c in response.output[1:]] == [("call_paris", "get_weather"),
                                                                   ("call_rome", "get_time")]
    assert len({item.id for item in response.output}) == 3


def test_stream_helper_gives_the_final_response(server):
    deltas = []
    with server.client().responses.stream(model="gpt-5", input="hello") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert deltas == ["Hello,", " World!"]
    assert final.output_text == "Hello, World!"
    assert final.status == "completed"
    assert final.usage.output_tokens > 0


def test_stream_helper_with_function_calls(server):
    arguments = []
    with server.client().responses.stream(model="gpt-5", input="both cities", tools=[WEATHER_TOOL]) as stream:
        for event in stream:
            if event.type == "response.function_call_arguments.delta":
                arguments.append(event.delta)
        final = stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_paris", "get_weather", '{"city": "Paris"}'), ("call_rome", "get_time", '{"city": "Rome"}')]
    assert "".join(arguments) == '{"city": "Paris"}{"city": "Rome"}'
    assert len(arguments) > 2  # streamed in pieces, not whole


def test_async_stream_helper(server):
    import trio

    async def main() -> str:
        client = server.async_client()
        async with client.responses.stream(model="gpt-5", input="hello") as stream:
            async for _ in stream:
                pass
            final = await stream.get_final_response()
        await client.close()
        return final.output_text

    assert trio.run(main) == "Hello, World!"


def test_refusal_and_incomplete_replies(server):
    client = server.client()
    refused = client.responses.create(model="gpt-5", input="something forbidden")
    assert refused.output[0].content[0].type == "refusal"
    assert refused.output[0].content[0].refusal == "I can't help with that."
    cut = client.responses.create(model="gpt-5", input="tell me a long story")
    assert cut.status == "incomplete"
    assert cut.incomplete_details.reason == "max_output_tokens"
    events = post_stream(server, {"input": "tell me a long story"})
    check_schemas(events)
    assert events[-1][0] == "response.incomplete"
    events = post_stream(server, {"input": "forbidden"})
    check_schemas(events)
    assert "response.refusal.delta" in [name for name, _ in events]


def test_a_configured_chat_completion_answers_responses_too(fresh_server):
    server = fresh_server("""
responses:
  - id: story-request
    matcher: {type: contains, messages: [{role: user, content: story}]}
    response:
      id: chatcmpl-story
      object: chat.completion
      created: 1677649420
      model: gpt-3.5-turbo
      choices:
        - {index: 0, message: {role: assistant, content: 'Once upon a time...'}, finish_reason: stop}
      usage: {prompt_tokens: 10, completion_tokens: 18, total_tokens: 28}
""")
    response = server.client().responses.create(model="gpt-5", input="Tell me a story")
    assert response.output_text == "Once upon a time..."
    assert response.id.startswith("resp_")  # a Responses id, not the chat object's
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (10, 18, 28)


# --- raw streams against the recorded real ones -----------------------------------------------


def test_text_stream_has_the_recorded_structure(server):
    ours = post_stream(server, {"input": "hello"})
    real = without_reasoning(recorded("text.sse"))
    assert collapsed([n for n, _ in ours]) == collapsed([n for n, _ in real]) == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert [d["sequence_number"] for _, d in ours] == list(range(len(ours)))
    assert [d["sequence_number"] for _, d in recorded("text.sse")] == list(range(14))
    assert "[DONE]" not in json.dumps([d for _, d in ours])
    check_schemas(ours)
    compare_keys(ours, real)
    ids = {d["response"]["id"] for n, d in ours if "response" in d}
    assert len(ids) == 1
    assert ours[-1][1]["response"]["output"][0]["content"][0]["text"] == "Hello, World!"


def test_function_call_stream_has_the_recorded_structure(server):
    ours = post_stream(server, {"input": "weather in NYC?", "tools": [WEATHER_TOOL]})
    real = without_reasoning(recorded("function_call.sse"))
    assert collapsed([n for n, _ in ours]) == collapsed([n for n, _ in real]) == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    assert [d["sequence_number"] for _, d in ours] == list(range(len(ours)))
    check_schemas(ours)
    compare_keys(ours, real)
    added = ours[2][1]["item"]
    assert (added["status"], added["arguments"], added["call_id"]) == ("in_progress", "", "call_abc123")
    pieces = [d["delta"] for n, d in ours if n == "response.function_call_arguments.delta"]
    assert "".join(pieces) == '{"location": "New York City, USA"}'
    assert ours[-2][1]["item"]["arguments"] == '{"location": "New York City, USA"}'


# keys the mock sends differently from the recording, on purpose (the spec forbids null `user`
# and `usage`, and requires `completed_at`'s schema field, `name` on arguments.done)
SNAPSHOT_DIFFERENCE = {"user", "usage", "completed_at"}


def compare_keys(ours: list[tuple[str, dict]], real: list[tuple[str, dict]]) -> None:
    """Every event type in both has the same keys, items and response snapshots included."""
    first_real = {}
    for name, data in real:
        first_real.setdefault(name, data)
    compared = 0
    for name, data in ours:
        if name not in first_real:
            continue
        theirs = first_real[name]
        extra = {"name"} if name == "response.function_call_arguments.done" else set()
        assert set(data) ^ set(theirs) <= extra, name
        if "response" in data:
            mine, recorded_snapshot = set(data["response"]), set(theirs["response"])
            assert mine ^ recorded_snapshot <= SNAPSHOT_DIFFERENCE, (name, mine ^ recorded_snapshot)
            if data["response"]["status"] == "completed":
                assert set(data["response"]["usage"]) == set(theirs["response"]["usage"])
        if "item" in data:
            assert set(data["item"]) == set(theirs["item"]), name
        if "part" in data:
            assert set(data["part"]) == set(theirs["part"]), name
        compared += 1
    assert compared == len(ours)


def test_error_event_stream_has_the_recorded_structure(fresh_server):
    server = fresh_server("""
responses:
  - id: quota-mid-stream
    matcher: {type: any}
    reply: "never seen"
    fail_after_chunks: 2
    failure: error_event
    error: {status: 429, type: insufficient_quota, code: insufficient_quota, message: "You exceeded your current quota."}
""")
    ours = post_stream(server, {"input": "anything"})
    real = recorded("error_event.sse")
    assert [n for n, _ in ours] == [n for n, _ in real] == [
        "response.created", "response.in_progress", "error", "response.failed"]
    assert [d["sequence_number"] for _, d in ours] == [0, 1, 2, 3]
    error = ours[2][1]
    assert error["error"] == {"type": "insufficient_quota", "code": "insufficient_quota",
                              "message": "You exceeded your current quota.", "param": None}
    assert set(real[2][1]["error"]) == set(error["error"])
    failed = ours[3][1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == "You exceeded your current quota."
    check_schemas(ours)


# --- state: store, previous_response_id, GET, DELETE ------------------------------------------


def test_multi_turn_through_previous_response_id(server, session_id):
    client = server.client(session_id)
    first = client.responses.create(model="gpt-5", input="What's the weather in NYC?", tools=[WEATHER_TOOL])
    call = first.output[0]
    assert call.type == "function_call"
    second = client.responses.create(
        model="gpt-5", previous_response_id=first.id, tools=[WEATHER_TOOL],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'}])
    assert second.output_text == "Current weather in New York City, USA: Sunny."
    assert second.previous_response_id == first.id
    # without the stored turn the output answers no call: the real API's error
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-5", input=[
            {"type": "function_call_output", "call_id": call.call_id, "output": "x"}])
    assert caught.value.param == "input"
    assert "No tool call found for function call output with call_id call_abc123" in caught.value.message
    # the same conversation sent in full, without stored state, matches the same turn
    manual = client.responses.create(model="gpt-5", store=False, input=[
        {"role": "user", "content": "What's the weather in NYC?"},
        {"type": "function_call", "call_id": "call_abc123", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_abc123", "output": "21C"},
    ])
    assert manual.output_text == "Current weather in New York City, USA: Sunny."


def test_item_references_stand_for_the_stored_items(server, session_id):
    # what the Vercel AI SDK sends with `store` on: earlier assistant turns as references
    client = server.client(session_id)
    first = client.responses.create(model="gpt-5", input="instructions please")
    assert first.output_text == "Untold answer."
    second = client.responses.create(model="gpt-5", input=[
        {"role": "user", "content": "instructions please"},
        {"type": "item_reference", "id": first.output[0].id},
        {"role": "user", "content": "again"}])
    assert second.output_text == "Second answer without instructions."
    # a function call item, referenced, is the assistant's tool call that the output answers
    call = client.responses.create(model="gpt-5", input="What's the weather in NYC?", tools=[WEATHER_TOOL])
    assert call.output[0].type == "function_call"
    answer = client.responses.create(model="gpt-5", tools=[WEATHER_TOOL], input=[
        {"role": "user", "content": "What's the weather in NYC?"},
        {"type": "item_reference", "id": call.output[0].id},
        {"type": "function_call_output", "call_id": call.output[0].call_id, "output": "21C"}])
    assert answer.output_text == "Current weather in New York City, USA: Sunny."


def test_referenced_text_and_calls_of_one_response_are_one_assistant_turn(fresh_server, session_id):
    server = fresh_server(CONFIG + """
  - id: after-both
    matcher:
      type: any
      messages: [{role: user}, {role: assistant}, {role: tool}, {role: tool}]
    reply: Both answered.
""")
    client = server.client(session_id)
    both = client.responses.create(model="gpt-5", input="both cities please")
    assert [item.type for item in both.output] == ["message", "function_call", "function_call"]
    follow = client.responses.create(model="gpt-5", input=[
        {"role": "user", "content": "both cities please"},
        *[{"type": "item_reference", "id": item.id} for item in both.output],
        *[{"type": "function_call_output", "call_id": item.call_id, "output": "ok"} for item in both.output[1:]]])
    assert follow.output_text == "Both answered."


@pytest.mark.parametrize("case", ["unknown", "store-false", "deleted", "other-session"])
def test_an_item_reference_that_names_nothing_is_refused(server, session_id, case):
    client = server.client(session_id)
    item_id = "msg_0123456789abcdef0123456789abcdef0123456789abcdef"
    if case != "unknown":
        made = client.responses.create(model="gpt-5", input="hello", store=case != "store-false")
        item_id = made.output[0].id
        if case == "deleted":
            client.responses.delete(made.id)
        if case == "other-session":
            client = server.client(session_id + "-other")
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="gpt-5", input=[
            {"role": "user", "content": "hello"}, {"type": "item_reference", "id": item_id}])
    assert caught.value.param == "input"
    assert caught.value.body["message"] == (
        f"Item with id '{item_id}' not found. Items are not persisted when `store` is set to false. "
        "Try again with `store` set to true, or remove this item from your input.")


def test_a_streamed_response_is_stored_too(server, session_id):
    client = server.client(session_id)
    with client.responses.stream(model="gpt-5", input="weather?", tools=[WEATHER_TOOL]) as stream:
        first = stream.get_final_response()
    second = client.responses.create(model="gpt-5", previous_response_id=first.id, input=[
        {"type": "function_call_output", "call_id": "call_abc123", "output": "21C"}])
    assert second.output_text == "Current weather in New York City, USA: Sunny."


def test_instructions_are_a_system_message_never_carried_over(server, session_id):
    client = server.client(session_id)
    first = client.responses.create(model="gpt-5", instructions="You are terse.", input="instructions please")
    assert first.output_text == "Terse answer."
    assert first.instructions == "You are terse."
    # the next turn without instructions: the stored conversation has none
    second = client.responses.create(model="gpt-5", previous_response_id=first.id, input="again")
    assert second.output_text == "Second answer without instructions."
    assert second.instructions is None
    third = client.responses.create(model="gpt-5", previous_response_id=first.id, input="again",
                                    instructions="You are terse.")
    assert third.output_text == "Second answer."
    plain = client.responses.create(model="gpt-5", input=[
        {"role": "developer", "content": "You are terse."},
        {"role": "user", "content": [{"type": "input_text", "text": "instructions please"}]}])
    assert plain.output_text == "Terse answer."  # developer and system are the same seat


def test_get_and_delete(server, session_id):
    client = server.client(session_id)
    created = client.responses.create(model="gpt-5", input="hello", metadata={"run": "7"})
    fetched = client.responses.retrieve(created.id)
    assert fetched.model_dump() == created.model_dump()
    with server.http() as http:
        raw = http.get(f"/v1/responses/{created.id}", headers={"X-Mock-Session": session_id})
        validate(raw.json(), "Response")
        assert raw.json()["metadata"] == {"run": "7"}
    assert client.responses.delete(created.id) is None
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve(created.id)
    assert caught.value.body["message"] == f"No response found with id '{created.id}'."
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-5", previous_response_id=created.id, input="hello")
    assert (caught.value.param, caught.value.code) == ("previous_response_id", "previous_response_not_found")
    assert caught.value.body["message"] == f"Previous response with id '{created.id}' not found."


def test_delete_body_and_unknown_ids(server, session_id):
    created = server.client(session_id).responses.create(model="gpt-5", input="hello")
    with server.http() as http:
        headers = {"X-Mock-Session": session_id, "Authorization": "Bearer test-key"}
        deleted = http.delete(f"/v1/responses/{created.id}", headers=headers)
        assert deleted.status_code == 200
        assert deleted.json() == {"id": created.id, "object": "response.deleted", "deleted": True}
        again = http.delete(f"/v1/responses/{created.id}", headers=headers)
        assert again.status_code == 404
        assert set(again.json()["error"]) == {"message", "type", "param", "code"}
        assert http.get("/v1/responses/resp_unknown", headers=headers).status_code == 404


def test_store_false_is_not_kept(server, session_id):
    client = server.client(session_id)
    created = client.responses.create(model="gpt-5", input="hello", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError, match="not found"):
        client.responses.create(model="gpt-5", previous_response_id=created.id, input="hello")


def test_sessions_keep_their_own_responses(server, session_id):
    mine = server.client(session_id).responses.create(model="gpt-5", input="hello")
    with pytest.raises(openai.NotFoundError):
        server.client(session_id + "-other").responses.retrieve(mine.id)
    server.reset(session_id)
    with pytest.raises(openai.NotFoundError):
        server.client(session_id).responses.retrieve(mine.id)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"input": 5}, "input", "invalid_type"),
    ({}, "input", "missing_required_parameter"),
    ({"input": [{"role": "wizard", "content": "x"}]}, "input[0].role", "invalid_value"),
    ({"input": [{"role": "user"}]}, "input[0].content", "missing_required_parameter"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id", "missing_required_parameter"),
    ({"input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]}, "input[0].name",
     "missing_required_parameter"),
    ({"input": "hello", "temperature": 3}, "temperature", "decimal_above_max_value"),
    ({"input": "hello", "max_output_tokens": 5}, "max_output_tokens", "integer_below_min_value"),
    ({"input": "hello", "tools": [{"type": "function"}]}, "tools[0].name", "missing_required_parameter"),
    ({"input": "hello", "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
    ({"input": "hello", "store": "yes"}, "store", "invalid_type"),
])
def test_bad_requests_are_400_with_param(server, body, param, code):
    with server.http() as http:
        response = http.post("/v1/responses", json={"model": "gpt-5", **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")


def test_no_match_and_injected_errors(server, session_id):
    client = server.client(session_id, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-5", input="zzz", stream=True)
    assert caught.value.code == "no_matching_rule"
    assert "rule 'hello'" in caught.value.message
    with pytest.raises(openai.RateLimitError) as caught:
        client.responses.create(model="gpt-5", input="quota please", stream=True)
    assert caught.value.code == "insufficient_quota"
    # steps: a 429 first, then the reply; the SDK's retry gets it
    retrying = server.client(session_id)
    assert retrying.responses.create(model="gpt-5", input="flaky?").output_text == "Made it."
    assert [e["status"] for e in server.journal(session_id)[-2:]] == [429, 200]


def test_timing_applies_to_responses_streams(fresh_server):
    server = fresh_server("""
responses:
  - id: slow
    matcher: {type: any}
    reply: one two three four
    latency_ms: 200
    delay_ms: 100
""")
    started = time.monotonic()
    with server.client().responses.stream(model="gpt-5", input="x") as stream:
        final = stream.get_final_response()
    assert final.output_text == "one two three four"
    # 200 ms before the headers, then 100 ms between each of the 12 events (4 of them deltas)
    assert time.monotonic() - started >= 0.2 + 11 * 0.1


# --- failures on a Responses stream -----------------------------------------------------------

FAILURES = failure_rules("one two three four five")


@pytest.fixture
def failing(servers):
    return servers(FAILURES)


def sdk_events(server, kind: str, session: str):
    """(the events the SDK yielded, what it raised or None, seconds taken)."""
    client = server.client(session, max_retries=0)
    received = []
    started = time.monotonic()
    try:
        for event in client.responses.create(model="gpt-5", input=f"fail:{kind}", stream=True):
            received.append(event)
    except Exception as error:  # noqa: BLE001 - what the SDK raises is the point
        return received, error, time.monotonic() - started
    return received, None, time.monotonic() - started


FIRST_THREE = ["response.created", "response.in_progress", "response.output_item.added"]


@pytest.mark.parametrize(("kind", "raised"), [
    ("disconnect", openai.APIConnectionError),
    ("reset", openai.APIConnectionError),
    ("hang", openai.APIConnectionError),
    ("malformed", json.JSONDecodeError),
    ("error_event", openai.APIError),
    ("truncate", None),
])
def test_each_failure_through_the_sdk(failing, session_id, kind, raised):
    events, error, seconds = sdk_events(failing, kind, session_id)
    assert [e.type for e in events] == FIRST_THREE
    assert [e.sequence_number for e in events] == [0, 1, 2]
    if raised is None:
        assert error is None  # a clean end looks like success to the SDK
    else:
        assert isinstance(error, raised), repr(error)
    if kind == "hang":
        assert seconds >= 0.3
    if kind == "error_event":
        assert error.type == "server_error"
        assert error.message == "The server had an error while processing your request. Sorry about that!"
    entry = failing.journal(session_id)[-1]
    assert (entry["outcome"], entry["chunks_sent"], entry["stream"]) == (f"failed:{kind}", 3, True)


def test_truncate_leaves_the_helper_without_a_final_response(failing):
    with failing.client().responses.stream(model="gpt-5", input="fail:truncate") as stream, \
            pytest.raises(RuntimeError, match="response.completed"):
        stream.get_final_response()


def raw(server, kind: str):
    return raw_request("127.0.0.1", server.port, "POST", "/v1/responses",
                       {"model": "gpt-5", "input": f"fail:{kind}", "stream": True})


def raw_events(body: bytes) -> list[tuple[str, dict | str]]:
    """Events as (name, data), the data left as text when it is not JSON."""
    result = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n")
        data = data.removeprefix("data: ")
        try:
            result.append((name.removeprefix("event: "), json.loads(data)))
        except ValueError:
            result.append((name.removeprefix("event: "), data))
    return result


@pytest.mark.parametrize(("kind", "ending", "terminated"), [
    ("disconnect", "eof", False),
    ("reset", "reset", False),
    ("hang", "eof", False),
    ("truncate", "complete", True),
])
def test_each_cut_on_the_wire(failing, kind, ending, terminated):
    response = raw(failing, kind)
    events = raw_events(response.body)
    assert [name for name, _ in events] == FIRST_THREE
    assert [data["sequence_number"] for _, data in events] == [0, 1, 2]
    assert response.body.endswith(b"\n\n")
    assert (response.ending, response.terminated) == (ending, terminated)
    if kind == "hang":
        assert response.elapsed >= 0.3


def test_malformed_on_the_wire(failing):
    response = raw(failing, "malformed")
    events = raw_events(response.body)
    assert [name for name, _ in events] == FIRST_THREE + ["response.content_part.added"]
    assert isinstance(events[3][1], str)  # the fourth event's JSON, cut in half
    with pytest.raises(ValueError):
        json.loads(events[3][1])
    assert response.terminated


def test_error_event_on_the_wire(failing):
    response = raw(failing, "error_event")
    events = raw_events(response.body)
    assert [name for name, _ in events] == FIRST_THREE + ["error", "response.failed"]
    assert [data["sequence_number"] for _, data in events] == [0, 1, 2, 3, 4]
    error = events[3][1]
    assert error["error"]["type"] == "server_error"
    assert (error["code"], error["message"]) == (error["error"]["code"], error["error"]["message"])
    failed = events[4][1]["response"]
    assert (failed["status"], failed["error"]["code"]) == ("failed", "server_error")
    check_schemas(events)
    assert response.terminated


def test_httpx_sees_exactly_three_events_before_a_disconnect(failing):
    seen = []
    with httpx.Client(timeout=10) as http, pytest.raises(httpx.RemoteProtocolError), http.stream(
            "POST", f"{failing.base_url}/responses",
            json={"model": "gpt-5", "input": "fail:disconnect", "stream": True}) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                seen.append(line.removeprefix("event: "))
    assert seen == FIRST_THREE


def test_a_failed_stream_is_stored_as_failed(failing, session_id):
    events, error, _ = sdk_events(failing, "error_event", session_id)
    assert isinstance(error, openai.APIError)
    response_id = events[0].response.id
    stored = failing.client(session_id).responses.retrieve(response_id)
    assert stored.status == "failed"
    assert stored.error.code == "server_error"
    # a dropped stream was generated in full: it is stored as completed
    events, error, _ = sdk_events(failing, "disconnect", session_id)
    assert isinstance(error, openai.APIConnectionError)
    stored = failing.client(session_id).responses.retrieve(events[0].response.id)
    assert (stored.status, stored.output_text) == ("completed", "one two three four five")
