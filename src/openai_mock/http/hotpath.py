"""The generation endpoints (and `GET /health`), served as plain ASGI in front of the Quart app.

`POST /v1/chat/completions`, `/v1/responses`, `/v1/completions`, `/v1/embeddings` and
`/v1/moderations` carry nearly all of a test suite's (and a benchmark's) traffic. Quart's
layers per request (request and app contexts, signals, routing, werkzeug headers on both
sides) cost about as much as everything else together: measured with bench/, serving these
here answers 1.6 times the requests per second on the same CPU. `GET /health` is here too, so
that a server answers its readiness probe before the Quart app is loaded (`deferred.py`).
Everything else (models, stored responses, the admin API, unknown paths) stays with Quart,
and both call `common.py` for what every request goes through, so they answer alike.

Like quart-trio, each request here watches for the client's disconnect while it is answered:
the answer is cancelled when the client goes, which the executor records as
`client_disconnected`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from .. import parse, parse_endpoints, parse_responses
from ..engine import Request
from ..plan import Plan
from ..scenario.model import ErrorSpec
from ..wire import chat, completions, embeddings, moderations, responses
from ..wire.errors import invalid
from . import common, executor
from .transport import CONNECTION

if TYPE_CHECKING:
    from .state import MockState

CHAT = executor.Encoder(body=chat.completion, stream=chat.stream)
RESPONSES = executor.Encoder(body=responses.body, stream=responses.stream)
COMPLETIONS = executor.Encoder(body=completions.completion, stream=completions.stream)
MODERATIONS = executor.Encoder(body=moderations.body)

Parser = Callable[[dict[str, Any], str], Request]
GENERATION: dict[str, tuple[Parser, executor.Encoder]] = {
    "/v1/chat/completions": (parse.chat, CHAT),
    "/v1/responses": (parse_responses.responses, RESPONSES),
    "/v1/completions": (parse_endpoints.completions, COMPLETIONS),
    "/v1/moderations": (parse_endpoints.moderations, MODERATIONS),
}
PATHS = frozenset(GENERATION) | {"/v1/embeddings"}

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class GenerationEndpoints:
    """ASGI: the generation endpoints; any other request goes on to `app` (Quart)."""

    def __init__(self, state: MockState, app: ASGIApp):
        self.state = state
        self.app = app

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http" or scope["path"] not in PATHS:
            if scope["type"] == "http" and scope["path"] == "/health" and scope["method"] == "GET":
                await self._health(scope, send)  # answered before the Quart app is loaded
                return
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        method, origin = scope["method"], headers.get("origin")
        exchange, refusal = common.open_exchange(self.state, method, scope["path"], headers.get, _local(scope))
        try:
            if method == "OPTIONS" and refusal is None:
                reply = common.preflight(headers.get("access-control-request-headers"))
            else:
                # read even a body that is refused: one left unread would close the connection
                raw = await _read_body(receive, headers.get("content-length"), self.state.max_body)
                if refusal is not None:
                    reply = common.error_reply(exchange, refusal)
                elif method != "POST":
                    reply = common.error_reply(exchange, invalid(
                        f"Invalid method for URL ({method} {scope['path']}): use POST", status=405),
                        headers=[("allow", "POST")])
                elif raw is None:
                    reply = common.error_reply(exchange, invalid(
                        f"Request body too large: the limit is {self.state.max_body} bytes.",
                        code="request_too_large", status=413))
                else:
                    answer = self._answer(scope, raw, exchange)
                    if not isinstance(answer, Plan):
                        reply = answer
                    elif not _waits(answer):  # answered at once: nothing to cancel
                        reply = await self._execute(scope, answer, exchange)
                    else:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
                            reply = await self._execute(scope, answer, exchange)
                            await self._send(scope, send, reply, exchange, origin)
                            nursery.cancel_scope.cancel()  # the disconnect watcher's work is done
                        return
            await self._send(scope, send, reply, exchange, origin)
        except _ClientGone:
            if exchange.entry is not None:
                self.state.journal.finish(exchange.entry, "client_disconnected")
        except Exception as error:  # a bug in the mock: log it, and still answer like the API
            self.state.log.errors.exception("internal error", exc_info=error)
            reply = common.error_reply(exchange, ErrorSpec(status=500, message=f"openai-mock internal error: {error!r}"))
            await self._send(scope, send, reply, exchange, origin)

    async def _health(self, scope: dict, send: Callable[[dict], Awaitable[None]]) -> None:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        exchange, refusal = common.open_exchange(self.state, "GET", "/health", headers.get, _local(scope))
        reply = common.health() if refusal is None else common.error_reply(exchange, refusal)
        await self._send(scope, send, reply, exchange, headers.get("origin"))

    def _answer(self, scope: dict, raw: bytes, exchange: common.Exchange) -> executor.HTTPReply | Plan:
        """The reply, when no rule is involved; else the plan to carry out."""
        try:
            body = parse.json_body(raw)
            assert exchange.entry is not None
            exchange.entry.body = body
            if scope["path"] == "/v1/embeddings":  # no rule answers embeddings: no plan, no faults
                return executor.json_response(embeddings.body(parse_endpoints.embeddings(body)))
            parser, _ = GENERATION[scope["path"]]
            request = parser(body, exchange.session)
        except parse.Invalid as refused:
            return common.error_reply(exchange, refused.spec)
        return self.state.engine.plan(request, exchange.seed)

    async def _execute(self, scope: dict, plan: Plan, exchange: common.Exchange) -> executor.HTTPReply:
        assert exchange.entry is not None
        _, encoder = GENERATION[scope["path"]]
        connection = scope.get("state", {}).get(CONNECTION)
        chunked = scope.get("http_version") == "1.1"  # (an HTTP/1.0 body ends by closing)
        return await executor.respond(plan, encoder, connection, exchange.entry, self.state.journal,
                                      direct=chunked)

    async def _send(self, scope: dict, send: Callable[[dict], Awaitable[None]], reply: executor.HTTPReply,
                    exchange: common.Exchange, origin: str | None) -> None:
        common.close(self.state, exchange, reply.status)
        headers = reply.headers + common.response_headers(self.state.config, exchange, origin)
        if reply.stream is None:
            headers.append(("content-length", str(len(reply.body))))
        start = {"type": "http.response.start", "status": reply.status,
                 "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]}
        if reply.stream is not None:
            await send(start)
            async for frame in reply.stream:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        connection = scope.get("state", {}).get(CONNECTION)
        if connection is None:
            await send(start)
            await send({"type": "http.response.body", "body": reply.body, "more_body": False})
            return
        async with connection.corked():  # the head and the body in one write
            await send(start)
            await send({"type": "http.response.body", "body": reply.body, "more_body": False})


def _local(scope: dict) -> str | None:
    """The address the connection arrived at."""
    server = scope.get("server")
    return server[0] if server else None


def _waits(plan: Plan) -> bool:
    """Whether answering `plan` takes time during which the client may leave."""
    return plan.stream or bool(plan.timing.latency_ms or plan.timing.jitter_ms) or plan.failure is not None


async def _read_body(receive: Callable[[], Awaitable[dict]], length: str | None, limit: int) -> bytes | None:
    """The request body, or None when it is larger than `limit`."""
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left before sending its body
            raise _ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class _ClientGone(Exception):
    """The client went away before its request was complete."""


async def _cancel_on_disconnect(receive: Callable[[], Awaitable[dict]], scope: trio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return
