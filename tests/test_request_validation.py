"""Requests the real API refuses get its 400: the same `param`, `code` and message, at every
depth of the body, and never a 500 (the wording is the real API's, from its answers)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

ANSWER_ANYTHING = """
responses:
  - id: anything
    matcher: {type: any}
    reply: Fine.
"""

USER = [{"role": "user", "content": "hi"}]
CALLED = {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                               "function": {"name": "lookup", "arguments": "{}"}}]}
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
PARTS = ("'text', 'image_url', 'input_audio', 'refusal', 'audio', and 'file'")
INPUT_PARTS = ("'input_text', 'input_image', 'input_audio', 'output_text', 'refusal', 'input_file', "
               "'computer_screenshot', 'summary_text', and 'encrypted_content'")


@pytest.fixture(scope="module")
def server(servers):
    return servers(ANSWER_ANYTHING)


def refusal(server, path: str, body: dict[str, Any] | bytes) -> dict[str, Any]:
    """The error of a request that must be refused with a 400."""
    with server.http() as http:
        if isinstance(body, bytes):
            response = http.post(path, content=body, headers={"content-type": "application/json"})
        else:
            response = http.post(path, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    return error


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": USER, **fields}


def responses(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-5", "input": "hi", **fields}


# --- stop -------------------------------------------------------------------------------------


STOP_REFUSALS = [
    ([123, 456], "stop[0]", "invalid_type", "Invalid type for 'stop[0]': expected a string, but got an integer instead."),
    (5, "stop", "invalid_type",
     "Invalid type for 'stop': expected one of a string or array of strings, but got an integer instead."),
    (["a", "b", "c", "d", "e"], "stop", "array_above_max_length",
     "Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length 5 instead."),
    ([], "stop", "empty_array",
     "Invalid 'stop': empty array. Expected an array with minimum length 1, but got an empty array instead."),
]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
@pytest.mark.parametrize(("stop", "param", "code", "message"), STOP_REFUSALS)
def test_stop_is_a_string_or_one_to_four_strings(server, path, stop, param, code, message):
    body = chat(stop=stop) if path == "/v1/chat/completions" else {"model": "gpt-3.5-turbo-instruct",
                                                                    "prompt": "hi", "stop": stop}
    error = refusal(server, path, body)
    assert (error["param"], error["code"], error["message"]) == (param, code, message)


def test_the_stops_the_real_api_takes_are_taken(server):
    client = server.client(max_retries=0)
    for stop in ("END", ["a", "b", "c", "d"]):
        reply = client.chat.completions.create(model="gpt-4o", messages=USER, stop=stop)
        assert reply.choices[0].message.content == "Fine."
        assert client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", stop=stop).choices[0].text == "Fine."


# --- tool_calls[].type --------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "code", "message"), [
    ({"id": "call_1", "function": {"name": "lookup", "arguments": "{}"}}, "missing_required_parameter",
     "Missing required parameter: 'messages[1].tool_calls[0].type'."),
    ({"id": "call_1", "type": "invalid_type", "function": {"name": "lookup", "arguments": "{}"}}, "invalid_value",
     "Invalid value: 'invalid_type'. Supported values are: 'function' and 'custom'."),
])
def test_a_tool_call_says_its_type(server, call, code, message):
    body = chat(messages=[*USER, {"role": "assistant", "tool_calls": [call]}])
    error = refusal(server, "/v1/chat/completions", body)
    assert (error["param"], error["code"], error["message"]) == ("messages[1].tool_calls[0].type", code, message)


def test_function_and_custom_tool_calls_are_taken(server):
    custom = {"role": "assistant", "tool_calls": [{"id": "call_2", "type": "custom",
                                                   "custom": {"name": "grep", "input": "needle"}}]}
    client = server.client(max_retries=0)
    for turn in (CALLED, custom):
        answer = {"role": "tool", "tool_call_id": turn["tool_calls"][0]["id"], "content": "found"}
        reply = client.chat.completions.create(model="gpt-4o", messages=[*USER, turn, answer])
        assert reply.choices[0].message.content == "Fine."


# --- content parts of unexpected types: 400s, not 500s ------------------------------------------


def test_a_content_part_whose_type_is_an_object_is_a_400(server):
    part = {"type": {}, "image_url": {"url": "https://example.com/a.png"}}
    error = refusal(server, "/v1/chat/completions", chat(messages=[{"role": "user", "content": [part]}]))
    assert (error["param"], error["code"]) == ("messages[0].content[0].type", "invalid_type")
    assert error["message"] == (f"Invalid type for 'messages[0].content[0].type': expected one of {PARTS.replace(', and', ', or')}, "
                                "but got an object instead.")
    error = refusal(server, "/v1/responses", responses(input=[{"role": "user", "content": [{"type": [], "text": "x"}]}]))
    assert (error["param"], error["code"]) == ("input[0].content[0].type", "invalid_type")
    assert error["message"].endswith("but got an array instead.")


def test_content_parts_of_unknown_types_are_refused_with_the_supported_ones(server):
    error = refusal(server, "/v1/chat/completions",
                    chat(messages=[{"role": "user", "content": [{"type": "image", "url": "x"}]}]))
    assert (error["param"], error["code"]) == ("messages[0].content[0].type", "invalid_value")
    assert error["message"] == f"Invalid value: 'image'. Supported values are: {PARTS}."
    error = refusal(server, "/v1/responses", responses(input=[{"role": "user", "content": [{"type": "bogus", "text": "x"}]}]))
    assert (error["param"], error["code"]) == ("input[0].content[0].type", "invalid_value")
    assert error["message"] == f"Invalid value: 'bogus'. Supported values are: {INPUT_PARTS}."


# --- the body itself ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"[" * 100_000 + b"]" * 100_000,  # nested too deep for any reader
    b'{"model": "gpt-4o", "messages": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
    b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 1e400}',
], ids=["deep", "deep-inside", "nan", "infinite"])
def test_bodies_that_are_no_json_are_refused_as_unparsable(server, raw):
    error = refusal(server, "/v1/chat/completions", raw)
    assert error["message"].startswith("We could not parse the JSON body of your request.")
    assert "Traceback" not in server.log()


# --- the rest of a chat request -------------------------------------------------------------------


CHAT_REFUSALS = [
    ({"messages": "ping"}, "messages", "invalid_type",
     "Invalid type for 'messages': expected an array of objects, but got a string instead."),
    ({"n": "2"}, "n", "invalid_type", "Invalid type for 'n': expected an integer, but got a string instead."),
    ({"seed": 1.5}, "seed", "invalid_type", "Invalid type for 'seed': expected an integer, but got a decimal number instead."),
    ({"temperature": "hot"}, "temperature", "invalid_type",
     "Invalid type for 'temperature': expected a decimal, but got a string instead."),
    ({"user": {"a": 1}}, "user", "invalid_type", "Invalid type for 'user': expected a string, but got an object instead."),
    ({"store": "yes"}, "store", "invalid_type", "Invalid type for 'store': expected a boolean, but got a string instead."),
    ({"tools": "none"}, "tools", "invalid_type", "Invalid type for 'tools': expected an array of objects, but got a string instead."),
    ({"tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter",
     "Missing required parameter: 'tools[0].function'."),
    ({"tools": [{"type": "function", "function": {"parameters": {}}}]}, "tools[0].function.name",
     "missing_required_parameter", "Missing required parameter: 'tools[0].function.name'."),
    ({"tools": [{"type": "function", "function": {"name": ""}}]}, "tools[0].function.name", "empty_string",
     "Invalid 'tools[0].function.name': empty string. Expected a string with minimum length 1, but got an empty string instead."),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type", "invalid_value",
     "Invalid value: 'web_search'. Supported values are: 'function' and 'custom'."),
    ({"tool_choice": 7}, "tool_choice", "invalid_type", "Invalid type for 'tool_choice': expected one of one of 'none', "
     "'auto', or 'required' or object, but got an integer instead."),
    ({"tools": [TOOL], "tool_choice": "bogus"}, "tool_choice", "invalid_value",
     "Invalid value: 'bogus'. Supported values are: 'none', 'auto', and 'required'."),
    ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {}}}, "tool_choice.function.name",
     "missing_required_parameter", "Missing required parameter: 'tool_choice.function.name'."),
    ({"response_format": "json"}, "response_format", "invalid_type",
     "Invalid type for 'response_format': expected an object, but got a string instead."),
    ({"response_format": {}}, "response_format.type", "missing_required_parameter",
     "Missing required parameter: 'response_format.type'."),
    ({"response_format": {"type": "bogus"}}, "response_format.type", "invalid_value",
     "Invalid value: 'bogus'. Supported values are: 'json_object', 'json_schema', and 'text'."),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "missing_required_parameter",
     "Missing required parameter: 'response_format.json_schema'."),
    ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format.json_schema.name",
     "missing_required_parameter", "Missing required parameter: 'response_format.json_schema.name'."),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "object_above_max_properties",
     "Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an object "
     "with 17 properties instead."),
    ({"metadata": {"k": 7}}, "metadata.k", "invalid_type",
     "Invalid type for 'metadata.k': expected a string, but got an integer instead."),
    ({"metadata": {"k": "x" * 600}}, "metadata.k", "string_above_max_length",
     "Invalid 'metadata.k': string too long. Expected a string with maximum length 512, but got a string with "
     "length 600 instead."),
    ({"metadata": {"k" * 70: "v"}}, "metadata." + "k" * 70, "property_name_above_max_length",
     "Invalid property name in 'metadata': 'kkk...kkk' is too long. Expected a string with maximum length 64, "
     "but got a string with length 70 instead."),
    ({"metadata": "x"}, "metadata", "invalid_type",
     "Invalid type for 'metadata': expected a metadata object, but got a string instead."),
    ({"verbosity": "bogus"}, "verbosity", "invalid_value",
     "Invalid value: 'bogus'. Supported values are: 'low', 'medium', and 'high'."),
    ({"logit_bias": {"AI": 10}}, "logit_bias", None,
     "Invalid key in 'logit_bias': AI. You should only be submitting non-negative integers."),
    ({"top_logprobs": 2}, "top_logprobs", None, "The 'top_logprobs' parameter is only allowed when 'logprobs' is enabled."),
    ({"logprobs": True, "top_logprobs": -1}, "top_logprobs", "integer_below_min_value",
     "Invalid 'top_logprobs': integer below minimum value. Expected a value >= 0, but got -1 instead."),
    ({"frequency_penalty": 3}, "frequency_penalty", "decimal_above_max_value",
     "Invalid 'frequency_penalty': decimal above maximum value. Expected a value <= 2, but got 3 instead."),
    ({"n": 0}, "n", "integer_below_min_value",
     "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead."),
    ({"messages": [*USER, {"role": "assistant", "tool_calls": []}]}, "messages[1].tool_calls", "empty_array",
     "Invalid 'messages[1].tool_calls': empty array. Expected an array with minimum length 1, but got an empty array instead."),
    ({"messages": [*USER, {"role": "assistant", "content": "x", "tool_calls": "x"}]}, "messages[1].tool_calls",
     "invalid_type", "Invalid type for 'messages[1].tool_calls': expected an array of objects, but got a string instead."),
    ({"messages": [*USER, {"role": "assistant", "tool_calls": [{"id": None, "type": "function",
                                                                 "function": {"name": "f", "arguments": "{}"}}]}]},
     "messages[1].tool_calls[0].id", "missing_required_parameter",
     "Missing required parameter: 'messages[1].tool_calls[0].id'."),
    ({"messages": ["ping"]}, "messages[0]", "invalid_type",
     "Invalid type for 'messages[0]': expected an object, but got a string instead."),
    ({"messages": [{"role": "user", "content": ["ping"]}]}, "messages[0].content[0]", "invalid_type",
     "Invalid type for 'messages[0].content[0]': expected an object, but got a string instead."),
    ({"modalities": ["video"]}, "modalities[0]", "invalid_value",
     "Invalid value: 'video'. Supported values are: 'text' and 'audio'."),
    ({"reasoning_effort": {"a": 1}}, "reasoning_effort", "invalid_type",
     "Invalid type for 'reasoning_effort': expected one of 'none', 'minimal', 'low', 'medium', 'high', 'xhigh', "
     "or 'max', but got an object instead."),
    ({"audio": {"voice": "alloy"}}, "audio.format", "missing_required_parameter",
     "Missing required parameter: 'audio.format'."),
    ({"prediction": {"type": "content"}}, "prediction.content", "missing_required_parameter",
     "Missing required parameter: 'prediction.content'."),
    ({"web_search_options": {"search_context_size": "huge"}}, "web_search_options.search_context_size",
     "invalid_value", "Invalid value: 'huge'. Supported values are: 'low', 'medium', and 'high'."),
    ({"prompt_cache_retention": {"a": 1}}, "prompt_cache_retention", "invalid_type",
     "Invalid type for 'prompt_cache_retention': expected one of 'in_memory' or '24h', but got an object instead."),
    ({"safety_identifier": "x" * 65}, "safety_identifier", "string_above_max_length",
     "Invalid 'safety_identifier': string too long. Expected a string with maximum length 64, but got a string "
     "with length 65 instead."),
    ({"parallel_tool_calls": {"a": 1}}, "parallel_tool_calls", "invalid_type",
     "Invalid type for 'parallel_tool_calls': expected a boolean, but got an object instead."),
]


@pytest.mark.parametrize(("fields", "param", "code", "message"), CHAT_REFUSALS)
def test_chat_fields_are_refused_as_the_real_api_refuses_them(server, fields, param, code, message):
    error = refusal(server, "/v1/chat/completions", chat(**fields))
    assert (error["param"], error["code"], error["message"]) == (param, code, message)


def test_a_chat_request_using_every_field_well_is_answered(server):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    reply = server.client(max_retries=0).chat.completions.create(
        model="gpt-4o", messages=[{"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
                                  {"role": "user", "content": [{"type": "text", "text": "hi"},
                                                               {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}]},
                                  CALLED, {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}],
        stop=["\n\n"], seed=7, logit_bias={"50256": -100}, metadata={f"k{i}": "v" * 512 for i in range(16)},
        service_tier="flex", response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
        tools=[TOOL], tool_choice={"type": "function", "function": {"name": "lookup"}}, parallel_tool_calls=False,
        modalities=["text"], store=True, user="u-1", safety_identifier="s" * 64, logprobs=True, top_logprobs=2,
        n=1, max_completion_tokens=50, temperature=0.2, top_p=0.9, frequency_penalty=-2, presence_penalty=2,
        reasoning_effort="low", verbosity="low", prompt_cache_key="k", prediction={"type": "content", "content": "x"},
        web_search_options={"search_context_size": "low"},
    )
    assert reply.choices[0].message.content == "Fine."


# --- the rest of a Responses request ------------------------------------------------------------


RESPONSES_REFUSALS = [
    ({"input": [7]}, "input[0]", "invalid_type", "Invalid type for 'input[0]': expected an input item, but got an integer instead."),
    ({"input": [{"type": {}}]}, "input[0]", "invalid_value", None),
    ({"input": [{"type": "bogus_item"}]}, "input[0]", "invalid_value", None),
    ({"reasoning": "low"}, "reasoning", "invalid_type",
     "Invalid type for 'reasoning': expected an object, but got a string instead."),
    ({"reasoning": {"effort": "bogus"}}, "reasoning.effort", "invalid_value",
     "Invalid value: 'bogus'. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', 'xhigh', and 'max'."),
    ({"reasoning": {"summary": "bogus"}}, "reasoning.summary", "invalid_value",
     "Invalid value: 'bogus'. Supported values are: 'concise', 'detailed', and 'auto'."),
    ({"text": "x"}, "text", "invalid_type", "Invalid type for 'text': expected an object, but got a string instead."),
    ({"text": {"format": {"type": "bogus"}}}, "text.format.type", "invalid_value",
     "Invalid value: 'bogus'. Supported values are: 'json_object', 'text', and 'json_schema'."),
    ({"text": {"format": {"type": "json_schema"}}}, "text.format.name", "missing_required_parameter",
     "Missing required parameter: 'text.format.name'."),
    ({"text": {"verbosity": "bogus"}}, "text.verbosity", "invalid_value",
     "Invalid value: 'bogus'. Supported values are: 'low', 'medium', and 'high'."),
    ({"truncation": {"a": 1}}, "truncation", "invalid_type",
     "Invalid type for 'truncation': expected one of 'auto' or 'disabled', but got an object instead."),
    ({"include": ["bogus.thing"]}, "include[0]", "invalid_value",
     "Invalid value: 'bogus.thing'. Supported values are: 'file_search_call.results', 'web_search_call.results', "
     "'web_search_call.action.sources', 'message.input_image.image_url', 'computer_call_output.output.image_url', "
     "'code_interpreter_call.outputs', 'reasoning.encrypted_content', and 'message.output_text.logprobs'."),
    ({"max_tool_calls": 0}, "max_tool_calls", "integer_below_min_value",
     "Invalid 'max_tool_calls': integer below minimum value. Expected a value >= 1, but got 0 instead."),
    ({"metadata": "x"}, "metadata", "invalid_type",
     "Invalid type for 'metadata': expected a metadata object, but got a string instead."),
    ({"tools": "x"}, "tools", "invalid_type", "Invalid type for 'tools': expected an array of tools, but got a string instead."),
    ({"tools": [{}]}, "tools[0].type", "missing_required_parameter", "Missing required parameter: 'tools[0].type'."),
    ({"tool_choice": 7}, "tool_choice", "invalid_type", "Invalid type for 'tool_choice': expected one of an object or "
     "'none', 'auto', or 'required', but got an integer instead."),
    ({"tool_choice": {"type": "function"}}, "tool_choice.name", "missing_required_parameter",
     "Missing required parameter: 'tool_choice.name'."),
    ({"prompt_cache_key": {"a": 1}}, "prompt_cache_key", "invalid_type",
     "Invalid type for 'prompt_cache_key': expected a string, but got an object instead."),
    ({"top_logprobs": "x"}, "top_logprobs", "invalid_type",
     "Invalid type for 'top_logprobs': expected an integer, but got a string instead."),
    ({"stream_options": "x"}, "stream_options", "invalid_type",
     "Invalid type for 'stream_options': expected an object, but got a string instead."),
]


@pytest.mark.parametrize(("fields", "param", "code", "message"), RESPONSES_REFUSALS)
def test_responses_fields_are_refused_as_the_real_api_refuses_them(server, fields, param, code, message):
    error = refusal(server, "/v1/responses", responses(**fields))
    assert (error["param"], error["code"]) == (param, code)
    if message is not None:
        assert error["message"] == message
    else:  # an item of no known type: the message lists every kind of input item
        assert "Supported values are: 'additional_tools', " in error["message"]
        assert "'function_call', 'function_call_output', " in error["message"]


def test_a_responses_request_using_every_field_well_is_answered(server):
    reply = server.client(max_retries=0).responses.create(
        model="gpt-5", instructions="Be brief.",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "hi"},
                                            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}]},
               {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                "content": [{"type": "output_text", "text": "Hello.", "annotations": []}]},
               {"type": "reasoning", "id": "rs_1", "summary": []},
               {"role": "user", "content": "again"}],
        tools=[{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}, "strict": False},
               {"type": "web_search"}],
        tool_choice="auto", reasoning={"effort": "low", "summary": "auto"}, include=["reasoning.encrypted_content"],
        text={"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}, "verbosity": "low"},
        metadata={"k": "v"}, truncation="auto", max_output_tokens=16, max_tool_calls=1, store=False,
        service_tier="auto", top_logprobs=0, parallel_tool_calls=True, user="u", safety_identifier="s",
        prompt_cache_key="k", temperature=0, top_p=1,
    )
    assert reply.output_text == "Fine."


# --- legacy completions -------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "param", "code"), [
    ({"seed": "1"}, "seed", "invalid_type"),
    ({"logit_bias": {"-1": 1}}, "logit_bias", None),
    ({"logit_bias": {"1": 101}}, "logit_bias.1", "decimal_above_max_value"),
    ({"user": 7}, "user", "invalid_type"),
    ({"suffix": []}, "suffix", "invalid_type"),
])
def test_legacy_completions_fields_are_refused(server, fields, param, code):
    error = refusal(server, "/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "hi", **fields})
    assert (error["param"], error["code"]) == (param, code)


def test_embeddings_and_moderations_refuse_values_of_other_types(server):
    error = refusal(server, "/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi", "encoding_format": {}})
    assert (error["param"], error["code"]) == ("encoding_format", "invalid_type")
    error = refusal(server, "/v1/moderations", {"input": [{"type": {}, "text": "x"}]})
    assert (error["param"], error["code"]) == ("input[0].type", "invalid_type")
    error = refusal(server, "/v1/moderations", {"input": [{"type": "image_url", "image_url": "x"}]})
    assert (error["param"], error["code"]) == ("input[0].image_url", "invalid_type")
    with pytest.raises(openai.BadRequestError):
        server.client(max_retries=0).moderations.create(input=[{"type": "text"}])  # type: ignore[list-item]


@pytest.mark.parametrize("tier", ["auto", "default", "flex", "scale", "priority", "fast", "ultrafast"])
def test_every_service_tier_of_the_spec_is_taken(server, tier):
    with server.http() as http:
        if tier != "ultrafast":  # (a tier of the Responses API only)
            assert http.post("/v1/chat/completions", json=chat(service_tier=tier)).status_code == 200
        assert http.post("/v1/responses", json=responses(service_tier=tier)).status_code == 200


@pytest.mark.parametrize(("fields", "param"), [
    ({"stop": 5, "n": "abc"}, "n"),
    ({"store": {}, "stream": {}}, "stream"),
    ({"metadata": "x", "store": {}}, "store"),
    ({"verbosity": "bogus", "user": 7}, "user"),
])
def test_of_several_faults_the_one_the_real_api_reports_first_is_reported(server, fields, param):
    assert refusal(server, "/v1/chat/completions", chat(**fields))["param"] == param
