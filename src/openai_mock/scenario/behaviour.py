"""The rules of behaviour nodes: timing and faults (a rule's own keys, a step, `defaults`), an
injected `error`, and response `headers`."""

from __future__ import annotations

import re
from typing import Any, cast

from . import keys
from .kernel import ABSENT, Checker, Failed, Parts
from .model import Behaviour, ErrorSpec
from .yamlsrc import Pos, YList, YMap


def behaviour(checker: Checker, raw: YMap) -> Behaviour | Failed[Behaviour]:
    """The behaviour keys of `raw` (its other keys are its node's business). Failed, it holds
    the keys that passed."""
    if raw.keys().isdisjoint(_KEYS):  # (most rules: nothing to read)
        return _NONE
    parts = Parts()
    values = Behaviour(
        latency_ms=parts(keys.LATENCY_MS.read(checker, raw)),
        first_chunk_delay_ms=parts(keys.FIRST_CHUNK_DELAY_MS.read(checker, raw)),
        delay_ms=parts(keys.DELAY_MS.read(checker, raw)),
        jitter_ms=parts(keys.JITTER_MS.read(checker, raw)),
        hang_ms=parts(keys.HANG_MS.read(checker, raw)),
        fail_after_chunks=parts(keys.FAIL_AFTER_CHUNKS.read(checker, raw)),
        chunking=cast("str | int | None", parts(keys.CHUNKING.read(checker, raw))),  # (mypy joins str | int)
        failure=parts(keys.FAILURE.read(checker, raw)),
        error=parts(error(checker, raw["error"], raw.at("error")) if "error" in raw else ABSENT),
        headers=parts(headers(checker, raw["headers"], raw.at("headers")) if "headers" in raw else ABSENT),
        flow_reply=parts(keys.FLOW_REPLY.read(checker, raw)),
    )
    return parts.result(values)


_KEYS = frozenset(keys.BEHAVIOUR) | frozenset(keys.DEFAULTS_ONLY)
_NONE = Behaviour()


def steps(checker: Checker, raw: Any, pos: Pos) -> tuple[Behaviour, ...] | Failed[tuple[Behaviour, ...]]:
    if not isinstance(raw, YList) or not raw:
        return checker.report(pos, "`steps` must be a non-empty list of behaviour mappings ({} is the plain reply)")
    parts = Parts()
    result = []
    for step in parts.mappings(checker, raw, "a step must be a mapping of behaviour keys ({} is the plain reply)",
                               empty=True):
        parts.fail(keys.known(checker, step, keys.BEHAVIOUR, "in a step").failure)
        checked = parts(behaviour(checker, step))
        if checked is not None:
            result.append(checked)
    return parts.result(tuple(result))


def error(checker: Checker, raw: Any, pos: Pos) -> ErrorSpec | Failed[ErrorSpec]:
    """An `error`: a status alone, or a mapping. Failed, it holds the keys that passed."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        if not 400 <= raw <= 599:
            return checker.report(pos, "`error` status must be from 400 to 599")
        return ErrorSpec(status=raw)
    if not isinstance(raw, YMap):
        return checker.report(pos, "`error` must be a mapping like {status: 429, message: ...} (or a status number)")
    parts = Parts()
    parts.fail(keys.known(checker, raw, keys.ERROR, "in `error`").failure)
    status = keys.STATUS.read_or(checker, raw, 500)
    if isinstance(status, Failed):
        return parts.stop(status)
    spec = ErrorSpec(
        status=status,
        message=parts(keys.MESSAGE.read(checker, raw)),
        type=parts(keys.TYPE.read(checker, raw)),
        body=parts(keys.BODY.read(checker, raw)),
        content_type=parts(keys.CONTENT_TYPE.read(checker, raw)),
        code=parts(keys.CODE.read(checker, raw)),
        param=parts(keys.PARAM.read(checker, raw)),
        headers=parts(headers(checker, raw["headers"], raw.at("headers")) if "headers" in raw else ()) or (),
    )
    if spec.content_type is not None and spec.body is None:
        parts.fail(checker.report(raw.key_at("content_type"), "`content_type` applies to a raw `body`; give `body` too"))
    return parts.result(spec)


def headers(checker: Checker, raw: Any, pos: Pos) -> tuple[tuple[str, str], ...] | Failed[tuple[tuple[str, str], ...]]:
    """Response headers, names lowercased. Failed, it holds the headers that passed."""
    if not isinstance(raw, YMap):
        return checker.report(pos, "`headers` must be a mapping of header names to values")
    parts = Parts()
    result = []
    for name, value in raw.items():
        if not isinstance(name, str) or not re.fullmatch(keys.HEADER_NAME, name):
            parts.fail(checker.report(raw.key_at(name), f"{name!r} is not a valid header name"))
            continue
        if name.lower() in keys.FRAMING_HEADERS:
            parts.fail(checker.report(raw.key_at(name), f"`{name}` is set by the server from the body it sends; "
                                                        "it cannot be configured"))
            continue
        if isinstance(value, bool) or value is None:
            value = "true" if value is True else "false" if value is False else ""
        if not isinstance(value, (str, int, float)) or not re.fullmatch(r"[\t\x20-\x7e\x80-\xff]*", str(value)):
            # HTTP/1.1 carries header values as single lines of Latin-1 text
            parts.fail(checker.report(raw.at(name), f"the value of header {name!r} must be a single line of "
                                                    "plain (Latin-1) text"))
            continue
        result.append((name.lower(), str(value)))
    return parts.result(tuple(result))
