"""Matching, as a pure function: which rule answers a conversation, with which turn, and why
nothing matched. No server: rules come from YAML text, requests are `Message` tuples."""

from __future__ import annotations

import textwrap

import pytest

from openai_mock.conversation import Message
from openai_mock.matching import Match, NoMatch, match
from openai_mock.scenario import Reply, ToolCall, load_text


def rules(text: str, name: str = "x.yaml"):
    return load_text(textwrap.dedent(text).lstrip("\n"), name).rules


def user(text: str | None) -> Message:
    return Message(role="user", content=text)


def assistant(text: str | None = "whatever the client kept", calls: tuple[ToolCall, ...] = ()) -> Message:
    return Message(role="assistant", content=text, tool_calls=calls)


def tool(call_id: str, text: str = "result") -> Message:
    return Message(role="tool", content=text, tool_call_id=call_id)


def matched(found: Match | NoMatch) -> str:
    assert isinstance(found, Match), found.explain() if isinstance(found, NoMatch) else found
    return found.rule.id


def reply_text(found: Match | NoMatch) -> str | None:
    assert isinstance(found, Match), found
    assert found.reply is not None
    return found.reply.content


def one_turn(matcher: str, content: str, threshold: float | None = None):
    extra = f", threshold: {threshold}" if threshold is not None else ""
    return rules(f"""
        responses:
          - id: r
            messages:
              - {{role: user, content: '{content}', matcher: {matcher}{extra}}}
              - {{role: assistant, content: sure}}
    """)


# --- the five matchers ---------------------------------------------------------------------------

@pytest.mark.parametrize(("matcher", "content", "threshold", "hits", "misses"), [
    ("exact", "Hello there", None, ["Hello there", "  Hello there \n"], ["hello there", "Hello there!", ""]),
    ("contains", "Weather", None, ["what's the WEATHER like", "weather"], ["whether", "the climate"]),
    ("regex", "code.*python", None, ["write CODE in Python please", "code python"], ["python code", ""]),
    ("regex", "^(?-i:Brief)", None, ["Brief answer"], ["brief answer", "Be Brief"]),
    ("fuzzy", "I need help", 0.7, ["i need help!", "I need hlp"], ["completely different words"]),
    ("fuzzy", "abc", 1.0, ["ABC"], ["abd"]),
    ("any", "ignored", None, ["", "anything at all"], []),
])
def test_each_matcher(matcher: str, content: str, threshold: float | None, hits: list[str], misses: list[str]) -> None:
    rule_set = one_turn(matcher, content, threshold)
    for text in hits:
        assert matched(match(rule_set, (user(text),))) == "r", text
    for text in misses:
        assert isinstance(match(rule_set, (user(text),)), NoMatch), text


def test_fuzzy_default_threshold_is_0_8() -> None:
    rule_set = one_turn("fuzzy", "abcdefghij")
    assert rule_set[0].turns[0].match.threshold == 0.8
    assert isinstance(match(rule_set, (user("abcdefghXY"),)), Match)  # ratio 0.8
    assert isinstance(match(rule_set, (user("abcdefgXYZ"),)), NoMatch)  # ratio 0.7


def test_the_role_must_fit_too() -> None:
    rule_set = one_turn("any", "x")
    assert isinstance(match(rule_set, (Message(role="system", content="x"),)), NoMatch)


# --- specificity --------------------------------------------------------------------------------

RANKED = """
    responses:
      - id: anything
        matcher: {type: any, messages: [{role: user}]}
        reply: any
      - id: fuzzy
        matcher: {type: fuzzy, threshold: 0.1, messages: [{role: user, content: hello world}]}
        reply: fuzzy
      - id: contains
        matcher: {type: contains, messages: [{role: user, content: hello}]}
        reply: contains
      - id: regex
        matcher: {type: regex, messages: [{role: user, content: "^hello"}]}
        reply: regex
      - id: exact
        matcher: {type: exact, messages: [{role: user, content: hello world}]}
        reply: exact
"""


def test_the_most_specific_matcher_wins_whatever_the_file_order() -> None:
    rule_set = rules(RANKED)
    assert matched(match(rule_set, (user("hello world"),))) == "exact"
    assert matched(match(rule_set, (user("hello there"),))) == "regex"
    assert matched(match(rule_set, (user("oh hello"),))) == "contains"
    assert matched(match(rule_set, (user("jello world"),))) == "fuzzy"
    assert matched(match(rule_set, (user("zzz"),))) == "anything"
    # the same rules in reverse order: the same winners
    reverse = tuple(reversed(rule_set))
    assert matched(match(reverse, (user("hello world"),))) == "exact"
    assert matched(match(reverse, (user("oh hello"),))) == "contains"


def test_equal_specificity_goes_to_the_first_rule_in_file_order() -> None:
    rule_set = rules("""
        responses:
          - id: first
            matcher: {type: contains, messages: [{role: user, content: hello}]}
            reply: one
          - id: second
            matcher: {type: contains, messages: [{role: user, content: world}]}
            reply: two
    """)
    assert matched(match(rule_set, (user("hello world"),))) == "first"


def test_specificity_is_the_mean_rank_of_the_compared_turns() -> None:
    rule_set = rules("""
        responses:
          # exact (4) and any (0): mean 2
          - id: exact-and-any
            messages:
              - {role: system, matcher: any}
              - {role: user, content: hello}
              - {role: assistant, content: a}
          # contains (2) twice: mean 2, a tie, so file order decides
          - id: contains-twice
            messages:
              - {role: system, content: you, matcher: contains}
              - {role: user, content: hell, matcher: contains}
              - {role: assistant, content: b}
          # regex (3) twice: mean 3
          - id: regex-twice
            messages:
              - {role: system, content: "^you", matcher: regex}
              - {role: user, content: "^hel", matcher: regex}
              - {role: assistant, content: c}
    """)
    both = (Message(role="system", content="you are kind"), user("hello"))
    assert matched(match(rule_set, both)) == "regex-twice"
    assert matched(match(rule_set[:2], both)) == "exact-and-any"
    assert matched(match((rule_set[1], rule_set[0]), both)) == "contains-twice"
    found = match(rule_set, both)
    assert isinstance(found, Match) and found.score == 3.0


# --- conversation flows ----------------------------------------------------------------------------

FLOW = """
    responses:
      - id: conversation
        messages:
          - {role: user, content: Start conversation}
          - {role: assistant, content: Hello! How can I help you?}
          - {role: user, content: Tell me about the weather}
          - {role: assistant, content: The weather is sunny today!}
"""


def test_the_reply_is_the_next_assistant_turn() -> None:
    rule_set = rules(FLOW)
    assert reply_text(match(rule_set, (user("Start conversation"),))) == "Hello! How can I help you?"
    second = (user("Start conversation"), assistant(), user("Tell me about the weather"))
    assert reply_text(match(rule_set, second)) == "The weather is sunny today!"


def test_assistant_messages_of_the_request_are_not_compared_but_must_be_there() -> None:
    rule_set = rules(FLOW)
    kept = (user("Start conversation"), assistant("a different text"), user("Tell me about the weather"))
    assert isinstance(match(rule_set, kept), Match)
    shifted = (user("Start conversation"), user("Tell me about the weather"))
    found = match(rule_set, shifted)
    assert isinstance(found, NoMatch)
    assert found.misses[0].reason == "message 2 is a user message where the flow has an assistant turn"


def test_a_request_past_the_flow_or_with_no_reply_left_does_not_match() -> None:
    rule_set = rules(FLOW)
    longer = (user("Start conversation"), assistant(), user("Tell me about the weather"), assistant(), user("more"))
    found = match(rule_set, longer)
    assert isinstance(found, NoMatch)
    assert found.misses[0].reason == "the request has 5 messages, more than the flow's 4 turns"
    done = (user("Start conversation"), assistant(), user("Tell me about the weather"), assistant())
    found = match(rule_set, done)
    assert isinstance(found, NoMatch)
    assert found.misses[0].reason == "the flow has nothing after the request's 4 messages, no reply"


def test_flow_reply_last_answers_every_turn_with_the_last_assistant_turn() -> None:
    for where in ("defaults", "rule"):
        text = FLOW.replace("    responses:", "    defaults: {flow_reply: last}\n    responses:") \
            if where == "defaults" else FLOW.replace("  - id: conversation", "  - id: conversation\n        flow_reply: last")
        rule_set = rules(text)
        assert reply_text(match(rule_set, (user("Start conversation"),))) == "The weather is sunny today!", where
        second = (user("Start conversation"), assistant(), user("Tell me about the weather"))
        assert reply_text(match(rule_set, second)) == "The weather is sunny today!", where


def test_flow_reply_last_answers_a_request_that_ends_on_an_assistant_turn() -> None:
    # openai-mock-api 0.4 answers [user, assistant] (and the whole flow) with the last turn
    text = FLOW.replace("    responses:", "    defaults: {flow_reply: last}\n    responses:")
    for request in ((user("Start conversation"), assistant()),
                    (user("Start conversation"), assistant(), user("Tell me about the weather"), assistant())):
        assert reply_text(match(rules(text), request)) == "The weather is sunny today!"
    too_long = (user("Start conversation"), assistant(), user("Tell me about the weather"), assistant(), user("x"))
    assert isinstance(match(rules(text), too_long), NoMatch)
    # `next` (the default) has no reply to give there
    assert isinstance(match(rules(FLOW), (user("Start conversation"), assistant())), NoMatch)


def test_a_rule_can_restore_next_over_defaults_last() -> None:
    text = FLOW.replace("    responses:", "    defaults: {flow_reply: last}\n    responses:").replace(
        "  - id: conversation", "  - id: conversation\n        flow_reply: next")
    assert reply_text(match(rules(text), (user("Start conversation"),))) == "Hello! How can I help you?"


TOOL_FLOW = """
    responses:
      - id: weather-tool-flow
        messages:
          - {role: user, content: weather, matcher: contains}
          - role: assistant
            tool_calls:
              - {id: call_abc123, type: function, function: {name: get_weather, arguments: '{"location": "SF"}'}}
          - {role: tool, tool_call_id: call_abc123}
          - {role: assistant, content: "It's sunny in San Francisco!"}
"""


def test_tool_calls_then_the_answer_by_tool_call_id() -> None:
    rule_set = rules(TOOL_FLOW)
    first = match(rule_set, (user("What's the weather?"),))
    assert isinstance(first, Match) and first.reply is not None
    assert first.reply.tool_calls == (ToolCall(id="call_abc123", name="get_weather", arguments='{"location": "SF"}'),)
    assert first.reply.finish_reason == "tool_calls"
    call = assistant(None, first.reply.tool_calls)
    assert reply_text(match(rule_set, (user("weather?"), call, tool("call_abc123", "72F")))) == \
        "It's sunny in San Francisco!"
    found = match(rule_set, (user("weather?"), call, tool("call_other")))
    assert isinstance(found, NoMatch)
    assert found.misses[0].reason == "message 3 answers tool call 'call_other', the rule expects 'call_abc123'"


def test_a_tool_turn_with_content_compares_the_content_and_without_accepts_any() -> None:
    rule_set = rules("""
        responses:
          - id: by-content
            messages:
              - {role: user, content: go}
              - {role: assistant, tool_calls: [{id: c1, function: {name: f}}]}
              - {role: tool, content: ok, matcher: contains}
              - {role: assistant, content: it worked}
          - id: any-tool
            messages:
              - {role: user, content: go}
              - {role: assistant, tool_calls: [{id: c1, function: {name: f}}]}
              - {role: tool}
              - {role: assistant, content: something came back}
    """)
    call = assistant(None, (ToolCall(id="c1", name="f"),))
    assert matched(match(rule_set, (user("go"), call, tool("c1", "all OK")))) == "by-content"
    assert matched(match(rule_set, (user("go"), call, tool("c1", "failed")))) == "any-tool"


def test_system_and_developer_are_the_same_seat() -> None:
    rule_set = rules("""
        responses:
          - id: sys
            messages:
              - {role: system, content: be brief, matcher: contains}
              - {role: user, matcher: any}
              - {role: assistant, content: ok}
          - id: dev
            matcher: {type: contains, messages: [{role: developer, content: terse}, {role: user, content: q}]}
            reply: ok
    """)
    assert matched(match(rule_set, (Message(role="developer", content="Please be brief"), user("hi")))) == "sys"
    assert matched(match(rule_set, (Message(role="system", content="be terse"), user("q")))) == "dev"
    assert isinstance(match(rule_set, (user("be brief"), user("hi"))), NoMatch)


# --- the matcher form ------------------------------------------------------------------------------

def test_the_matcher_form_compares_the_last_messages() -> None:
    rule_set = rules("""
        responses:
          - id: tail
            matcher:
              type: contains
              messages:
                - {role: assistant, content: which city}
                - {role: user, content: paris}
            reply: Sunny in Paris.
    """)
    long = (Message(role="system", content="sys"), user("weather?"), assistant("Which city?"), user("Paris"))
    assert reply_text(match(rule_set, long)) == "Sunny in Paris."
    assert isinstance(match(rule_set, (assistant("Which city?"), user("Paris"))), Match)
    # the pair must be the last two messages, in order
    moved = (assistant("Which city?"), user("Paris"), assistant("Sunny."), user("thanks"))
    assert isinstance(match(rule_set, moved), NoMatch)
    short = match(rule_set, (user("Paris"),))
    assert isinstance(short, NoMatch)
    assert short.misses[0].reason == "the request has 1 message, the rule compares the last 2"


def test_type_any_without_messages_matches_every_request() -> None:
    rule_set = rules("responses:\n  - {id: all, matcher: {type: any}, reply: hi}\n")
    for conversation in ((user("x"),), (user("x"), assistant(), tool("c"))):
        found = match(rule_set, conversation)
        assert isinstance(found, Match) and found.reply == Reply(content="hi")


# --- why nothing matched -------------------------------------------------------------------------

def test_no_match_names_the_rule_with_file_line_and_reason() -> None:
    rule_set = rules("""
        # the weather rule
        responses:
          - id: weather
            messages:
              - {role: user, content: weather, matcher: contains}
              - {role: assistant, content: sunny}
    """)
    found = match(rule_set, (user("hello"),))
    assert isinstance(found, NoMatch)
    assert found.explain() == ("No rule matched this request. Nearest: rule 'weather' (x.yaml:3): "
                               "message 1 content does not contain 'weather' (got 'hello').")


def test_no_match_lists_the_nearest_rules_first_and_counts_the_rest() -> None:
    rule_set = rules("""
        responses:
          - id: far
            messages:
              - {role: system, content: x}
              - {role: assistant, content: a}
          - id: near
            messages:
              - {role: user, content: hello}
              - {role: assistant, content: a}
              - {role: user, content: second, matcher: regex}
              - {role: assistant, content: b}
          - id: fuzzy
            matcher: {type: fuzzy, messages: [{role: user, content: something else}]}
            reply: c
          - id: exact
            matcher: {type: exact, messages: [{role: user, content: other}]}
            reply: d
    """)
    found = match(rule_set, (user("hello"), assistant(), user("third")))
    assert isinstance(found, NoMatch)
    text = found.explain(limit=2)
    assert text.startswith("No rule matched this request. Nearest: rule 'near' (x.yaml:6): "
                           "message 3 content does not match regex 'second' (got 'third'); ")
    assert text.endswith(" (2 more rules not shown).")
    assert text.count("rule '") == 2
    everything = found.explain(limit=10)
    assert "rule 'far' (x.yaml:2): message 1 is a user message where the rule expects system" in everything
    assert "below the threshold 0.8" in everything
    assert "content is not exactly 'other' (got 'third')" in everything


def test_no_rules_at_all() -> None:
    found = match((), (user("hi"),))
    assert isinstance(found, NoMatch)
    assert found.explain() == "No rule matched this request: the configuration has no rules."
