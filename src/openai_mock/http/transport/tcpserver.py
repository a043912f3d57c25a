"""hypercorn's trio connection handler, changed where it costs or loses answers: how bytes are
written, how the keep-alive timeout is kept, how a connection is closed, closing an idle one
at once when the server has no descriptor left (`shed`, called by the accept loop), and that it
speaks HTTP/1 only (no switch to HTTP/2 over cleartext).

Its own module because it is the one place that subclasses hypercorn's private `TCPServer`.
What it relies on, all checked by name and signature in tests/test_transport_contract.py:
- `TCPServer.__init__(app, config, context, state, stream)` and `run()`, which calls
  `self._read_data()` (replaced: the lingering close, reading the socket itself), passes
  `self.protocol_send` to the protocol (replaced: direct and corked writes, the lingering close)
  and calls `self.idle_task.restart(self._task_group, action)` and `.stop()` (replaced:
  `IdleTimer`);
- `TCPServer.protocol_send` itself (its writer, with its lock and its handling of a client
  that has gone), `send_lock` (held while that writer writes), `protocol` (`handle(event)`,
  and `protocol.protocol.connection`, the h11 connection of an HTTP/1 client) and `MAX_RECV`;
- the task group's `spawn` and the events `RawData` and `Closed` (hypercorn's own interfaces);
- `H11Protocol._check_protocol(event)`, which `HTTP1Only` replaces, called by the protocol for
  each request, and `ProtocolWrapper.protocol`, the `H11Protocol` that becomes an `HTTP1Only`.
"""

from __future__ import annotations

import json
import socket
import termios
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import trio
from hypercorn.config import Config
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol.events import EndBody
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
from hypercorn.trio import tcp_server
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, LifespanState, TaskGroup

from .connection import CONNECTION, Connection, queued
from .descriptors import IdleConnections

LINGER_SECONDS = 2.0  # how long a closed connection still reads what its client sends
KEEP_ALIVE_TIMEOUT = 75.0  # seconds an idle keep-alive connection stays open (SDKs pool them)
DIRECT_WRITE = 1024 * 1024  # bytes written straight to the socket at most; longer writes go through hypercorn's writer


class TCPServer(tcp_server.TCPServer):
    """hypercorn's connection handler, plus: the `Connection` in each request's scope; writes
    straight to the socket (`write`) and gathered while corked; its keep-alive timeout kept in
    `idle`, the server's list of idle connections (`IdleTimer`; `expire` when it runs out);
    a lingering close (`_close_lingering`); and `shed`, closing an idle connection at once."""

    def __init__(self, app: AppWrapper, config: Config, context: WorkerContext, state: LifespanState,
                 sock: socket.socket, idle: IdleConnections):
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        # hypercorn annotates `stream` as an SSLStream, but `run` serves a plain one as well
        self._connection = Connection(self, sock)
        super().__init__(app, config, context, {**state, CONNECTION: self._connection},
                         stream)  # type: ignore[arg-type]
        self._idle = IdleTimer(self, KEEP_ALIVE_TIMEOUT, idle)
        # hypercorn only calls `restart` and `stop` on it, which `IdleTimer` has
        self.idle_task = self._idle  # type: ignore[assignment]
        self._stream = stream  # the same object as hypercorn's `self.stream`, with its real type
        self._sock = sock
        self.corked: list[bytes] | None = None
        self._closing = False
        self._reading = trio.CancelScope()  # hypercorn's read_timeout is off: no deadline until closing

    async def run(self) -> None:
        """hypercorn's, then the references that tie this connection's objects in loops are cut
        (`_untie`), so that they are freed at once, by reference counting."""
        try:
            await super().run()
        finally:
            self._untie()

    def _untie(self) -> None:
        """Cut the loops of references between the objects of a connection that has ended:
        hypercorn's protocol holds this server's `protocol_send`, its `IdleTimer` and the
        `Connection` of its requests hold the server. Left to the garbage collector, thousands
        of ended connections (some 30 objects each) were collected in one pass, and that pass
        stalled every stream: up to 210 ms at 10,000 streams opened at 1,000/s. (Whichever way the
        connection ended: a client that resets at once ends `run` before hypercorn has made
        its protocol.)"""
        self._idle.finish()  # (off the server's list of idle connections, however it ended)
        for name in ("protocol", "idle_task", "_idle", "_connection"):
            self.__dict__.pop(name, None)
        self.state = {}  # (holds the `Connection` too)

    async def protocol_send(self, event: Event) -> None:
        """What hypercorn writes, and its connection events. While corked (`Connection.corked`),
        bytes are gathered, to go out together; anything else first sends what was gathered."""
        if type(event) is RawData:
            if self.corked is not None:
                self.corked.append(event.data)
            else:
                await self.write(event.data)
            return
        if self.corked:
            gathered = b"".join(self.corked)
            self.corked.clear()
            await self.write(gathered)
        if type(event) is Closed and not self._closing:
            await self._close_lingering()
        else:
            await super().protocol_send(event)

    async def write(self, data: bytes) -> None:
        """One non-blocking send() when nothing else is being written, as `Connection.send_chunk`
        does; only what does not fit at once (or a failed send) takes hypercorn's writer, with its
        lock and its handling of a client that has gone. (h11 asks for an empty write at the end
        of a body of known length: nothing to do.)"""
        if not data:
            return
        if not self.send_lock.locked() and len(data) <= DIRECT_WRITE:  # (the rest of a long one would be a copy)
            try:
                sent = self._sock.send(data)
            except OSError:
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        # Shielded: h11 has framed these bytes, so they must go out whole. The task writing may
        # already be cancelled: hypercorn tells the app that its exchange is over (an ASGI
        # "disconnect", on which quart-trio and our router cancel the request's task) before
        # it reports the connection's next state, and what was corked is only written then.
        with trio.CancelScope(shield=True):
            await super().protocol_send(RawData(data=data))

    async def _close_lingering(self) -> None:
        """Close the connection hypercorn is done with: after an answer to `Connection: close` or
        to HTTP/1.0, after an error, or after answering a request whose body it did not read (a
        413). It runs in the task that sent the answer, which may already be cancelled (see
        `write`): the FIN is shielded, else nothing would ever close the connection.
        If the client has sent its last request whole and nothing after it, the socket closes at
        once. Otherwise closing it with unread data in it would send an RST, and a client that
        has not yet read the answer would lose it (the SDK then sees a dropped connection instead
        of a 413, and retries): so after the FIN, keep reading (and discarding) until the client
        closes or LINGER_SECONDS pass, then close."""
        self._closing = True
        with trio.CancelScope(shield=True):
            async with self.send_lock:  # after anything hypercorn's writer still has to send
                try:
                    await self._stream.send_eof()
                except (trio.BrokenResourceError, trio.BusyResourceError, trio.ClosedResourceError):
                    pass
        if self._nothing_unread():
            self._reading.cancel()  # the read loop ends, and `run` closes the socket
        else:
            self._reading.deadline = trio.current_time() + LINGER_SECONDS
        await self._closed()

    def _nothing_unread(self) -> bool:
        """Whether the client's last request was read whole and nothing came after it: h11 says
        the client may send nothing more (its request said `Connection: close`, or was HTTP/1.0,
        or our answer did), and neither h11's buffer nor the kernel's holds a byte."""
        connection = getattr(self.protocol.protocol, "connection", None)  # None: HTTP/2
        if not isinstance(connection, h11.Connection) or connection.their_state is not h11.MUST_CLOSE:
            return False
        if connection.trailing_data[0]:
            return False
        if self._sock.fileno() < 0:  # already closed (a `reset` fault)
            return True
        return queued(self._sock, termios.FIONREAD) == 0

    async def _closed(self) -> None:
        """Tell the protocol that the connection is closing (hypercorn then tells the app of a
        request in progress: "http.disconnect"), then the request's `Connection`
        (`Connection.cancel_when_over`: the router's way to learn it without a task). In that
        order: the task closing may be the request's own, and hypercorn's bookkeeping of the
        closed exchange must not be cut by the cancellation."""
        try:
            await self.protocol.handle(Closed())
        finally:
            self._connection.over()

    async def _read_data(self) -> None:
        """hypercorn's read loop, but what comes after we closed is discarded (see above), and
        the connection speaks HTTP/1 only (`HTTP1Only`)."""
        if type(self.protocol.protocol) is H11Protocol:
            self.protocol.protocol.__class__ = HTTP1Only  # (the same object: it only adds a check)
        with self._reading:
            while True:
                try:
                    data = await self._receive()
                except (OSError, trio.ClosedResourceError):  # (a reset, or closed here: `reset`, `shed`)
                    break
                if self._closing:
                    if not data:
                        break
                    continue
                try:
                    await self.protocol.handle(RawData(bytes(data)))
                except HTTP2Refused:
                    await self._refuse_http2()
                    continue
                if not data:
                    break
        await self._closed()
        self._idle.finish()  # the client has closed: nothing to wait for

    async def _receive(self) -> bytes:
        """What the client sent (b"" when it has closed): the stream's `receive_some`, but with no
        checkpoint between taking the bytes from the kernel and returning them, so that they are
        always either in the kernel's queue or, once handled, in h11's state: `shed` looks at
        both, and never closes a connection whose request is on its way in."""
        await trio.lowlevel.checkpoint()
        while True:
            try:
                return self._sock.recv(tcp_server.MAX_RECV)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._sock)

    def shed(self) -> bool:
        """Close this connection at once, idle between requests, to free its descriptor (the
        server has none left to accept with; `descriptors.py`): a FIN, as the keep-alive timeout
        gives. Not if a request has begun to arrive (in h11's buffer or the kernel's): whether
        it was closed. The read loop then ends, and the connection with it."""
        if self._closing or self._sock.fileno() < 0:
            return False
        connection = getattr(self.protocol.protocol, "connection", None)  # None: HTTP/2
        if isinstance(connection, h11.Connection) and (
                connection.their_state is not h11.IDLE or connection.trailing_data[0]):
            return False
        if queued(self._sock, termios.FIONREAD) != 0:
            return False
        self._closing = True
        trio.lowlevel.notify_closing(self._sock)  # the read loop wakes with ClosedResourceError
        self._sock.close()
        return True

    async def _refuse_http2(self) -> None:
        """Answer an HTTP/2 connection preface with HTTP/1.1's 505, then close (lingering: the
        client's first frames are unread)."""
        body = HTTP2_REFUSAL
        head = [b"HTTP/1.1 505 HTTP Version Not Supported", b"content-type: application/json",
                b"content-length: %d" % len(body), b"connection: close"]
        head += [name + b": " + value for name, value in self.config.response_headers("h11")]
        await self.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await self._close_lingering()

    def expire(self) -> None:
        """Idle past the keep-alive timeout (`descriptors.IdleConnections.run` says so): close
        the connection, in a task of its own (of the connection's task group)."""
        if not self._closing and self._sock.fileno() >= 0:
            self._task_group.spawn(self.close_idle)

    async def close_idle(self) -> None:
        """Close a connection idle for too long, as hypercorn's own timeout does: the protocol
        learns that the connection is closed, then the socket is."""
        with trio.CancelScope(shield=True):
            await self._closed()
            await self._stream.aclose()


# the answer to HTTP/2's preface: an OpenAI error, though an HTTP/2 client will not read it
HTTP2_REFUSAL = json.dumps({"error": {
    "message": "openai-mock serves HTTP/1.1 only, not HTTP/2 over cleartext (h2c): send HTTP/1.1, as the "
               "OpenAI SDKs and httpx do by default (no http2=True, no --http2-prior-knowledge).",
    "type": "invalid_request_error", "param": None, "code": "http_version_not_supported"}}, separators=(",", ":")).encode()


class HTTP2Refused(Exception):
    """A connection opened with HTTP/2's preface (`PRI * HTTP/2.0`, "prior knowledge")."""


class HTTP1Only(H11Protocol):
    """hypercorn's HTTP/1 protocol, without its switches to HTTP/2 over cleartext: an
    `Upgrade: h2c` request is answered over HTTP/1.1 as if it had no `Upgrade` header (HTTP lets
    a server ignore an upgrade; hypercorn itself does so for a request with a body), and a
    connection that starts with HTTP/2's preface is refused (`HTTP2Refused`, answered by
    `TCPServer._refuse_http2`).
    hypercorn's switch was to its own HTTP/2 protocol, where the transport's `Connection`
    cannot reach the connection (a fault would cut every stream of it) and streams go the long
    way; the SDKs speak HTTP/1.1 (httpx's default), so HTTP/2 is not served at all.
    It replaces `_check_protocol` and adds to `stream_send`, both checked in
    tests/test_transport_contract.py."""

    async def _check_protocol(self, event: h11.Request) -> None:
        if event.method == b"PRI" and event.target == b"*" and event.http_version == b"2.0":
            raise HTTP2Refused()

    async def stream_send(self, event: StreamEvent) -> None:
        """As hypercorn's, and: when hypercorn answers a WebSocket handshake itself with an error
        (a handshake that is not valid, or data sent before the router's answer), its answer
        says `Connection: close` but nothing would close the connection (the stream never
        ends): close it, as after any answer that says so. (The router's own refusal ends its
        stream, and the connection closes then.)"""
        await super().stream_send(event)
        if type(event) is EndBody and isinstance(self.stream, WSStream) \
                and self.stream.state is ASGIWebsocketState.HANDSHAKE:
            self.task_group.spawn(self._close_refused, self.stream)

    async def _close_refused(self, stream: WSStream) -> None:
        """Close once hypercorn has marked the stream closed (right after its answer, with no
        pause between; closing at once would let the router answer in between, on a connection
        h11 has closed, an error that takes the whole server down), unless it ended meanwhile."""
        await trio.lowlevel.checkpoint()
        if self.stream is stream and stream.closed:
            await self.send(Closed())


class IdleTimer:
    """hypercorn's keep-alive timeout (close a connection idle for `timeout` seconds between
    requests), kept in the server's list of idle connections (`descriptors.IdleConnections`),
    whose one task closes those idle too long. hypercorn's own started a task each time the
    connection turned idle and cancelled it when a request came: a good part of the scheduling
    work of a short request. (And a connection the client closed while idle stayed open on our
    side, CLOSE-WAIT, until the timeout ran out: `finish`.)
    It stands in for hypercorn's `TrioSingleTask`: the same `restart` and `stop`."""

    def __init__(self, server: TCPServer, timeout: float, idle: IdleConnections):
        self._server = server
        self._idle = idle
        self._timeout = timeout

    async def restart(self, task_group: TaskGroup, action: Callable[..., Awaitable[Any]]) -> None:
        """The connection is idle: close it after the timeout. (`action` is hypercorn's own
        timeout, which this replaces.)"""
        self._idle.add(self._server, trio.current_time() + self._timeout)

    async def stop(self) -> None:
        """A request came: no timeout while it is answered."""
        self._idle.discard(self._server)

    def finish(self) -> None:
        """The connection has ended."""
        self._idle.discard(self._server)
