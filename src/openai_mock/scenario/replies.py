"""The rules of what a rule answers: an assistant turn, the `reply` shorthand, tool calls, and a
whole configured `response:` (a chat.completion object), parsed once into a `GivenCompletion`."""

from __future__ import annotations

from typing import Any

import attrs

from . import keys
from .kernel import Checker, Failed, Known, Parts, plain
from .model import (
    GivenCall,
    GivenChoice,
    GivenCompletion,
    GivenMessage,
    GivenUsage,
    Json,
    Reply,
    ToolCall,
)
from .yamlsrc import Pos, YList, YMap

_USAGE_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


def assistant(checker: Checker, known: Known) -> Reply | Failed[Reply]:
    """An assistant turn: text, tool calls or a refusal. Failed, it holds the reply if one could
    be made of it."""
    message = known.raw
    content = keys.CONTENT.read_or(checker, message, None)
    if isinstance(content, Failed):
        return Failed(shown=content.shown)
    refusal = keys.REFUSAL.read_or(checker, message, None)
    if isinstance(refusal, Failed):
        return Failed(shown=refusal.shown)
    parts = Parts()
    calls: tuple[ToolCall, ...] = ()
    if message.get("tool_calls") is not None:
        given = parts(tool_calls(checker, message["tool_calls"], message.at("tool_calls")))
        if given is None:
            return parts.stop()
        calls = given
    if content is None and not calls and refusal is None:
        return parts.stop(checker.missing(known, ("content", "tool_calls", "refusal"), message.pos,
                                          "an assistant turn needs `content`, `tool_calls` or `refusal`"))
    finish = keys.FINISH_REASON.read_or(checker, message, "tool_calls" if calls else "stop")
    if isinstance(finish, Failed):
        return parts.stop(finish)
    return parts.result(Reply(content=content, tool_calls=calls, finish_reason=finish, refusal=refusal))


def tool_calls(checker: Checker, raw: Any, pos: Pos) -> tuple[ToolCall, ...] | Failed[tuple[ToolCall, ...]]:
    """Tool calls (arguments given as a mapping become JSON text). Failed, it holds the calls if
    they could all be made."""
    if not isinstance(raw, YList):
        return checker.report(pos, "`tool_calls` must be a list")
    parts = Parts()
    calls = []
    for i, call in enumerate(raw):
        if not isinstance(call, YMap):
            return parts.stop(checker.report(raw.at(i), "a tool call must be a mapping with `id` and `function`"))
        known = keys.known(checker, call, keys.TOOL_CALL, "in a tool call")
        parts.fail(known.failure)
        parts(keys.CALL_TYPE.read(checker, call))
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            return parts.stop(checker.missing(known, "id", call.at("id") if "id" in call else call.pos,
                                   "a tool call needs a string `id` (like call_abc123)"))
        function = call.get("function")
        if not isinstance(function, YMap):
            return parts.stop(checker.missing(known, "function", call.at("function") if "function" in call else call.pos,
                                   "a tool call needs `function: {name, arguments}`"))
        function_keys = keys.known(checker, function, keys.FUNCTION, "in a tool call's function")
        parts.fail(function_keys.failure)
        name = function.get("name")
        if not isinstance(name, str) or not name:
            return parts.stop(checker.missing(function_keys, "name", function.at("name") if "name" in function else function.pos,
                                   "a function needs a string `name`"))
        arguments = keys.ARGUMENTS.read_or(checker, function, "")
        if isinstance(arguments, Failed):
            return parts.stop(arguments)
        calls.append(ToolCall(id=call_id, name=name, arguments=arguments))
    return parts.result(tuple(calls))


def reply(checker: Checker, raw: Any, pos: Pos) -> Reply | Failed[Reply]:
    """The `reply` shorthand: the reply text, or an assistant turn."""
    if isinstance(raw, str):
        return Reply(content=raw)
    if isinstance(raw, YMap):
        known = keys.known(checker, raw, keys.ASSISTANT_TURN, "in `reply`")
        if raw.get("role", "assistant") != "assistant":
            return checker.report(raw.at("role"), "a reply has `role: assistant`")
        result = assistant(checker, known)
        if known.failure is None or isinstance(result, Failed):
            return result
        return Failed(result, known.failure.shown)
    return checker.report(pos, "`reply` must be the reply text, or a mapping like {content: ..., tool_calls: [...]}")


def response(checker: Checker, raw: Any, pos: Pos) -> tuple[Reply, GivenCompletion] | Failed[Any]:
    """A whole chat.completion object (the matcher form's `response:`): the reply other
    endpoints answer with (its first choice), and the object as given."""
    if not isinstance(raw, YMap):
        return checker.report(pos, "`response` must be a chat.completion object (a mapping with `choices`)")
    choices = raw.get("choices")
    if not isinstance(choices, YList) or not choices:
        return checker.report(raw.at("choices") if "choices" in raw else raw.pos, "`response.choices` must be a non-empty list")
    parts = Parts()
    for key, expected in (("id", str), ("model", str), ("created", int)):
        if key in raw and not isinstance(raw[key], expected):
            parts.fail(checker.report(raw.at(key), f"`response.{key}` must be {'an integer' if expected is int else 'a string'}"))
    usage = raw.get("usage")
    if usage is not None and (not isinstance(usage, YMap)
                              or any(not isinstance(usage.get(k, 0), int) for k in _USAGE_COUNTS)):
        parts.fail(checker.report(raw.at("usage"), "`response.usage` must be {prompt_tokens, completion_tokens, "
                                                   "total_tokens} integers"))
    replies, given = [], []
    for i, choice in enumerate(choices):
        if not isinstance(choice, YMap) or not isinstance(choice.get("message"), YMap):
            return parts.stop(checker.report(choices.at(i), "a choice needs a `message` mapping"))
        message = choice["message"]
        if message.get("role", "assistant") != "assistant":
            parts.fail(checker.report(message.at("role"), "a choice's message has `role: assistant`"))
        checked = parts(assistant(checker, Known(message)))
        if checked is None:
            return parts.stop()
        if "index" in choice and (isinstance(choice["index"], bool) or choice["index"] != i):
            parts.fail(checker.report(choice.at("index"), f"this choice's `index` must be {i} (choices are numbered from 0)"))
        finish = None
        if "finish_reason" in choice:
            read = keys.FINISH_REASON.check(checker, choice["finish_reason"], choice.at("finish_reason"), "finish_reason")
            if isinstance(read, Failed):
                return parts.stop(read)
            finish = read
            checked = attrs.evolve(checked, finish_reason=finish)
        replies.append(checked)
        given.append(_choice(choice, message, checked, finish))
    if parts.failed:
        return parts.stop()
    completion = GivenCompletion(
        keys=tuple(str(k) for k in raw), choices=tuple(given), id=raw.get("id"), created=raw.get("created"),
        model=raw.get("model"), usage=_usage(usage) if isinstance(usage, YMap) else None,
        extra=_extra(raw, ("id", "created", "model", "choices", "usage")))
    return replies[0], completion


def _choice(choice: YMap, message: YMap, checked: Reply, finish: str | None) -> GivenChoice:
    """A choice that passed its checks (`checked` its message), as given."""
    calls = None
    if message.get("tool_calls") is not None:
        calls = tuple(GivenCall(call, keys=tuple(str(k) for k in raw), function_keys=tuple(str(k) for k in raw["function"]))
                      for raw, call in zip(message["tool_calls"], checked.tool_calls, strict=True))
    streamed = Reply(content=checked.content, tool_calls=checked.tool_calls, refusal=checked.refusal,
                     finish_reason=finish or ("tool_calls" if checked.tool_calls else "stop"))
    given = GivenMessage(keys=tuple(str(k) for k in message), content=message.get("content"),
                         refusal=message.get("refusal"), tool_calls=calls, finish_reason=message.get("finish_reason"),
                         extra=_extra(message, ("role", "content", "refusal", "tool_calls", "finish_reason")))
    return GivenChoice(keys=tuple(str(k) for k in choice), message=given, reply=streamed, finish_reason=finish,
                       extra=_extra(choice, ("message", "finish_reason")))


def _usage(raw: YMap) -> GivenUsage:
    counts = [raw.get(k) for k in ("prompt_tokens", "completion_tokens")]
    prompt, completion = (None if count is None else int(count) for count in counts)
    return GivenUsage(prompt_tokens=prompt, completion_tokens=completion, fields=_extra(raw, ()))


def _extra(raw: YMap, read: tuple[str, ...]) -> tuple[tuple[str, Json], ...]:
    """The keys of `raw` besides those `read`, with their values as plain data."""
    return tuple((str(key), plain(value)) for key, value in raw.items() if key not in read)
