"""Chat completions through the official Python SDK against the real server."""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import openai
import pytest
import trio
import yaml
from conftest import SEED

MATCHERS = """
responses:
  - id: exact-rule
    messages:
      - {role: user, content: "  Exact words  "}
      - {role: assistant, content: "exact reply"}
  - id: contains-rule
    messages:
      - {role: user, content: Weather, matcher: contains}
      - {role: assistant, content: "contains reply"}
  - id: regex-rule
    messages:
      - {role: user, content: '^order #\\d+$', matcher: regex}
      - {role: assistant, content: "regex reply"}
  - id: case-regex
    messages:
      - {role: user, content: '(?-i:^CAPS only$)', matcher: regex}
      - {role: assistant, content: "case regex reply"}
  - id: fuzzy-rule
    messages:
      - {role: user, content: "I need help with my account", matcher: fuzzy, threshold: 0.8}
      - {role: assistant, content: "fuzzy reply"}
  - id: any-rule
    messages:
      - {role: system, matcher: any}
      - {role: user, matcher: any}
      - {role: assistant, content: "any reply"}
  - id: tail-rule
    matcher:
      type: contains
      messages:
        - {role: assistant, content: "previous"}
        - {role: user, content: "follow"}
    reply: "tail reply"
"""


def ask(client: openai.OpenAI, *messages: tuple[str, str], **kwargs) -> str:
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": r, "content": c} for r, c in messages], **kwargs)
    return completion.choices[0].message.content


@pytest.fixture
def matchers(servers):
    return servers(MATCHERS)


def test_exact_compares_trimmed_text(matchers):
    client = matchers.client()
    assert ask(client, ("user", "Exact words")) == "exact reply"
    assert ask(client, ("user", "Exact words\n")) == "exact reply"
    with pytest.raises(openai.BadRequestError):
        ask(client, ("user", "exact words"))


def test_contains_ignores_case(matchers):
    assert ask(matchers.client(), ("user", "what's the WEATHER like?")) == "contains reply"


def test_regex_is_an_unanchored_search_ignoring_case(matchers):
    client = matchers.client()
    assert ask(client, ("user", "ORDER #42")) == "regex reply"
    with pytest.raises(openai.BadRequestError):  # (?-i:...) turns case back on
        ask(client, ("user", "caps ONLY"))
    assert ask(client, ("user", "CAPS only")) == "case regex reply"


def test_fuzzy_uses_the_threshold(matchers):
    client = matchers.client()
    assert ask(client, ("user", "I need help with my acount")) == "fuzzy reply"
    with pytest.raises(openai.BadRequestError):
        ask(client, ("user", "completely unrelated text here"))


def test_any_matches_by_role(matchers):
    assert ask(matchers.client(), ("system", "be brief"), ("user", "whatever")) == "any reply"


def test_matcher_form_compares_the_last_messages(matchers):
    client = matchers.client()
    reply = ask(client, ("user", "first"), ("assistant", "the previous answer"), ("user", "please follow up"))
    assert reply == "tail reply"
    with pytest.raises(openai.BadRequestError):  # fewer messages than the matcher compares
        ask(client, ("user", "follow"))


def test_the_most_specific_rule_wins(servers):
    server = servers("""
responses:
  - id: loose
    messages: [{role: user, content: hello, matcher: contains}, {role: assistant, content: loose}]
  - id: strict
    messages: [{role: user, content: hello there}, {role: assistant, content: strict}]
  - id: loose-too
    messages: [{role: user, content: hello, matcher: contains}, {role: assistant, content: loose-too}]
""")
    client = server.client()
    assert ask(client, ("user", "hello there")) == "strict"  # exact outranks contains
    assert ask(client, ("user", "hello you")) == "loose"  # same rank: file order


def test_a_flow_answers_turn_by_turn(servers):
    server = servers("""
responses:
  - id: conversation-flow
    messages:
      - role: user
        content: 'Start conversation'
      - role: assistant
        content: 'Hello! How can I help you?'
      - role: user
        content: 'Tell me about the weather'
      - role: assistant
        content: 'The weather is sunny today!'
""")
    client = server.client()
    history = [{"role": "user", "content": "Start conversation"}]
    first = client.chat.completions.create(model="gpt-4o", messages=history)
    assert first.choices[0].message.content == "Hello! How can I help you?"
    history += [first.choices[0].message.model_dump(exclude_none=True),
                {"role": "user", "content": "Tell me about the weather"}]
    second = client.chat.completions.create(model="gpt-4o", messages=history)
    assert second.choices[0].message.content == "The weather is sunny today!"
    history += [second.choices[0].message.model_dump(exclude_none=True), {"role": "user", "content": "and?"}]
    with pytest.raises(openai.BadRequestError, match="more than the flow"):
        client.chat.completions.create(model="gpt-4o", messages=history)


def test_flow_reply_last_restores_the_04_behaviour(servers):
    server = servers("""
defaults: {flow_reply: last}
responses:
  - id: two-turns
    messages:
      - {role: user, content: one}
      - {role: assistant, content: first answer}
      - {role: user, matcher: any}
      - {role: assistant, content: last answer}
""")
    assert ask(server.client(), ("user", "one")) == "last answer"
    assert ask(server.client(), ("user", "one"), ("assistant", "first answer")) == "last answer"


TOOLS = """
responses:
  - id: weather-tool-flow
    messages:
      - {role: user, content: weather, matcher: contains}
      - role: assistant
        tool_calls:
          - id: call_abc123
            type: function
            function: {name: get_weather, arguments: '{"location": "San Francisco", "unit": "celsius"}'}
      - {role: tool, matcher: any, tool_call_id: call_abc123}
      - {role: assistant, content: "It's sunny in San Francisco!"}
  - id: two-calls
    messages:
      - {role: user, content: both cities, matcher: contains}
      - role: assistant
        content: Let me look both up.
        tool_calls:
          - {id: call_paris, type: function, function: {name: get_weather, arguments: '{"city": "Paris"}'}}
          - {id: call_rome, type: function, function: {name: get_time, arguments: '{"city": "Rome"}'}}
"""

WEATHER_TOOL = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]


def test_tool_call_stream_helper_gets_the_exact_call(servers):
    client = servers(TOOLS).client()
    with client.chat.completions.stream(
        model="gpt-4o", messages=[{"role": "user", "content": "What's the weather in SF?"}], tools=WEATHER_TOOL,
    ) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id == "call_abc123"
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"location": "San Francisco", "unit": "celsius"}'


def test_tool_turn_gets_the_answer(servers):
    client = servers(TOOLS).client()
    messages = [{"role": "user", "content": "weather in SF?"}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=WEATHER_TOOL)
    call = first.choices[0].message.tool_calls[0]
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'}]
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=WEATHER_TOOL)
    assert second.choices[0].message.content == "It's sunny in San Francisco!"
    messages[-1]["tool_call_id"] = "call_other"
    with pytest.raises(openai.BadRequestError, match="call_abc123"):
        client.chat.completions.create(model="gpt-4o", messages=messages, tools=WEATHER_TOOL)


def test_parallel_tool_calls_and_text_stream(servers):
    client = servers(TOOLS).client()
    with client.chat.completions.stream(
        model="gpt-4o", messages=[{"role": "user", "content": "time and forecast in both cities"}],
    ) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me look both up."
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_paris", "get_weather", '{"city": "Paris"}'),
        ("call_rome", "get_time", '{"city": "Rome"}'),
    ]


def test_include_usage_adds_a_usage_chunk(servers):
    client = servers(MATCHERS).client()
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Exact words"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    plain = list(client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Exact words"}], stream=True))
    assert all(c.choices for c in plain)


# --- the seed configurations, unchanged -----------------------------------------------------


def seed_documents(name: str) -> list[str]:
    text = (SEED / name).read_text()
    return [doc for doc in text.split("\n---\n")[1:] if doc.strip()]


GUIDE = seed_documents("streaming-guide.yaml")


@pytest.mark.parametrize(("document", "rule_id", "question"), [
    (0, "story-request", "Tell me a story"),
    (1, "short-stream", "Hi"),
    (1, "long-stream", "Please explain streaming"),
    (1, "code-stream", "Show me some code"),
])
def test_streaming_guide_rules(servers, document, rule_id, question):
    text = GUIDE[document]
    rule = next(r for r in yaml.safe_load(text)["responses"] if r["id"] == rule_id)
    expected = rule["response"]
    server = servers(text, api_key="test-key")
    client = server.client()
    messages = [{"role": "user", "content": question}]

    completion = client.chat.completions.create(model="gpt-3.5-turbo", messages=messages)
    assert completion.id == expected["id"]
    assert completion.created == expected["created"]
    assert completion.model == expected["model"]
    assert completion.choices[0].message.content == expected["choices"][0]["message"]["content"]
    assert completion.usage.prompt_tokens == expected["usage"]["prompt_tokens"]
    assert completion.usage.total_tokens == expected["usage"]["total_tokens"]

    chunks = list(client.chat.completions.create(model="gpt-3.5-turbo", messages=messages, stream=True))
    assert {c.id for c in chunks} == {expected["id"]}
    assert {c.created for c in chunks} == {expected["created"]}
    assert {c.model for c in chunks} == {expected["model"]}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices[0].delta.content is None
    text_chunks = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert "".join(text_chunks) == expected["choices"][0]["message"]["content"]
    assert len(text_chunks) > 1 or len(expected["choices"][0]["message"]["content"].split()) == 1


README = seed_documents("readme-examples-0.4.yaml")


def test_every_readme_example_loads(servers):
    for text in README:
        server = servers(text, api_key=yaml.safe_load(text).get("apiKey", "any-key"))
        scenarios = httpx.get(f"{server.root}/_mock/scenarios", headers=server.admin_headers).json()["data"]
        ids = [r["id"] for r in yaml.safe_load(text)["responses"]]
        assert [s["id"] for s in scenarios] == ids
        assert {s["form"] for s in scenarios} == {"flow"}


@pytest.mark.parametrize(("section", "messages", "expected"), [
    ("Basic Usage", [("user", "Hello, how are you?")], "Hello! I'm doing well, thank you for asking."),
    ("Fuzzy Match", [("user", "I need help with something!")], "I'd be happy to help!"),
    ("Regex Match", [("user", "Can you write code in Python?")], "Here's some Python code for you!"),
    ("Contains Match", [("user", "How is the weather in Paris?")], "The weather is nice today!"),
    ("Any Match", [("user", "anything at all")], "Thanks for your message!"),
    ("Full Configuration Example", [("user", "I need help!")],
     "I'd be happy to help! What do you need assistance with?"),
    ("Full Configuration Example", [("system", "You are kind."), ("user", "please help me")],
     "How can I assist you today?"),
    ("Full Configuration Example",
     [("system", "You are kind."), ("user", "please help me"), ("assistant", "How can I assist you today?"),
      ("user", "That's all")], "Thanks for using our service!"),
])
def test_readme_examples_behave_as_documented(servers, section, messages, expected):
    text = next(doc for doc in README if f"# section: {section}\n" in doc)
    key = yaml.safe_load(text).get("apiKey", "any-key")
    client = servers(text, api_key=key).client()
    assert ask(client, *messages) == expected


def test_readme_tool_call_example(servers):
    text = next(doc for doc in README if "# section: Tool Calls\n" in doc)
    client = servers(text).client()
    first = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "What's the weather like?"}])
    call = first.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_abc123", "get_weather", '{"location": "San Francisco"}')
    assert first.choices[0].finish_reason == "tool_calls"


# --- errors through the SDK's exception classes ---------------------------------------------


def test_wrong_or_missing_key_is_401(servers):
    server = servers("apiKey: sk-right-key-123456\n" + MATCHERS, api_key="sk-right-key-123456")
    bad = openai.OpenAI(base_url=server.base_url, api_key="sk-wrong-key-000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        ask(bad, ("user", "Exact words"))
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert "sk-wrong-key-000000" not in caught.value.message  # the key is masked, as the real API does
    response = httpx.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": []})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert ask(server.client(), ("user", "Exact words")) == "exact reply"


def test_no_match_names_the_nearest_rules(servers):
    client = servers(MATCHERS).client(max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, ("user", "Exact wordz"))
    message = caught.value.message
    assert "rule 'exact-rule'" in message
    assert "scenarios.yaml:3" in message
    assert "message 1 content is not exactly 'Exact words'" in message
    assert caught.value.code == "no_matching_rule"


def test_no_match_while_streaming_is_a_400_too(servers):
    client = servers(MATCHERS).client(max_retries=0)
    with pytest.raises(openai.BadRequestError, match="No rule matched"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "zzz"}],
                                       stream=True)


@pytest.mark.parametrize(("messages", "param", "code"), [
    ("not a list", "messages", "invalid_type"),
    ([], "messages", "empty_array"),
    ([{"content": "no role"}], "messages[0].role", "missing_required_parameter"),
    ([{"role": "wizard", "content": "x"}], "messages[0].role", "invalid_value"),
    ([{"role": "user", "content": 42}], "messages[0].content", "invalid_type"),
    ([{"role": "user"}], "messages[0].content", "missing_required_parameter"),
    ([{"role": "tool", "content": "x"}], "messages[0].tool_call_id", "missing_required_parameter"),
])
def test_bad_fields_are_400_with_param(servers, messages, param, code):
    client = servers(MATCHERS).client(max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=messages)
    assert caught.value.param == param
    assert caught.value.code == code
    assert caught.value.type == "invalid_request_error"


def test_malformed_json_and_missing_model(servers):
    server = servers(MATCHERS)
    with server.http() as http:
        response = http.post("/v1/chat/completions", content=b'{"model": "gpt-4o", "messages": [',
                             headers={"content-type": "application/json"})
        assert response.status_code == 400
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert "could not parse the JSON body" in error["message"]
        response = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert response.status_code == 400
        assert response.json()["error"]["message"] == "you must provide a model parameter"
        response = http.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "Exact words"}],
                                                           "stream": "yes"})
        assert response.json()["error"]["param"] == "stream"


def test_unknown_routes_and_models_are_404(servers):
    client = servers(MATCHERS).client(max_retries=0)
    with pytest.raises(openai.NotFoundError, match=r"Invalid URL \(GET /v1/nothing-here\)"):
        client.get("/nothing-here", cast_to=object)
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-17-ultra")
    assert caught.value.code == "model_not_found"
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    assert "gpt-4o" in [m.id for m in client.models.list()]


def test_wrong_method_is_405_and_big_bodies_413(servers):
    server = servers(MATCHERS, "--max-body-size", "2048")
    with server.http() as http:
        response = http.get("/v1/chat/completions")
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        big = {"model": "m", "messages": [{"role": "user", "content": "x" * 5000}]}
        response = http.post("/v1/chat/completions", json=big)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"


# --- concurrency and the async client -------------------------------------------------------


def test_five_concurrent_streams(servers):
    server = servers("""
responses:
  - id: slow
    matcher: {type: any}
    reply: one two three four five six
    delay_ms: 40
""")
    client = server.client()

    def consume(n: int) -> str:
        stream = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"stream {n}"}], stream=True)
        return "".join(c.choices[0].delta.content or "" for c in stream)

    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        results = list(pool.map(consume, range(5)))
    assert results == ["one two three four five six"] * 5


def test_async_client_under_trio(servers):
    server = servers(MATCHERS)

    async def main() -> list[str]:
        client = server.async_client()
        results: list[str] = []

        async def one() -> None:
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Exact words"}], stream=True)
            results.append("".join([c.choices[0].delta.content or "" async for c in stream]))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(one)
        completion = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Exact words"}])
        results.append(completion.choices[0].message.content)
        await client.close()
        return results

    assert trio.run(main) == ["exact reply"] * 4


def test_model_is_echoed_for_flow_replies(servers):
    client = servers(MATCHERS).client()
    completion = client.chat.completions.create(
        model="my-custom-model", messages=[{"role": "user", "content": "Exact words"}])
    assert completion.model == "my-custom-model"
    assert completion.id.startswith("chatcmpl-")
    assert json.loads(completion.model_dump_json())["object"] == "chat.completion"


EVERY_FIELD = """
responses:
  - id: every-field
    matcher: {type: any}
    response:
      system_fingerprint: fp_given
      model: gpt-given
      usage:
        completion_tokens: 7
        prompt_tokens_details: {cached_tokens: 2}
        prompt_tokens: 5
        total_tokens: 12
        x_usage: [1, {a: null}]
      choices:
        - finish_reason: tool_calls
          logprobs: {content: []}
          message:
            tool_calls:
              - function: {arguments: {city: Paris}, name: weather}
                id: call_1
              - {type: function, id: call_2, function: {name: time}}
            annotations: [{type: url_citation}]
            content: Checking.
            audio: null
            role: assistant
          index: 0
        - message: {refusal: "No.", content: null}
      created: 1700000000
      object: chat.completion
      id: chatcmpl-given
      service_tier: flex
      x_top: {nested: [true, 1.5]}
"""


def test_a_configured_response_with_every_field_round_trips_exactly(servers):
    # served as written: every key in the order written (at every level), the fields the server
    # does not read passed through, arguments given as a mapping sent as JSON text, and what
    # the real API always sends added after (message refusal/annotations, choice logprobs...)
    server = servers(EVERY_FIELD)
    headers = {"Authorization": f"Bearer {server.api_key}"}
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body = httpx.post(f"{server.base_url}/chat/completions", json=request, headers=headers, timeout=10).content
    assert body == (
        b'{"system_fingerprint":"fp_given","model":"gpt-given","usage":{"prompt_tokens":5,"completion_tokens":7,'
        b'"total_tokens":12,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":'
        b'{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0},'
        b'"x_usage":[1,{"a":null}]},"choices":[{"finish_reason":"tool_calls","logprobs":{"content":[]},'
        b'"message":{"tool_calls":[{"function":{"arguments":"{\\"city\\": \\"Paris\\"}","name":"weather"},'
        b'"id":"call_1","type":"function"},{"type":"function","id":"call_2","function":{"name":"time",'
        b'"arguments":""}}],"annotations":[{"type":"url_citation"}],"content":"Checking.","audio":null,'
        b'"role":"assistant","refusal":null},"index":0},{"message":{"refusal":"No.","content":null,'
        b'"role":"assistant","annotations":[]},"index":1,"logprobs":null,"finish_reason":"stop"}],'
        b'"created":1700000000,"object":"chat.completion","id":"chatcmpl-given","service_tier":"flex",'
        b'"x_top":{"nested":[true,1.5]}}')
    completion = server.client().chat.completions.create(**request)  # and the SDK reads it
    assert completion.choices[0].message.tool_calls[0].function.arguments == '{"city": "Paris"}'

    streamed = httpx.post(f"{server.base_url}/chat/completions", headers=headers, timeout=10, json={
        **request, "stream": True, "stream_options": {"include_usage": True, "include_obfuscation": False}}).text
    chunks = [json.loads(line[len("data: "):]) for line in streamed.splitlines() if line.startswith("data: {")]
    assert len(chunks) == 11
    for chunk in chunks:
        assert list(chunk)[:6] == ["id", "object", "created", "model", "service_tier", "system_fingerprint"]
        assert [chunk[k] for k in ("id", "created", "model", "service_tier", "system_fingerprint")] == [
            "chatcmpl-given", 1700000000, "gpt-given", "flex", "fp_given"]
    deltas = [(c["choices"][0]["index"], c["choices"][0]["delta"], c["choices"][0]["finish_reason"])
              for c in chunks[:-1]]
    assert deltas == [
        (0, {"role": "assistant", "content": "", "refusal": None}, None),
        (0, {"content": "Checking."}, None),
        (0, {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                             "function": {"name": "weather", "arguments": ""}}]}, None),
        (0, {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}, None),
        (0, {"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]}, None),
        (0, {"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                             "function": {"name": "time", "arguments": ""}}]}, None),
        (0, {}, "tool_calls"),
        (1, {"role": "assistant", "content": None, "refusal": ""}, None),
        (1, {"refusal": "No."}, None),
        (1, {}, "stop"),
    ]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == json.loads(body)["usage"]
