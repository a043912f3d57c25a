"""The rules of the nodes that say what a rule matches: a conversation flow's turns, the matcher
form's `matcher` and its messages, and how one message's text is compared."""

from __future__ import annotations

import re
from typing import Any

import regex

from . import keys, regexlint
from .kernel import Checker, Failed, Known, Parts
from .model import TextMatch, Turn
from .replies import assistant
from .yamlsrc import Pos, YList, YMap


def flow(checker: Checker, raw: Any, pos: Pos) -> tuple[Turn, ...] | Failed[tuple[Turn, ...]]:
    """A conversation flow (`messages`): turns to compare, and the assistant turns that answer."""
    if not isinstance(raw, YList) or not raw:
        return checker.report(pos, "`messages` must be a non-empty list of turns")
    parts = Parts()
    turns = []
    for message in parts.mappings(checker, raw, "a turn must be a mapping with a `role`"):
        turn = parts(flow_turn(checker, message))
        if turn is not None:
            turns.append(turn)
    if len(turns) == len(raw):
        if not any(t.role == "assistant" for t in turns):
            parts.fail(checker.report(pos, "a conversation flow needs at least one assistant turn to answer with"))
        elif turns[-1].role != "assistant":
            # a request reaching these turns would have no assistant turn after it to answer with
            last = turns[-1]
            parts.fail(checker.report(last.pos or pos, f"a conversation flow ends with its replies: this {last.role} "
                                                       "turn has no assistant turn after it (add one, or remove the turn)"))
    return parts.result(tuple(turns))


def flow_turn(checker: Checker, message: YMap) -> Turn | Failed[Turn]:
    """One turn of a flow. Failed, it holds the turn if one could be made of it."""
    parts = Parts()
    known = keys.known(checker, message, keys.FLOW_TURN, "in a turn")
    parts.fail(known.failure)
    role = role_of(checker, known)
    if isinstance(role, Failed):
        return parts.stop(role)
    if role == "assistant":
        for key in ("matcher", "threshold", "tool_call_id"):
            if key in message:
                parts.fail(checker.report(message.key_at(key), f"`{key}` applies to the turns that are compared, "
                                                               "not to assistant turns (which are the replies)"))
        reply = parts(assistant(checker, known))
        if reply is None:
            return parts.stop()
        return parts.result(Turn(role=role, reply=reply, pos=message.pos))
    for key in ("tool_calls", "finish_reason", "refusal"):
        if key in message:
            parts.fail(checker.report(message.key_at(key), f"`{key}` belongs on an assistant turn, not a {role} turn"))
    if "tool_call_id" in message and role != "tool":
        parts.fail(checker.report(message.key_at("tool_call_id"), "`tool_call_id` belongs on a tool turn"))
    tool_call_id = parts(keys.TOOL_CALL_ID.read(checker, message))
    match = parts(text_match(checker, known, default="exact"))
    if match is None:
        return parts.stop()
    if role == "tool" and match.content is None and "matcher" not in message:
        match = TextMatch(matcher="any")
    return parts.result(Turn(role=role, match=match, tool_call_id=tool_call_id, pos=message.pos))


def role_of(checker: Checker, known: Known) -> str | Failed[str]:
    if "role" not in known.raw:
        return checker.missing(known, "role", known.raw.pos, "a message needs a `role`")
    return keys.ROLE.check(checker, known.raw["role"], known.raw.at("role"), "role")


def text_match(checker: Checker, known: Known, default: str, threshold: float = 0.8) -> TextMatch | Failed[TextMatch]:
    """How a message's `content` is compared (`matcher`, `threshold`), `default` the matcher
    when it names none. Failed, it holds the comparison if one could be made of it."""
    message = known.raw
    parts = Parts()
    matcher = keys.TURN_MATCHER.read_or(checker, message, default)
    if isinstance(matcher, Failed):
        return parts.stop(matcher)
    if "threshold" in message:
        value = keys.THRESHOLD_KEY.read_or(checker, message, threshold)
        if isinstance(value, Failed):
            return parts.stop(value)
        threshold = value
        if matcher != "fuzzy":
            parts.fail(checker.report(message.key_at("threshold"), f"`threshold` only applies to the fuzzy matcher "
                                                                   f"(this message uses `{matcher}`)"))
    content = keys.CONTENT.read_or(checker, message, None)
    if isinstance(content, Failed):
        return parts.stop(content)
    if matcher == "any":
        return parts.result(TextMatch(matcher="any"))
    if content is None:
        if message.get("role") == "tool" and "content" not in message:
            return parts.result(TextMatch(matcher="any"))
        return parts.stop(checker.missing(known, "content", message.pos if "content" not in message else message.at("content"),
                               f"the {matcher} matcher needs a `content` to compare (or use `matcher: any`)"))
    pattern = None
    if matcher == "regex":
        compiled = compile_regex(checker, content, message.at("content"))
        if isinstance(compiled, Failed):
            return parts.stop(compiled)
        pattern = compiled
    return parts.result(TextMatch(matcher=matcher, content=content, threshold=threshold, pattern=pattern))


def compile_regex(checker: Checker, text: str, pos: Pos) -> regex.Pattern[str] | Failed[Any]:
    """The pattern, in Python's `re` syntax (checked by `re`, whose messages these are),
    compiled by the `regex` module, whose searches take a time budget (see matching.py)."""
    try:
        re.compile(text, re.IGNORECASE)
    except re.error as error:
        return checker.report(pos, f"bad regex {text!r}: {error}")
    try:
        pattern = regex.compile(text, regex.IGNORECASE)
    except regex.error as error:  # (not seen: `re` refuses more than the regex module)
        return checker.report(pos, f"bad regex {text!r}: {error}")
    risk = regexlint.risk(text)
    if risk is not None:
        checker.warn(pos, f"regex {text!r} {risk}")
    return pattern


def matcher(checker: Checker, raw: Any, pos: Pos) -> tuple[Turn, ...] | Failed[tuple[Turn, ...]]:
    """The matcher form's `matcher`: the message patterns compared with the request's last messages."""
    if not isinstance(raw, YMap):
        return checker.report(pos, "`matcher` must be a mapping: {type: contains, messages: [...]}")
    parts = Parts()
    known = keys.known(checker, raw, keys.MATCHER, "in `matcher`")
    parts.fail(known.failure)
    kind: str | None = parts(keys.MATCHER_TYPE.read_or(checker, raw, "exact"))  # None: go on, the messages
    threshold = 0.8                                                              # may have problems of their own
    if "threshold" in raw:
        value = parts(keys.THRESHOLD_KEY.read_or(checker, raw, threshold))
        if value is not None:
            threshold = value
            listed = raw.get("messages")
            uses_fuzzy = kind == "fuzzy" or any(
                isinstance(m, YMap) and m.get("matcher") == "fuzzy"
                for m in (listed if isinstance(listed, YList) else ()))
            if kind is not None and not uses_fuzzy:
                parts.fail(checker.report(raw.key_at("threshold"), f"`threshold` only applies to the fuzzy matcher "
                                                                   f"(this matcher's type is `{kind}`)"))
    messages = raw.get("messages")
    if messages is None:
        if kind not in ("any", None):
            parts.fail(checker.missing(known, ("messages", "type"), raw.pos, "`matcher` needs `messages` to compare "
                                                                              "(or `type: any` to match every request)"))
        return parts.result(())
    if not isinstance(messages, YList) or not messages:
        return parts.stop(checker.report(raw.at("messages"), "`matcher.messages` must be a non-empty list of "
                                                             "messages (leave it out with `type: any` to match "
                                                             "every request)"))
    kind = kind or "any"
    turns = []
    for i, message in enumerate(messages):
        if not isinstance(message, YMap):
            parts.fail(checker.report(messages.at(i), "a message must be a mapping with a `role`"))
            continue
        message_keys = keys.known(checker, message, keys.MATCHER_MESSAGE, "in a matcher message")
        parts.fail(message_keys.failure)
        role = parts(role_of(checker, message_keys))
        if role is None:
            continue
        match = parts(text_match(checker, message_keys, default=kind, threshold=threshold))
        if match is None:
            continue
        tool_call_id = keys.MESSAGE_TOOL_CALL_ID.read_or(checker, message, None)
        if isinstance(tool_call_id, Failed):
            parts.fail(tool_call_id)
            continue
        turns.append(Turn(role=role, match=match, tool_call_id=tool_call_id, pos=message.pos))
    return parts.result(tuple(turns))
