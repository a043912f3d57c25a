"""The scenario model and loader, as pure functions: no server, no subprocess."""

from __future__ import annotations

import io
import json
import random
import re
import sys
import textwrap
from pathlib import Path

import attrs
import pytest

from openai_mock.scenario import (
    Behaviour,
    ConfigError,
    ErrorSpec,
    Reply,
    ToolCall,
    load,
    load_bytes,
    load_text,
)
from openai_mock.scenario.yamlsrc import Pos, Problem


def _load(text: str, name: str = "x.yaml"):
    return load_text(textwrap.dedent(text).lstrip("\n"), name)


# --- Behaviour.over --------------------------------------------------------------------------

SAMPLE = {  # one value per behaviour key, different from BASE's
    "latency_ms": 1.0, "first_chunk_delay_ms": 2.0, "delay_ms": 3.0, "jitter_ms": 4.0, "chunking": "char",
    "fail_after_chunks": 5, "failure": "reset", "hang_ms": 6.0, "error": ErrorSpec(status=429),
    "headers": (("x-a", "1"),), "flow_reply": "last",
}
BASE = {
    "latency_ms": 10.0, "first_chunk_delay_ms": 20.0, "delay_ms": 30.0, "jitter_ms": 40.0, "chunking": 3,
    "fail_after_chunks": 50, "failure": "hang", "hang_ms": 60.0, "error": ErrorSpec(status=503),
    "headers": (("x-b", "2"),), "flow_reply": "next",
}


def test_the_samples_cover_every_behaviour_key() -> None:
    assert set(SAMPLE) == set(BASE) == {f.name for f in attrs.fields(Behaviour)}


@pytest.mark.parametrize("key", sorted(SAMPLE))
def test_over_takes_each_key_that_is_set_and_falls_back_for_the_rest(key: str) -> None:
    mine = Behaviour(**{key: SAMPLE[key]})
    merged = mine.over(Behaviour(**BASE))
    for name in BASE:
        if name == key == "headers":
            assert merged.headers == (("x-b", "2"), ("x-a", "1"))  # headers merge
        elif name == key:
            assert getattr(merged, name) == SAMPLE[name]
        else:
            assert getattr(merged, name) == BASE[name], name


def test_over_an_empty_base_or_with_nothing_set() -> None:
    full = Behaviour(**SAMPLE)
    assert full.over(Behaviour()) == full
    assert Behaviour().over(full) == full
    assert Behaviour().over(Behaviour()) == Behaviour()


def test_headers_merge_with_the_rule_winning_per_name() -> None:
    rule = Behaviour(headers=(("retry-after", "1"), ("x-rule", "r")))
    defaults = Behaviour(headers=(("Retry-After", "9"), ("x-default", "d")))
    merged = dict(rule.over(defaults).headers or ())
    assert merged == {"x-default": "d", "retry-after": "1", "x-rule": "r"}


def test_zero_and_false_like_values_still_count_as_set() -> None:
    merged = Behaviour(latency_ms=0.0, fail_after_chunks=0, headers=()).over(
        Behaviour(latency_ms=100.0, fail_after_chunks=3, headers=(("x-a", "1"),)))
    assert merged.latency_ms == 0.0
    assert merged.fail_after_chunks == 0
    assert merged.headers == (("x-a", "1"),)  # an empty mapping adds nothing


# --- defaults --------------------------------------------------------------------------------

DEFAULTS = """
    defaults:
      latency_ms: 100
      delay_ms: 5
      flow_reply: last
      headers: {x-shared: from-defaults, x-default: d}
    responses:
      - id: plain
        matcher: {type: any}
        reply: x
      - id: own
        matcher: {type: any}
        reply: y
        latency_ms: 0
        chunking: char
        headers: {X-Shared: from-rule}
      - id: flow
        messages:
          - {role: user, content: hi}
          - {role: assistant, content: hello}
        flow_reply: next
      - id: stepped
        matcher: {type: any}
        reply: z
        steps:
          - {error: 429, headers: {x-step: s}}
          - {}
"""


def test_defaults_apply_key_by_key_where_the_rule_does_not_set_the_key() -> None:
    config = _load(DEFAULTS)
    plain, own, flow, stepped = config.rules
    assert (plain.behaviour.latency_ms, plain.behaviour.delay_ms, plain.behaviour.flow_reply) == (100, 5, "last")
    assert dict(plain.behaviour.headers) == {"x-shared": "from-defaults", "x-default": "d"}
    assert (own.behaviour.latency_ms, own.behaviour.delay_ms, own.behaviour.chunking) == (0, 5, "char")
    assert dict(own.behaviour.headers) == {"x-shared": "from-rule", "x-default": "d"}
    assert flow.behaviour.flow_reply == "next"
    assert config.defaults.latency_ms == 100


def test_steps_hold_their_own_keys_and_go_over_the_rule() -> None:
    stepped = _load(DEFAULTS).rules[3]
    first, second = stepped.steps
    assert first == Behaviour(error=ErrorSpec(status=429), headers=(("x-step", "s"),))
    assert second == Behaviour()  # {} is the plain reply
    # what the engine serves for the first request: the step over the rule over the defaults
    served = first.over(stepped.behaviour)
    assert served.error == ErrorSpec(status=429)
    assert served.latency_ms == 100
    assert dict(served.headers) == {"x-shared": "from-defaults", "x-default": "d", "x-step": "s"}
    assert stepped.cycle is False


# --- folders -----------------------------------------------------------------------------------

def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip("\n"))
    return folder


def test_a_folder_is_read_in_name_order_and_its_settings_merge(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {
        "b.yaml": """
            seed: 7
            defaults: {delay_ms: 2, headers: {x-b: b}}
            responses:
              - {id: b1, matcher: {type: any}, reply: b}
        """,
        "a.yml": """
            apiKey: secret
            port: 4000
            defaults: {latency_ms: 1, headers: {x-a: a}}
            responses:
              - {id: a1, matcher: {type: any}, reply: a}
              - {id: a2, matcher: {type: any}, reply: a}
        """,
        "c.yaml": """
            api_key: secret   # the same value again: no conflict
            scenarios:
              - {id: c1, matcher: {type: any}, reply: c}
        """,
        "notes.txt": "ignored",
    })
    config = load(folder)
    assert [rule.id for rule in config.rules] == ["a1", "a2", "b1", "c1"]
    assert [rule.index for rule in config.rules] == [0, 1, 2, 3]
    assert [Path(f).name for f in config.files] == ["a.yml", "b.yaml", "c.yaml"]
    assert config.rules[2].file == str(folder / "b.yaml")
    assert (config.api_key, config.port, config.seed) == ("secret", 4000, 7)
    # the defaults of every file apply to the rules of every file
    for rule in config.rules:
        assert (rule.behaviour.latency_ms, rule.behaviour.delay_ms) == (1, 2)
        assert dict(rule.behaviour.headers) == {"x-a": "a", "x-b": "b"}


def test_name_order_is_by_characters_not_numbers(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {
        "10-late.yaml": "responses:\n  - {id: ten, matcher: {type: any}, reply: x}\n",
        "9-early.yaml": "responses:\n  - {id: nine, matcher: {type: any}, reply: x}\n",
    })
    assert [rule.id for rule in load(folder).rules] == ["ten", "nine"]


def test_conflicting_settings_across_files_are_problems(tmp_path: Path) -> None:
    folder = _folder(tmp_path, {"a.yaml": "seed: 1\n", "b.yaml": "seed: 2\n"})
    with pytest.raises(ConfigError) as caught:
        load(folder)
    assert str(caught.value) == (f"{folder / 'b.yaml'}:1:1: `seed` is set again with another value "
                                 f"(first set at {folder / 'a.yaml'}:1:1)")


# --- settings ----------------------------------------------------------------------------------

def test_top_level_settings_and_aliases() -> None:
    config = _load("""
        api_key: k
        port: 0
        seed: -3
        models: [m1, m2]
        scenarios: []
    """)
    assert (config.api_key, config.port, config.seed, config.models, config.rules) == ("k", 0, -3, ("m1", "m2"), ())
    assert config.cors_origins is None  # any origin


@pytest.mark.parametrize(("origins", "expected"), [
    ("[https://app.example, 'http://localhost:5173']", ("https://app.example", "http://localhost:5173")),
    ("https://app.example", ("https://app.example",)),  # one origin needs no list
    ("['*']", None),  # any
    ("'*'", None),
    ("[]", ()),  # none
    ("null", None),
])
def test_cors_origins(origins: str, expected: tuple[str, ...] | None) -> None:
    assert load_text(f"cors: {{origins: {origins}}}\n").cors_origins == expected


@pytest.mark.parametrize(("origins", "message"), [
    ("[null]", "an origin must be a string (got nothing)"),
    ("[https://app.example/]", "'https://app.example/' is not an origin"),
    ("[app.example]", "'app.example' is not an origin"),
    ("{a: b}", "`cors.origins` must be a list of origins"),
])
def test_bad_cors_origins(origins: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_text(f"cors: {{origins: {origins}}}\n")


def test_an_empty_configuration_is_valid() -> None:
    assert load_text("").rules == ()
    assert load_text("# only a comment\n").rules == ()
    assert load_text("responses:\n").rules == ()


# --- rules -------------------------------------------------------------------------------------

def test_rule_forms_positions_and_ids() -> None:
    config = _load("""
        # a comment first
        responses:
          - id: flow
            messages:
              - {role: user, content: hi}
              - {role: assistant, content: hello}
          - id: 7
            matcher: {type: contains, messages: [{role: user, content: x}]}
            reply: short
    """)
    flow, seven = config.rules
    assert (flow.form, flow.pos) == ("flow", Pos("x.yaml", 3, 5))
    assert (seven.id, seven.form, seven.line) == ("7", "matcher", 7)
    assert seven.reply == Reply(content="short", finish_reason="stop")
    assert flow.turns[1].reply == Reply(content="hello")
    assert flow.turns[0].match.matcher == "exact"
    assert seven.turns[0].match.matcher == "contains"  # the matcher's type is each message's default


def test_reply_shorthand_as_a_mapping_and_tool_call_arguments_as_a_mapping() -> None:
    rule = _load("""
        responses:
          - id: r
            matcher: {type: any}
            reply:
              content: null
              tool_calls:
                - id: call_1
                  function: {name: weather, arguments: {city: Zürich, days: 3, when: 2024-01-01}}
                - id: call_2
                  function: {name: noop}
    """).rules[0]
    assert rule.reply == Reply(content=None, finish_reason="tool_calls", tool_calls=(
        ToolCall(id="call_1", name="weather", arguments='{"city": "Zürich", "days": 3, "when": "2024-01-01"}'),
        ToolCall(id="call_2", name="noop", arguments=""),
    ))


def test_a_response_object_is_kept_as_given_with_mapping_arguments_as_json_text() -> None:
    rule = _load("""
        responses:
          - id: r
            matcher: {type: any}
            response:
              id: chatcmpl-1
              created: 1677649420
              model: gpt-4
              system_fingerprint: fp_x
              choices:
                - index: 0
                  message:
                    role: assistant
                    content: null
                    tool_calls: [{id: call_1, type: function, function: {name: f, arguments: {a: [1, 2]}}}]
                  finish_reason: tool_calls
              usage: {prompt_tokens: 1, completion_tokens: 2, total_tokens: 3}
    """).rules[0]
    given = rule.response
    assert given is not None  # parsed once, at load
    assert given.keys == ("id", "created", "model", "system_fingerprint", "choices", "usage")  # as written
    assert (given.id, given.created, given.model) == ("chatcmpl-1", 1677649420, "gpt-4")
    assert given.written("system_fingerprint") == (True, "fp_x")
    assert json.loads(json.dumps(dict(given.extra))) == dict(given.extra)  # plain JSON values only
    call = given.choices[0].message.tool_calls[0]
    assert call.call == ToolCall(id="call_1", name="f", arguments='{"a": [1, 2]}')
    assert (call.keys, call.function_keys) == (("id", "type", "function"), ("name", "arguments"))
    assert given.choices[0].reply == Reply(content=None, tool_calls=(call.call,), finish_reason="tool_calls")
    assert given.usage is not None and (given.usage.prompt_tokens, given.usage.completion_tokens) == (1, 2)
    assert rule.reply is not None and rule.reply.tool_calls[0].arguments == '{"a": [1, 2]}'


def test_error_and_header_shorthands() -> None:
    rule = _load("""
        responses:
          - id: r
            matcher: {type: any}
            reply: x
            error: 429
            headers: {Retry-After: 2, X-Should-Retry: true, x-empty: null}
    """).rules[0]
    assert rule.behaviour.error == ErrorSpec(status=429)
    assert rule.behaviour.headers == (("retry-after", "2"), ("x-should-retry", "true"), ("x-empty", ""))


def test_steps_cycle_and_null_steps() -> None:
    rule = _load("""
        responses:
          - id: r
            matcher: {type: any}
            reply: x
            cycle: true
            steps:
              - error: {status: 500, code: 1234}
              -
              - {}
    """).rules[0]
    assert rule.cycle is True
    assert rule.steps == (Behaviour(error=ErrorSpec(status=500, code="1234")), Behaviour(), Behaviour())


def test_yaml_dates_stay_the_text_that_was_written() -> None:
    rule = _load("""
        responses:
          - id: r
            messages:
              - {role: user, content: 2024-01-01}
              - {role: assistant, content: noted}
    """).rules[0]
    assert rule.turns[0].match.content == "2024-01-01"


def test_tool_turns_without_content_match_any_tool_message() -> None:
    rule = _load("""
        responses:
          - id: r
            messages:
              - {role: user, content: hi}
              - {role: assistant, tool_calls: [{id: call_1, function: {name: f}}]}
              - {role: tool, tool_call_id: call_1}
              - {role: assistant, content: done}
    """).rules[0]
    tool = rule.turns[2]
    assert (tool.match.matcher, tool.tool_call_id) == ("any", "call_1")
    assert tool.rank == 4  # a tool_call_id is an exact comparison


# --- load() and its sources -----------------------------------------------------------------------

SIMPLE = "responses:\n  - {id: one, matcher: {type: any}, reply: x}\n"


def test_load_accepts_a_path_a_path_string_yaml_text_and_a_dict(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(SIMPLE)
    from_path = load(path)
    from_string_path = load(str(path))
    from_text = load(SIMPLE)
    from_dict = load({"responses": [{"id": "one", "matcher": {"type": "any"}, "reply": "x"}]})
    for config in (from_path, from_string_path, from_text, from_dict):
        assert [rule.id for rule in config.rules] == ["one"]
        assert config.rules[0].reply == Reply(content="x")
    assert from_path.rules[0].file == str(path)
    assert from_text.rules[0].file == "<string>"
    assert from_dict.rules[0].file == "<dict>"
    assert load("{responses: []}").rules == ()  # one-line YAML text


def test_load_accepts_bytes_and_reports_bytes_that_are_not_text() -> None:
    assert [rule.id for rule in load(SIMPLE.encode()).rules] == ["one"]
    assert [rule.id for rule in load_bytes(SIMPLE.encode("utf-16"), "body").rules] == ["one"]
    with pytest.raises(ConfigError) as caught:
        load_bytes(b"responses: []\n# caf\xe9\n", "body")
    assert str(caught.value) == "body:2:6: not UTF-8 text (byte 0xe9); a scenario file is UTF-8 YAML text"


def test_load_reads_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(SIMPLE.encode())))
    assert [rule.id for rule in load("-").rules] == ["one"]


def test_a_missing_path_is_reported_as_missing_not_as_yaml() -> None:
    for source in ("no/such/folder", "missing.yaml", "missing"):
        with pytest.raises(ConfigError) as caught:
            load(source)
        assert str(caught.value) == f"{source}:1:1: no such file or folder"


def test_a_dict_with_problems_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"^<dict>:\d+:\d+: unknown key `replay` in a rule; did you mean `reply`\?$"):
        load({"responses": [{"id": "one", "matcher": {"type": "any"}, "replay": "x"}]})
    with pytest.raises(ConfigError, match="cannot be read as a configuration"):
        load({"responses": [{"id": object()}]})


def test_config_error_lists_every_problem_sorted_and_once() -> None:
    error = ConfigError([Problem(Pos("b", 1, 1), "z"), Problem(Pos("a", 2, 5), "y"), Problem(Pos("a", 2, 1), "x"),
                         Problem(Pos("a", 2, 1), "x")])
    assert str(error) == "a:2:1: x\na:2:5: y\nb:1:1: z"
    assert [p.message for p in error.problems] == ["x", "y", "z"]


def test_a_node_reached_twice_through_an_alias_is_reported_once() -> None:
    with pytest.raises(ConfigError) as caught:
        _load("""
            x-shared: &bad {delay_ms: fast}
            responses:
              - {id: a, matcher: {type: any}, reply: x, steps: [*bad]}
              - {id: b, matcher: {type: any}, reply: x, steps: [*bad]}
        """)
    assert str(caught.value).splitlines() == ["x.yaml:1:27: `delay_ms` must be a number of milliseconds, 0 or more"]


def test_merge_keys_and_x_keys_share_settings_between_rules() -> None:
    config = _load("""
        x-slow: &slow {latency_ms: 7, delay_ms: 1}
        responses:
          - &base {id: a, matcher: {type: any}, reply: x, <<: *slow}
          - {<<: *base, id: b, delay_ms: 2}
    """)
    assert [(rule.id, rule.behaviour.latency_ms, rule.behaviour.delay_ms) for rule in config.rules] == [
        ("a", 7, 1), ("b", 7, 2)]


def test_a_key_written_twice_is_still_a_problem_next_to_merge_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        _load("""
            responses:
              - &base {id: a, matcher: {type: any}, reply: x}
              - {<<: *base, id: b, id: c}
        """)
    assert str(caught.value) == "x.yaml:3:24: duplicate key 'id'"


# --- robustness ----------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
EDITS = ["null", "[]", "{}", "- ", ": ", "-1", "1.5", "true", '"x"', "&a ", "*a", "<<: ", "\t", "\n", "  ", "'",
         "{", "[", "?", "!!binary ", "!!str ", "2024-01-01", "é", "0x10", ".nan", "\x00", "#"]


def test_random_edits_of_good_files_never_crash_the_loader() -> None:
    # every outcome must be a Config or a ConfigError with real positions, never another exception
    texts = [p.read_text() for p in sorted((ROOT / "scenarios").glob("*.yaml"))]
    texts.append((ROOT / "tests" / "data" / "all_keys.yaml").read_text())
    rng = random.Random(20240601)
    outcomes = {"ok": 0, "problems": 0}
    for _ in range(1500):
        lines = rng.choice(texts).splitlines()
        for _ in range(rng.randint(1, 4)):
            j = rng.randrange(len(lines))
            op, line = rng.random(), lines[j]
            k = rng.randrange(len(line) + 1)
            if op < 0.25:
                del lines[j]
            elif op < 0.45:
                lines.insert(j, rng.choice(lines))
            elif op < 0.8:
                lines[j] = line[:k] + rng.choice(EDITS) + line[k + rng.randint(0, 3):]
            else:
                lines[j] = line[:k] + line[k + rng.randint(1, 6):]
            if not lines:
                lines = ["x"]
        try:
            load_text("\n".join(lines), "f.yaml")
            outcomes["ok"] += 1
        except ConfigError as error:
            assert error.problems
            assert all(p.pos.file == "f.yaml" and p.pos.line >= 1 and p.pos.column >= 1 for p in error.problems)
            outcomes["problems"] += 1
    assert outcomes["ok"] > 50 and outcomes["problems"] > 500, outcomes
