"""The one way in: every request but the admin API's is answered here, from the table of
`endpoints.py`, as plain ASGI; `/_mock/...` goes on to the Quart app (`admin.py`).

The API carries nearly all of a test suite's (and a benchmark's) traffic. Quart's layers per
request (request and app contexts, signals, routing, werkzeug headers on both sides) cost about
as much as everything else together, so they are kept for the admin API, where a framework's
routing and helpers earn their cost. Both call `common.py` for what every request goes through,
so they answer alike; 404, 405, 408, 413 and 500 are answered here, in one place, for every
path the router serves.

Like quart-trio, a request that takes time watches for the client's disconnect while it is
answered: the answer is cancelled when the client goes, which the executor records as
`client_disconnected`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from ..engine import Request
from ..journal import Entry, Journal
from ..plan import Plan
from ..requests.checks import Invalid, json_body
from ..scenario.model import ErrorSpec
from ..store import StoreUnavailable
from . import common, executor
from .access import is_admin
from .asgi import ASGIApp, Receive, Scope, Send
from .endpoints import Endpoint, route
from .transport import CONNECTION

if TYPE_CHECKING:
    from .state import MockState

CORKED_BODY = 256 * 1024  # bytes of a body sent in one write with the head


@attrs.frozen
class Forward:
    """A request that no rule answers, for the forwarder (`openai-mock record`'s upstream)."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str]  # the client's, lower-case names
    request: Request
    endpoint: str


class Forwarder(Protocol):
    async def forward(self, forward: Forward, send: Send, connection: executor.Connection,
                      entry: Entry | None, journal: Journal) -> None: ...


class Router:
    """ASGI: the endpoints of `endpoints.py`; the admin API (and the lifespan protocol) go on
    to `admin`. With a `forwarder`, a request that no rule answers goes to it."""

    def __init__(self, state: MockState, admin: ASGIApp, forwarder: Forwarder | None = None):
        self.state = state
        self.admin = admin
        self.forwarder = forwarder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_admin(scope["path"]):
            if scope["type"] == "websocket":
                await self._refuse_websocket(scope, send)
                return
            await self.admin(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        method, path, origin = scope["method"], scope["path"], headers.get("origin")
        try:
            exchange, refusal = await common.open_exchange(self.state, method, path, headers.get, _local(scope))
        except StoreUnavailable as error:  # (a configuration with a `seed` counts requests in the store)
            exchange, refusal = common.Exchange(method=method, path=path, session="default"), common.unavailable(error)
        try:
            if method == "OPTIONS" and refusal is None:
                reply: executor.HTTPReply | tuple[Endpoint, Plan] | Forward = common.preflight(
                    headers.get("access-control-request-headers"))
            else:
                reply = await self._answer(scope, receive, headers, exchange, refusal)
            if isinstance(reply, tuple):
                await self._carry_out(scope, receive, send, *reply, exchange, origin)
            elif isinstance(reply, Forward):
                await self._forward(scope, receive, send, reply, exchange)
            else:
                await self._send(scope, send, reply, exchange, origin)
        except _ClientGone:
            if exchange.entry is not None:
                self.state.journal.finish(exchange.entry, "client_disconnected")
        except Exception as error:  # a bug in the mock: log it, and still answer like the API
            self.state.log.errors.exception("internal error", exc_info=error)
            await self._send(scope, send, common.error_reply(exchange, common.internal(error)), exchange, origin)

    async def _refuse_websocket(self, scope: Scope, send: Send) -> None:
        """A WebSocket upgrade, on any path: refused with a plain HTTP answer (an OpenAI error),
        never accepted. The API has no WebSocket endpoint on any path the mock serves (its
        Realtime API is not mocked), and Quart, which would take it, has no route for one."""
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        path = scope["path"]
        exchange = common.Exchange(method="GET", path=path, session="default")
        spec = self.state.access.refusal("GET", path, headers.get, _local(scope)) or common.no_websocket(path)
        reply = common.error_reply(exchange, spec)
        common.close(self.state, exchange, reply.status)
        if "websocket.http.response" not in scope.get("extensions", {}):  # pragma: no cover - other servers
            await send({"type": "websocket.close", "code": 1008})  # (a 403, without a body)
            return
        answer = reply.headers + [("content-length", str(len(reply.body))), ("connection", "close")]
        await send({"type": "websocket.http.response.start", "status": reply.status,
                    "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in answer]})
        await send({"type": "websocket.http.response.body", "body": reply.body, "more_body": False})

    async def _answer(self, scope: Scope, receive: Receive, headers: dict[str, str], exchange: common.Exchange,
                      refusal: ErrorSpec | None) -> executor.HTTPReply | tuple[Endpoint, Plan] | Forward:
        """The reply, or (the endpoint, the plan to carry out) when rules answer, or what to
        forward when no rule does and there is a forwarder."""
        method, path = scope["method"], scope["path"]
        # read even a body that is refused: one left unread would close the connection
        settings = self.state.settings
        with trio.move_on_after(settings.body_timeout) as waited:
            raw = await _read_body(receive, headers.get("content-length"), settings.max_body)
        if waited.cancelled_caught:
            return common.error_reply(exchange, common.too_slow(settings.body_timeout))
        if refusal is not None:
            return common.error_reply(exchange, refusal)
        routed = route(path)
        if routed is None:
            return common.error_reply(exchange, common.not_found(method, path))
        methods, param = routed
        endpoint = methods.get(method)
        if endpoint is None:
            spec, allow = common.wrong_method(method, path, list(methods))
            return common.error_reply(exchange, spec, allow)
        if raw is None:
            return common.error_reply(exchange, common.too_large(self.state.max_body))
        try:
            body = json_body(raw) if endpoint.body else None
            if exchange.entry is not None:
                exchange.entry.keep_body(body, len(raw))
            if endpoint.answer is not None:
                return await endpoint.answer(self.state, exchange, body, param)
            assert endpoint.read is not None and body is not None  # (rules answer endpoints with a body)
            request = endpoint.read(body, exchange.session)
            plan = await self.state.engine.plan(request, exchange.seed)
        except Invalid as refused:
            return common.error_reply(exchange, refused.spec)
        except StoreUnavailable as error:
            return common.error_reply(exchange, common.unavailable(error))
        if plan.unmatched and self.forwarder is not None:
            return Forward(method, path, raw, headers, request, endpoint.name)
        return endpoint, plan

    async def _forward(self, scope: Scope, receive: Receive, send: Send, forward: Forward,
                       exchange: common.Exchange) -> None:
        assert self.forwarder is not None
        connection = scope.get("state", {}).get(CONNECTION)
        if connection is None or scope.get("http_version") != "1.1":
            connection = _ASGIBody(connection, send)
        async with _cancelled_on_disconnect(scope, receive):
            await self.forwarder.forward(forward, send, connection, exchange.entry, self.state.journal)
        await self.state.journal.ending()

    async def _carry_out(self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint, plan: Plan,
                         exchange: common.Exchange, origin: str | None) -> None:
        if not _waits(plan):  # answered at once: nothing to cancel
            reply = await self._execute(scope, send, endpoint, plan, exchange)
            await self._send(scope, send, reply, exchange, origin)
            return
        async with _cancelled_on_disconnect(scope, receive):
            reply = await self._execute(scope, send, endpoint, plan, exchange)
            await self._send(scope, send, reply, exchange, origin)

    async def _execute(self, scope: Scope, send: Send, endpoint: Endpoint, plan: Plan,
                       exchange: common.Exchange) -> executor.HTTPReply:
        assert exchange.entry is not None and endpoint.encoder is not None
        connection = scope.get("state", {}).get(CONNECTION)
        if connection is None or scope.get("http_version") != "1.1":  # (an HTTP/1.0 body ends by closing)
            connection = _ASGIBody(connection, send)
        return await executor.respond(plan, endpoint.encoder, connection, exchange.entry, self.state.journal)

    async def _send(self, scope: Scope, send: Send, reply: executor.HTTPReply, exchange: common.Exchange,
                    origin: str | None) -> None:
        common.close(self.state, exchange, reply.status)
        headers = reply.headers + common.response_headers(self.state.config, exchange, origin, reply.headers)
        if reply.stream is None:
            headers.append(("content-length", str(len(reply.body))))
            await self.state.journal.ending()  # (written, or on its way, before the client has the answer)
        start = {"type": "http.response.start", "status": reply.status,
                 "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]}
        if reply.stream is not None:
            await send(start)
            await reply.stream()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        body = reply.body if scope["method"] != "HEAD" else b""
        connection = scope.get("state", {}).get(CONNECTION)
        if connection is None or len(body) > CORKED_BODY:  # (a long body is not copied to join the head)
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        async with connection.corked():  # the head and the body in one write
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})


class _ASGIBody:
    """The connection of a stream that must not be written to directly: an HTTP/1.0 one, whose
    body is not chunked (it ends when the connection does), or one served without our
    transport. Its chunks go the long way, through ASGI; its faults to the transport's
    connection."""

    def __init__(self, connection: executor.Connection | None, send: Send):
        self._connection = connection
        self._send = send

    async def send_chunk(self, data: bytes) -> None:
        if data:
            await self._send({"type": "http.response.body", "body": data, "more_body": True})

    def send_chunk_now(self, data: bytes) -> bool:
        return not data  # (the long way needs an await: `send_chunk`)

    def drop(self) -> None:
        self._transport().drop()

    async def reset(self) -> None:
        await self._transport().reset()

    @contextlib.asynccontextmanager
    async def corked(self) -> AsyncIterator[None]:
        if self._connection is None:
            yield
            return
        async with self._connection.corked():
            yield

    def _transport(self) -> executor.Connection:
        if self._connection is None:  # pragma: no cover - only when served without our transport
            raise RuntimeError("connection faults need openai_mock's transport")
        return self._connection


def _local(scope: Scope) -> str | None:
    """The address the connection arrived at."""
    server = scope.get("server")
    return server[0] if server else None


def _waits(plan: Plan) -> bool:
    """Whether answering `plan` takes time during which the client may leave."""
    return plan.stream or bool(plan.timing.latency_ms or plan.timing.jitter_ms) or plan.failure is not None


async def _read_body(receive: Receive, length: str | None, limit: int) -> bytes | None:
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


@contextlib.asynccontextmanager
async def _cancelled_on_disconnect(scope: Scope, receive: Receive) -> AsyncIterator[None]:
    """Run the block, cancelled if the client leaves first. Through our transport its
    `Connection` cancels it (no task: a task per stream waiting for "http.disconnect" cost a
    spawn and its wake-ups); otherwise a task waits for that message."""
    connection = scope.get("state", {}).get(CONNECTION)
    if connection is not None:
        try:
            with connection.cancel_when_over():
                yield
        finally:
            connection.unwatch()
        return
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
        yield
        nursery.cancel_scope.cancel()  # the disconnect watcher's work is done


async def _cancel_on_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return
