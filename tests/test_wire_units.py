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
    assert tuple(chat.stream(plan).frames) == tuple(sse.data(c) for c in chunks)
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


# --- long replies: pieces and frames made as they are sent ------------------------------------

LONG_ENOUGH = "Once upon a time,  in a land\nfar\t away — ünïcödé 😀. " * 1500  # past text.LONG


def test_a_long_text_is_split_as_split_does_a_window_at_a_time(monkeypatch):
    import random

    from openai_mock import tokens
    from openai_mock.wire.text import Pieces, pieces

    rng = random.Random(3)
    alphabet = ["a", "bb", " ", "  ", "\n", "\t ", "é", "😀", " \n ", ".,"]
    cut = 0
    for _ in range(3000):  # texts of many windows (a window of 1 to 8 characters)
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        monkeypatch.setattr(tokens, "WINDOW", rng.randint(1, 8))
        cut += len(list(tokens.windows(text))) > 1
        assert "".join(tokens.windows(text)) == text
        assert sum(len(tokens._PIECE.findall(w)) for w in tokens.windows(text)) == len(tokens._PIECE.findall(text))
        for chunking in ("word", "char", 1, 3, 7):
            expected = split(text, chunking)
            assert list(Pieces(text, chunking)) == expected and len(Pieces(text, chunking)) == len(expected)
    assert cut > 2000
    assert isinstance(pieces(LONG_ENOUGH), Pieces) and not isinstance(pieces("short"), Pieces)
    assert Pieces(LONG_ENOUGH, "word")[-1] == split(LONG_ENOUGH)[-1]
    monkeypatch.undo()
    assert tokens.count(LONG_ENOUGH) == len(tokens._PIECE.findall(LONG_ENOUGH))


@pytest.mark.parametrize("endpoint", ["chat", "responses", "completions"])
@pytest.mark.parametrize("chunking", ["word", 7])
def test_a_long_replys_frames_are_counted_before_they_are_made(endpoint, chunking):
    from openai_mock.options import CompletionOptions, ResponsesOptions
    from openai_mock.wire import completions, responses

    encoder, options = {"chat": (chat.stream, ChatOptions(include_usage=True)),
                        "responses": (responses.stream, ResponsesOptions()),
                        "completions": (completions.stream, CompletionOptions(include_usage=True))}[endpoint]
    plan = Plan(request_id="req_1", seed=5, stream=True, reply=Reply(content=LONG_ENOUGH), id="x", created=1,
                model="m", usage=Usage(5, 7), options=options, chunking=chunking)
    frames = encoder(plan).frames
    assert isinstance(frames, sse.Frames)
    made = list(frames)
    assert len(made) == len(frames) == len(split(LONG_ENOUGH, chunking)) + {"chat": 3, "responses": 8, "completions": 2}[endpoint]
    assert list(frames) == made and frames[5] == made[5] and frames[-1] == made[-1] and frames[2:4] == tuple(made[2:4])


def test_paddings_are_made_a_block_at_a_time_the_same_up_to_a_block():
    from openai_mock.plan import ALNUM, PADDINGS_AT_ONCE, each_padding, paddings

    assert list(each_padding(7, "obfuscation", 500)) == paddings(7, "obfuscation", 500)
    assert list(each_padding(7, "o", PADDINGS_AT_ONCE)) == paddings(7, "o", PADDINGS_AT_ONCE)
    many = list(each_padding(7, "o", 3 * PADDINGS_AT_ONCE + 5))
    assert len(many) == 3 * PADDINGS_AT_ONCE + 5 and many == list(each_padding(7, "o", 3 * PADDINGS_AT_ONCE + 5))
    assert all(1 <= len(p) <= 16 and set(p) <= set(ALNUM) for p in many)
    blocks = [many[start:start + PADDINGS_AT_ONCE] for start in range(0, len(many), PADDINGS_AT_ONCE)]
    assert len({tuple(block) for block in blocks}) == 4  # (each block its own)
