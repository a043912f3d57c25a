"""`openai-mock record`: a request that no rule answers goes to the upstream, its answer comes
back to the client as it arrives (chunk by chunk, at the upstream's pace, and broken where the
upstream broke), and the exchange is recorded (`recording.py`).

The upstream is any OpenAI-compatible server; its key is the client's own `Authorization`, or
the environment variable `--upstream-key-env` names. Nothing a client sends as a credential is
recorded: only the answer's headers that a client reads are.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx

from .conversation import Message
from .engine import Request
from .http.asgi import Send
from .http.executor import Connection
from .http.router import Forward
from .journal import COMPLETED, ERROR, Entry, Journal
from .log import RequestLog
from .recording import Event, Exchange, Recording
from .scenario.model import ToolCall
from .scenario.recorded import response_object

# request headers passed on to the upstream (besides the key); the rest stay here
FORWARDED = ("content-type", "accept", "openai-organization", "openai-project", "openai-beta", "user-agent",
             "x-stainless-arch", "x-stainless-lang", "x-stainless-os", "x-stainless-package-version",
             "x-stainless-runtime", "x-stainless-runtime-version", "x-stainless-retry-count")
# response headers not passed back: how the upstream framed its body is not how we frame ours
HOP_BY_HOP = ("content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding", "date",
              "server", "set-cookie", "alt-svc", "cf-ray", "cf-cache-status", "strict-transport-security")
TIMEOUT = httpx.Timeout(connect=30.0, read=600.0, write=60.0, pool=30.0)


class Recorder:
    def __init__(self, upstream: str, recording: Recording, log: RequestLog, key_env: str | None = None):
        self.upstream = upstream.rstrip("/")
        self.recording = recording
        self.log = log
        self.key_env = key_env
        self._client: httpx.AsyncClient | None = None
        # Responses API: what each recorded response ends (for the requests that continue it),
        # and the messages its output items stand for (for `item_reference`s)
        self._histories: dict[str, tuple[Message, ...]] = {}
        self._items: dict[str, Message] = {}

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Recorder]:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as client:
            self._client = client
            try:
                yield self
            finally:
                self._client = None

    async def forward(self, forward: Forward, send: Send, connection: Connection, entry: Entry | None,
                      journal: Journal) -> None:
        """Send the request upstream, pass its answer on as it arrives, and record it."""
        assert self._client is not None
        conversation, history = self._conversation(forward.request)
        started = time.perf_counter()
        request = self._client.build_request(forward.method, self.upstream + forward.path.removeprefix("/v1"),
                                             content=forward.body, headers=self._headers(forward.headers))
        response = await self._client.send(request, stream=True)
        latency = (time.perf_counter() - started) * 1000
        try:
            headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers.raw]
            status = response.status_code
            passed = [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]
            streamed = "text/event-stream" in response.headers.get("content-type", "") and status < 400
            if entry is not None:
                entry.status, entry.stream = status, streamed
            await send({"type": "http.response.start", "status": status,
                        "headers": [(n.encode("latin-1"), v.encode("latin-1")) for n, v in passed]})
            if streamed:
                events, ending = await self._pass_stream(response, send, connection, entry)
                body = None
            else:
                body = (await response.aread()).decode("utf-8", "replace")
                await send({"type": "http.response.body", "body": body.encode(), "more_body": False})
                events, ending = (), "complete"
        finally:
            await response.aclose()
        exchange = Exchange(endpoint=forward.endpoint, conversation=conversation, stream=streamed, status=status,
                            headers=tuple(headers), latency_ms=latency, body=body, events=events, ending=ending,
                            reply=_reply(forward.endpoint, streamed, body, events) if status < 400 else None)
        rule = self.recording.add(exchange)
        self._remember(forward.request, history, exchange)
        if entry is not None:
            entry.rule_id = str(rule["id"])
            journal.finish(entry, ERROR if status >= 400 else COMPLETED if ending == "complete" else f"failed:{ending}")
        self.log.message(f"recorded {forward.method} {forward.path} -> {status} as rule '{rule['id']}'")

    async def _pass_stream(self, response: httpx.Response, send: Send, connection: Connection,
                           entry: Entry | None) -> tuple[tuple[Event, ...], str]:
        """Pass the stream's bytes on as they arrive, and the events they make with the wait
        before each; then end as the upstream did: complete, or cut (FIN) or reset (RST)."""
        events: list[Event] = []
        parser = _Events()
        last = time.perf_counter()
        ending = "complete"
        try:
            async for chunk in response.aiter_raw():
                if not chunk:
                    continue
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                now = time.perf_counter()
                for name, data in parser.feed(chunk):
                    events.append(Event(wait_ms=(now - last) * 1000, data=data, event=name))
                    last = now
                    if entry is not None and data != "[DONE]":
                        entry.chunks_sent += 1
        except httpx.RemoteProtocolError:
            ending = "disconnect"  # the upstream closed mid-body (FIN)
        except (httpx.ReadError, httpx.NetworkError):
            ending = "reset"  # the upstream reset the connection
        if ending == "complete":
            if _needs_done(response) and not (events and events[-1].data == "[DONE]"):
                ending = "truncate"  # a clean end, but not a complete stream
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif ending == "reset":
            await connection.reset()
        else:
            connection.drop()
        return tuple(events), ending

    def _headers(self, given: dict[str, str]) -> dict[str, str]:
        headers = {name: value for name, value in given.items() if name in FORWARDED}
        headers["accept-encoding"] = "identity"  # (bytes passed on and recorded as they are)
        key = os.environ.get(self.key_env) if self.key_env else None
        if key:
            headers["authorization"] = f"Bearer {key}"
        elif "authorization" in given:
            headers["authorization"] = given["authorization"]
        elif "api-key" in given:
            headers["authorization"] = f"Bearer {given['api-key']}"
        return headers

    # --- what the request is, for the matcher ---------------------------------------------------

    def _conversation(self, request: Request) -> tuple[tuple[Message, ...], tuple[Message, ...]]:
        """(what a replay of this request matches, the stored history it continues): a Responses
        request continues what the upstream answered before, as the engine will at replay."""
        if request.endpoint != "responses":
            return request.conversation, ()
        history = self._histories.get(request.previous_response_id or "", ())
        own = tuple(self._items.get(m.reference, m) if m.reference is not None else m for m in request.conversation)
        whole = history + own
        if request.instructions is not None:
            return (Message(role="system", content=request.instructions),) + whole, history + own
        return whole, whole

    def _remember(self, request: Request, history: tuple[Message, ...], exchange: Exchange) -> None:
        """A Responses answer: what it ends, and its output items, for the requests to come."""
        if request.endpoint != "responses" or exchange.status >= 400:
            return
        found = _response_object(exchange)
        if found is None:
            return
        reply = exchange.reply or {}
        calls = tuple(_tool_call(call) for call in reply.get("tool_calls", ()))
        said = Message(role="assistant", content=reply.get("content"), tool_calls=calls)
        self._histories[str(found["id"])] = history + (said,)
        for item in found.get("output") or ():
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                if item.get("type") == "message":
                    self._items[item["id"]] = Message(role="assistant", content=_text_of(item))
                elif item.get("type") == "function_call":
                    self._items[item["id"]] = Message(role="assistant", tool_calls=(_tool_call({
                        "id": item.get("call_id", ""), "function": {"name": item.get("name", ""),
                                                                    "arguments": item.get("arguments", "")}}),))


class _Events:
    """Server-sent events out of the bytes of a stream, as they come."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[str | None, str]]:
        self._buffer += chunk.replace(b"\r\n", b"\n")
        found = []
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            name, data = None, []
            for line in block.decode("utf-8", "replace").split("\n"):
                if line.startswith("event:"):
                    name = line[6:].lstrip(" ")
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
            if data:
                found.append((name, "\n".join(data)))
        return found


def _needs_done(response: httpx.Response) -> bool:
    """Chat and legacy completions streams end with `data: [DONE]`; the Responses API's don't."""
    return not response.url.path.endswith("/responses")


def _response_object(exchange: Exchange) -> dict[str, Any] | None:
    return response_object(exchange.body, [event.data for event in exchange.events])


def _reply(endpoint: str, streamed: bool, body: str | None, events: Sequence[Event]) -> dict[str, Any] | None:
    """What the assistant said (`reply:` of the rule: content and tool calls), read from the answer."""
    try:
        if endpoint == "chat":
            return _chat_reply(streamed, body, events)
        if endpoint == "completions":
            texts = [json.loads(e.data)["choices"][0].get("text") or "" for e in events if e.data != "[DONE]"] \
                if streamed else [json.loads(body or "{}")["choices"][0].get("text") or ""]
            return _said("".join(texts), None, [])
        if endpoint == "responses":
            found = _response_object(Exchange("responses", (), streamed, 200, (), 0.0, body, tuple(events)))
            return _responses_reply(found) if found is not None else None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return None


def _chat_reply(streamed: bool, body: str | None, events: Sequence[Event]) -> dict[str, Any]:
    if not streamed:
        message = json.loads(body or "{}")["choices"][0]["message"]
        calls = [{"id": c["id"], "type": "function", "function": {"name": c["function"]["name"],
                                                                  "arguments": c["function"]["arguments"]}}
                 for c in message.get("tool_calls") or ()]
        return _said(message.get("content"), message.get("refusal"), calls)
    content: list[str] = []
    refusal: list[str] = []
    by_index: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.data == "[DONE]":
            continue
        chunk = json.loads(event.data)
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                content.append(delta["content"])
            if delta.get("refusal"):
                refusal.append(delta["refusal"])
            for call in delta.get("tool_calls") or ():
                entry = by_index.setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
                entry["id"] = call.get("id") or entry["id"]
                function = call.get("function") or {}
                entry["name"] += function.get("name") or ""
                entry["arguments"] += function.get("arguments") or ""
    calls = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
             for _, c in sorted(by_index.items())]
    return _said("".join(content) if content else None, "".join(refusal) if refusal else None, calls)


def _said(content: str | None, refusal: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """An assistant turn of the scenario format (it needs content, a refusal or tool calls)."""
    reply: dict[str, Any] = {"content": content if content is not None or refusal or calls else ""}
    if refusal:
        reply["refusal"] = refusal
    if calls:
        reply["tool_calls"] = calls
    return reply


def _responses_reply(response: dict[str, Any]) -> dict[str, Any]:
    texts, calls = [], []
    for item in response.get("output") or ():
        if item.get("type") == "message":
            texts.append(_text_of(item))
        elif item.get("type") == "function_call":
            calls.append({"id": item.get("call_id", ""), "type": "function",
                          "function": {"name": item.get("name", ""), "arguments": item.get("arguments", "")}})
    return _said("\n".join(texts) if texts else None, None, calls)


def _text_of(item: dict[str, Any]) -> str:
    return "\n".join(part.get("text") or part.get("refusal") or "" for part in item.get("content") or ()
                     if isinstance(part, dict))


def _tool_call(call: dict[str, Any]) -> ToolCall:
    function = call.get("function") or {}
    return ToolCall(id=str(call.get("id", "")), name=str(function.get("name", "")),
                    arguments=str(function.get("arguments", "")))

