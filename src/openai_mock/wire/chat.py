"""Chat Completions: the `chat.completion` object and the `chat.completion.chunk` stream."""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Callable, Iterator, Sequence
from json.encoder import encode_basestring  # json.dumps's own, for ensure_ascii=False
from typing import Any

import attrs

from ..options import ChatOptions
from ..plan import Plan, Usage, each_padding
from ..scenario.model import GivenCall, GivenChoice, GivenCompletion, Json, Reply
from . import sse
from .text import pieces


@functools.lru_cache(maxsize=64)
def fingerprint(model: str) -> str:
    """A stable system_fingerprint per model, shaped like the real ones (fp_ + 10 hex)."""
    return "fp_" + hashlib.sha256(model.encode()).hexdigest()[:10]


def usage_object(usage: Usage) -> dict[str, Any]:
    filled: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
        },
    }
    if usage.given is not None:  # a configured `response:`'s usage: served as given, missing fields filled in
        return {**filled, **dict(usage.given.fields)}
    return filled


def message_object(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in reply.tool_calls
        ]
    message["refusal"] = reply.refusal
    message["annotations"] = []
    return message


def completion(plan: Plan) -> dict[str, Any]:
    """The non-streamed `chat.completion`."""
    if plan.given is not None:
        return _filled(plan, plan.given)
    assert plan.reply is not None and plan.usage is not None
    return {
        "id": plan.id,
        "object": "chat.completion",
        "created": plan.created,
        "model": plan.model,
        "choices": [{
            "index": 0, "message": message_object(plan.reply), "logprobs": None,
            "finish_reason": plan.reply.finish_reason,
        }],
        "usage": usage_object(plan.usage),
        "service_tier": "default",
        "system_fingerprint": fingerprint(plan.model),
    }


def _filled(plan: Plan, given: GivenCompletion) -> dict[str, Any]:
    """A configured chat.completion, served as given (its keys in the order written), with what
    the real API always sends added."""
    assert plan.usage is not None
    body = _as_written(given.keys, given.extra, {
        "id": given.id, "created": given.created, "model": given.model,
        "choices": [_given_choice(index, choice) for index, choice in enumerate(given.choices)],
        "usage": None,  # (counted below)
    })
    body.setdefault("id", plan.id)
    body.setdefault("object", "chat.completion")
    body.setdefault("created", plan.created)
    body.setdefault("model", plan.model)
    body["usage"] = usage_object(plan.usage)
    body.setdefault("service_tier", "default")
    body.setdefault("system_fingerprint", fingerprint(body["model"]))
    return body


def _given_choice(index: int, choice: GivenChoice) -> dict[str, Any]:
    given = choice.message
    calls = None if given.tool_calls is None else [_given_call(call) for call in given.tool_calls]
    message = _as_written(given.keys, given.extra, {
        "role": "assistant", "content": given.content, "refusal": given.refusal, "tool_calls": calls,
        "finish_reason": given.finish_reason,
    })
    message.setdefault("role", "assistant")
    message.setdefault("content", None)
    message.setdefault("refusal", None)
    message.setdefault("annotations", [])
    result = _as_written(choice.keys, choice.extra, {"message": message, "finish_reason": choice.finish_reason})
    result.setdefault("index", index)
    result.setdefault("logprobs", None)
    result.setdefault("finish_reason", "tool_calls" if given.tool_calls else "stop")
    return result


def _given_call(given: GivenCall) -> dict[str, Any]:
    call = given.call
    function = _as_written(given.function_keys, (), {"name": call.name, "arguments": call.arguments})
    function.setdefault("arguments", call.arguments)
    result = _as_written(given.keys, (), {"id": call.id, "type": "function", "function": function})
    result.setdefault("type", "function")
    return result


def _as_written(order: tuple[str, ...], extra: tuple[tuple[str, Json], ...], read: dict[str, Any]) -> dict[str, Any]:
    """An object with the keys written, in their order: those read from `read`, the others
    (served as written) from `extra`."""
    written = dict(extra)
    return {key: read[key] if key in read else copy.deepcopy(written[key]) for key in order}


def _replies(plan: Plan) -> list[Reply]:
    """The choices to stream: the configured object's, else the plan's reply."""
    if plan.given is None:
        assert plan.reply is not None
        return [plan.reply]
    return [choice.reply for choice in plan.given.choices]


@attrs.frozen
class Run:
    """Consecutive deltas of one choice made alike, from `items` (pieces of text, mostly):
    `delta(item)`, and, for the usual chunk, `fast(item)`: the chunk's `choices` JSON from a
    template, byte for byte `sse.dumps` of the choices."""

    items: Sequence[Any]
    delta: Callable[[Any], dict[str, Any]]
    fast: Callable[[Any], bytes] | None = None


def _same(delta: dict[str, Any]) -> dict[str, Any]:
    return delta


def _runs(reply: Reply, index: int, chunking: str | int) -> list[Run]:
    """The deltas of one choice: the role first, then text, then tool calls in fragments whose
    id and name come once, in the first fragment of each call."""
    first: dict[str, Any] = {"role": "assistant"}
    result = [Run([first], _same)]
    if reply.refusal is not None and reply.content is None:
        first.update(content=None, refusal="")
        result.append(Run(pieces(reply.refusal, chunking), lambda piece: {"refusal": piece}))
        return result
    first["content"] = "" if reply.content is not None or not reply.tool_calls else None
    prefix = b'[{"index":%d,"delta":{"content":' % index
    result.append(Run(pieces(reply.content or "", chunking), lambda piece: {"content": piece},
                      lambda piece: b"".join((prefix, encode_basestring(piece).encode(), _OPEN_CHOICE))))
    for number, call in enumerate(reply.tool_calls):
        head = {"index": number, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        if number == 0 and reply.content is None:
            first["tool_calls"] = [head]
        else:
            result.append(Run([{"tool_calls": [head]}], _same))
        result.append(Run(pieces(call.arguments, chunking), functools.partial(_arguments, number)))
    first["refusal"] = None
    return result


_OPEN_CHOICE = b'},"logprobs":null,"finish_reason":null}]'  # (the end of a chunk's choices, but the last)


def _arguments(number: int, piece: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": number, "function": {"arguments": piece}}]}


def _choices(plan: Plan) -> list[tuple[list[Run], str]]:
    """Per choice: its runs of deltas, the closing delta (`{}`) last, and its finish reason."""
    return [(_runs(reply, index, plan.chunking) + [Run([{}], _same)], reply.finish_reason)
            for index, reply in enumerate(_replies(plan))]


def _head(plan: Plan) -> dict[str, Any]:
    """The keys every chunk shares."""
    given = plan.given
    model = given.model if given is not None and given.model is not None else plan.model
    head = {
        "id": plan.id, "object": "chat.completion.chunk", "created": plan.created, "model": model,
        "service_tier": "default", "system_fingerprint": fingerprint(model),
    }
    if given is not None:
        for key in ("service_tier", "system_fingerprint"):
            written, value = given.written(key)
            if written:
                head[key] = value
    return head


def _count(choices: list[tuple[list[Run], str]], options: ChatOptions) -> int:
    return sum(len(run.items) for runs, _ in choices for run in runs) + options.include_usage


def chunks(plan: Plan) -> list[dict[str, Any]]:
    """Every chunk object of the stream, in order: role, content, closing chunk, usage chunk."""
    options = plan.options_of(ChatOptions)
    assert plan.usage is not None
    head, choices = _head(plan), _choices(plan)
    count = _count(choices, options)
    padding = each_padding(plan.seed, "obfuscation", count) if options.include_obfuscation else None
    result = []
    for index, (runs, finish_reason) in enumerate(choices):
        for run in runs:
            for item in run.items:
                chunk = {**head, "choices": [{"index": index, "delta": run.delta(item), "logprobs": None,
                                              "finish_reason": None}]}
                if options.include_usage:  # real traffic sends `usage: null` on every chunk only when asked
                    chunk["usage"] = None
                result.append(chunk)
        result[-1]["choices"][0]["finish_reason"] = finish_reason
    if options.include_usage:
        result.append({**head, "choices": [], "usage": usage_object(plan.usage)})
    if padding is not None:
        for chunk, pad in zip(result, padding, strict=True):
            chunk["obfuscation"] = pad
    return result


def stream(plan: Plan) -> sse.StreamBody:
    """The frames of `chunks(plan)`, byte for byte, each made as it is sent; the shared keys are
    encoded once."""
    options = plan.options_of(ChatOptions)
    assert plan.usage is not None
    head, choices = _head(plan), _choices(plan)
    count = _count(choices, options)
    usage = usage_object(plan.usage)

    def frames() -> Iterator[bytes]:
        opening = b"data: " + sse.dumps(head)[:-1] + b',"choices":'
        after = b',"usage":null' if options.include_usage else b""
        padding = each_padding(plan.seed, "obfuscation", count) if options.include_obfuscation else None
        for index, (runs, finish_reason) in enumerate(choices):
            for run in runs:
                closing = run is runs[-1]
                fast = run.fast
                for item in run.items:
                    if fast is not None:
                        choice = fast(item)
                    else:
                        choice = sse.dumps([{"index": index, "delta": run.delta(item), "logprobs": None,
                                             "finish_reason": finish_reason if closing else None}])
                    if padding is None:
                        yield b"".join((opening, choice, after, b"}\n\n"))
                    else:
                        yield b"".join((opening, choice, after, b',"obfuscation":"', next(padding).encode(), b'"}\n\n'))
        if options.include_usage:
            last = b"".join((opening, b'[],"usage":', sse.dumps(usage)))
            yield last + (b"}\n\n" if padding is None else b',"obfuscation":"' + next(padding).encode() + b'"}\n\n')

    return sse.stream_body(plan, sse.Frames(count, frames), sse.DONE)
