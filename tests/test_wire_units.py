"""Pure pieces, no server: encoders, splitting, waits and ids are deterministic and exact."""

from __future__ import annotations

import pytest

from openai_mock.options import ChatOptions
from openai_mock.plan import Plan, Timing, Usage, token
from openai_mock.scenario.model import Reply, ToolCall
from openai_mock.wire import chat, sse
from openai_mock.wire.text import split

REPLIES = [
    Reply(content="Once upon a time, in a land with ünïcödé — and \"quotes\"."),
    Reply(content=None, tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Zürich"}'),
                                    ToolCall("call_2", "get_time", "{}")), finish_reason="tool_calls"),
    Reply(content="Let me check.", tool_calls=(ToolCall("call_3", "f", '{"a": 1}'),), finish_reason="tool_calls"),
    Reply(refusal="I can't help with that."),
    Reply(content=""),
    Reply(content="line one\nline two\t\\ back\u0001 \u2028 😀 </script>"),  # what JSON must escape
]
OPTIONS = [ChatOptions(), ChatOptions(include_usage=True), ChatOptions(include_obfuscation=False),
           ChatOptions(include_usage=True, include_obfuscation=False)]


@pytest.mark.parametrize("reply", REPLIES)
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("chunking", ["word", "char", 3])
def test_stream_frames_are_the_chunks_byte_for_byte(reply, options, chunking):
    plan = Plan(request_id="req_1", seed=99, stream=True, reply=reply, id="chatcmpl-x", created=1, model="m",
                usage=Usage(5, 7), options=options, chunking=chunking)
    chunks = chat.chunks(plan)
    assert chat.stream(plan).frames == tuple(sse.data(c) for c in chunks)
    assert len(chunks) >= 2


@pytest.mark.parametrize("text", ["Once upon a time", "  leading and trailing  ", "one\n\ntwo\tthree ", "", "x"])
@pytest.mark.parametrize("chunking", ["word", "char", 1, 4])
def test_split_joins_back(text, chunking):
    pieces = split(text, chunking)
    assert "".join(pieces) == text
    assert all(pieces)


def test_word_chunks_carry_their_leading_space():
    assert split("Once upon a time", "word") == ["Once", " upon", " a", " time"]


def test_waits_are_deterministic_and_bounded():
    timing = Timing(latency_ms=100, first_chunk_delay_ms=50, delay_ms=20, jitter_ms=10, seed=7)
    assert timing.waits(30) == timing.waits(30)
    latency, waits = timing.waits(30)
    assert 0.09 <= latency <= 0.11
    assert 0.04 <= waits[0] <= 0.06
    assert all(0.01 <= w <= 0.03 for w in waits[1:])
    assert len(set(waits)) > 20
    assert Timing(delay_ms=20, jitter_ms=10, seed=8).waits(30) != timing.waits(30)
    assert Timing(delay_ms=5, jitter_ms=10, seed=1).waits(200)[1] == [max(0.0, w) for w in Timing(delay_ms=5, jitter_ms=10, seed=1).waits(200)[1]]
    assert min(Timing(delay_ms=5, jitter_ms=10, seed=1).waits(200)[1]) == 0.0  # never below zero


def test_ids_depend_only_on_seed_and_label():
    assert token(1, "id", 29) == token(1, "id", 29)
    assert token(1, "id", 29) != token(2, "id", 29)
    assert token(1, "id", 29) != token(1, "other", 29)
    assert len(token(1, "id", 48, "0123456789abcdef")) == 48
    assert set(token(1, "x", 200, "ab")) == {"a", "b"}


def test_obfuscation_paddings_are_1_to_16_letters_and_digits_fixed_by_the_seed():
    from openai_mock.plan import ALNUM, paddings

    first = paddings(7, "obfuscation", 500)
    assert len(first) == 500
    assert all(1 <= len(p) <= 16 and set(p) <= set(ALNUM) for p in first)
    assert {len(p) for p in first} == set(range(1, 17))  # every length turns up
    assert paddings(7, "obfuscation", 500) == first
    assert paddings(8, "obfuscation", 500) != first


def test_tokens_use_only_their_alphabet():
    from openai_mock.plan import ALNUM, HEX, token

    assert set(token(1, "id", 2000)) == set(ALNUM)
    assert set(token(1, "id", 2000, HEX)) == set(HEX)
    assert token(1, "id", 29) == token(1, "id", 29) != token(2, "id", 29)
