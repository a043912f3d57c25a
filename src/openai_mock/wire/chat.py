"""Chat Completions: the `chat.completion` object and the `chat.completion.chunk` stream."""

from __future__ import annotations

import copy
import functools
import hashlib
from json.encoder import encode_basestring  # json.dumps's own, for ensure_ascii=False
from typing import Any

from ..options import ChatOptions
from ..plan import Plan, Usage, paddings
from ..scenario.model import GivenCall, GivenChoice, GivenCompletion, Json, Reply
from . import sse
from .text import split


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


def deltas(reply: Reply, chunking: str | int) -> list[dict[str, Any]]:
    """The deltas of one choice: the role first, then text, then tool calls in fragments whose
    id and name come once, in the first fragment of each call."""
    first: dict[str, Any] = {"role": "assistant"}
    result = [first]
    if reply.refusal is not None and reply.content is None:
        first.update(content=None, refusal="")
        result += [{"refusal": piece} for piece in split(reply.refusal, chunking)]
        return result
    first["content"] = "" if reply.content is not None or not reply.tool_calls else None
    result += [{"content": piece} for piece in split(reply.content or "", chunking)]
    for index, call in enumerate(reply.tool_calls):
        head = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        if index == 0 and reply.content is None:
            first["tool_calls"] = [head]
        else:
            result.append({"tool_calls": [head]})
        result += [{"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                   for piece in split(call.arguments, chunking)]
    first["refusal"] = None
    return result


_ABSENT = object()


def _chunk_parts(plan: Plan) -> tuple[dict[str, Any], list[tuple[list[Any], Any, str | None]]]:
    """The keys every chunk shares, and per chunk (choices, usage or _ABSENT, obfuscation)."""
    options = plan.options_of(ChatOptions)
    assert plan.usage is not None
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
    choices = []
    for index, reply in enumerate(_replies(plan)):
        pieces = deltas(reply, plan.chunking)
        pieces.append({})
        for n, delta in enumerate(pieces):
            last = n == len(pieces) - 1
            choices.append([{"index": index, "delta": delta, "logprobs": None,
                             "finish_reason": reply.finish_reason if last else None}])
    # real traffic sends `usage: null` on every chunk only when the client asked for usage
    usages: list[Any] = [None if options.include_usage else _ABSENT] * len(choices)
    if options.include_usage:
        choices.append([])
        usages.append(usage_object(plan.usage))
    padding: list[str | None] = [None] * len(choices)
    if options.include_obfuscation:
        padding = list(paddings(plan.seed, "obfuscation", len(choices)))
    return head, list(zip(choices, usages, padding, strict=True))


def chunks(plan: Plan) -> list[dict[str, Any]]:
    """Every chunk object of the stream, in order: role, content, closing chunk, usage chunk."""
    head, parts = _chunk_parts(plan)
    result = []
    for choices, usage, padding in parts:
        chunk = {**head, "choices": choices}
        if usage is not _ABSENT:
            chunk["usage"] = usage
        if padding is not None:
            chunk["obfuscation"] = padding
        result.append(chunk)
    return result


def _choices_json(choices: list[Any]) -> bytes:
    """`sse.dumps(choices)`; the usual chunk (one piece of text) from a template."""
    if len(choices) == 1:
        choice = choices[0]
        delta = choice["delta"]
        if (len(delta) == 1 and type(delta.get("content")) is str and choice["logprobs"] is None
                and choice["finish_reason"] is None):
            return b'[{"index":%d,"delta":{"content":%b},"logprobs":null,"finish_reason":null}]' % (
                choice["index"], encode_basestring(delta["content"]).encode())
    return sse.dumps(choices)


def stream(plan: Plan) -> sse.StreamBody:
    """The frames of `chunks(plan)`, byte for byte; the shared keys are encoded once."""
    head, parts = _chunk_parts(plan)
    opening = b"data: " + sse.dumps(head)[:-1] + b',"choices":'
    frames = []
    for choices, usage, padding in parts:
        frame = opening + _choices_json(choices)
        if usage is not _ABSENT:
            frame += b',"usage":' + sse.dumps(usage)
        if padding is not None:
            frame += b',"obfuscation":"' + padding.encode() + b'"'
        frames.append(frame + b"}\n\n")
    return sse.stream_body(plan, tuple(frames), sse.DONE)
