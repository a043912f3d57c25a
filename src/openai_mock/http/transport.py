"""Serving on hypercorn's trio server, with a hand on each client's socket.

ASGI has no way to say "reset this connection". So instead of `hypercorn.trio.serve` we run
hypercorn's own trio `TCPServer` over our listening socket, giving each connection's ASGI
scope a `Connection` (in `scope["state"]`) through which a request can drop its connection
(FIN, the chunked body never terminated) or reset it (TCP RST). HTTP parsing and framing are
hypercorn's (and h11's); our subclass of its `TCPServer` changes how bytes are written, how the
keep-alive timeout is kept and how a connection is closed (see `_TCPServer`), and the accept
loop is ours (`_accept`). docs/architecture.md says why, with the figures.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import logging
import math
import socket
import struct
import termios
import time
from collections.abc import AsyncIterator
from typing import Any

import h11
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, RawData
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

CONNECTION = "openai_mock.connection"
BACKLOG = 4096  # hypercorn's default (100) makes bursts of clients wait for SYN retries
LINGER_SECONDS = 2.0  # how long a closed connection still reads what its client sends
KEEP_ALIVE_TIMEOUT = 75.0  # seconds an idle keep-alive connection stays open (SDKs pool them)


class Connection:
    """One client TCP connection: the faults that happen below HTTP, and a short way for the
    chunks of a streamed body."""

    def __init__(self, server: _TCPServer, sock: socket.socket):
        self._server = server
        self._sock = sock  # the stdlib socket under hypercorn's trio stream: the same file descriptor

    async def send_chunk(self, data: bytes) -> None:
        """Send `data` as one chunk of a chunked HTTP/1.1 body, framed exactly as h11 frames it.
        Streams spend most of their time here, so the usual case is one non-blocking send()
        and nothing else; whatever does not fit at once (or fails) goes through hypercorn's own
        writer, with its lock and its handling of a client that has gone.
        Only valid between the response's headers and its end, on a chunked response."""
        if not data:
            return  # an empty chunk would end the body
        frame = b"%x\r\n%b\r\n" % (len(data), data)
        if not self._server.send_lock.locked():
            try:
                sent = self._sock.send(frame)
            except OSError:  # EAGAIN, or a broken connection: hypercorn's writer sorts it out
                sent = 0
            if sent == len(frame):
                return
            frame = frame[sent:]
        await self._server.protocol_send(RawData(data=frame))

    @contextlib.asynccontextmanager
    async def corked(self) -> AsyncIterator[None]:
        """Gather what is written inside into one send(): a whole response (head and body) then
        leaves in one write and reaches the client in one wake-up."""
        server = self._server
        if server.corked is not None:  # already corked: the outer block sends
            yield
            return
        server.corked = []
        try:
            yield
        finally:
            gathered, server.corked = server.corked, None
            await server._write(b"".join(gathered))

    def drop(self) -> None:
        """Close the connection where it stands: FIN, after whatever was already sent."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone

    async def reset(self) -> None:
        """Abort the connection with a TCP RST, once what was sent has left (an RST discards
        unsent data, and the client must see every chunk before the fault)."""
        with trio.move_on_after(0.2):
            while self._unsent() > 0:  # noqa: ASYNC110 - polling kernel state, no event to wait on
                await trio.sleep(0.002)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            return
        trio.lowlevel.notify_closing(self._sock)  # tasks waiting on it wake with ClosedResourceError
        self._sock.close()

    def _unsent(self) -> int:
        try:
            buf = fcntl.ioctl(self._sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        except OSError:
            return 0
        return struct.unpack("i", buf)[0]


class _TCPServer(TCPServer):
    """hypercorn's connection handler, plus: the `Connection` in each request's scope; writes
    straight to the socket (`_write`) and gathered while corked; one idle-timeout task per
    connection (`_IdleTimer`); and a lingering close (`_close_lingering`)."""

    def __init__(self, app: Any, config: HypercornConfig, context: WorkerContext, state: Any,
                 sock: socket.socket):
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        super().__init__(app, config, context, {**state, CONNECTION: Connection(self, sock)}, stream)
        self.idle_task = _IdleTimer(self, config.keep_alive_timeout)  # type: ignore[assignment]
        self._sock = sock
        self.corked: list[bytes] | None = None
        self._closing = False
        self._reading = trio.CancelScope()  # hypercorn's read_timeout is off: no deadline until closing

    async def protocol_send(self, event: Any) -> None:
        """What hypercorn writes, and its connection events. While corked (`Connection.corked`),
        bytes are gathered, to go out together; anything else first sends what was gathered."""
        if type(event) is RawData:
            if self.corked is not None:
                self.corked.append(event.data)
            else:
                await self._write(event.data)
            return
        if self.corked:
            gathered = b"".join(self.corked)
            self.corked.clear()
            await self._write(gathered)
        if type(event) is Closed and not self._closing:
            await self._close_lingering()
        else:
            await super().protocol_send(event)

    async def _write(self, data: bytes) -> None:
        """One non-blocking send() when nothing else is being written, as `Connection.send_chunk`
        does; only what does not fit at once (or a failed send) takes hypercorn's writer, with its
        lock and its handling of a client that has gone. (h11 asks for an empty write at the end
        of a body of known length: nothing to do.)"""
        if not data:
            return
        if not self.send_lock.locked():
            try:
                sent = self._sock.send(data)
            except OSError:
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        # Shielded: h11 has framed these bytes, so they must go out whole. The task writing may
        # already be cancelled: hypercorn tells the app that its exchange is over (an ASGI
        # "disconnect", on which quart-trio and our hot path cancel the request's task) before
        # it reports the connection's next state, and what was corked is only written then.
        with trio.CancelScope(shield=True):
            await super().protocol_send(RawData(data=data))

    async def _close_lingering(self) -> None:
        """Close the connection hypercorn is done with: after an answer to `Connection: close` or
        to HTTP/1.0, after an error, or after answering a request whose body it did not read (a
        413). It runs in the task that sent the answer, which may already be cancelled (see
        `_write`): the FIN is shielded, else nothing would ever close the connection.
        If the client has sent its last request whole and nothing after it, the socket closes at
        once. Otherwise closing it with unread data in it would send an RST, and a client that
        has not yet read the answer would lose it (the SDK then sees a dropped connection instead
        of a 413, and retries): so after the FIN, keep reading (and discarding) until the client
        closes or LINGER_SECONDS pass, then close."""
        self._closing = True
        with trio.CancelScope(shield=True):
            async with self.send_lock:  # after anything hypercorn's writer still has to send
                try:
                    await self.stream.send_eof()
                except (trio.BrokenResourceError, trio.BusyResourceError, trio.ClosedResourceError):
                    pass
        if self._nothing_unread():
            self._reading.cancel()  # the read loop ends, and `run` closes the socket
        else:
            self._reading.deadline = trio.current_time() + LINGER_SECONDS
        await self.protocol.handle(Closed())

    def _nothing_unread(self) -> bool:
        """Whether the client's last request was read whole and nothing came after it: h11 says
        the client may send nothing more (its request said `Connection: close`, or was HTTP/1.0,
        or our answer did), and neither h11's buffer nor the kernel's holds a byte."""
        connection = getattr(self.protocol.protocol, "connection", None)
        if not isinstance(connection, h11.Connection) or connection.their_state is not h11.MUST_CLOSE:
            return False
        if connection.trailing_data[0]:
            return False
        if self._sock.fileno() < 0:  # already closed (a `reset` fault)
            return True
        try:
            buf = fcntl.ioctl(self._sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return False
        return struct.unpack("i", buf)[0] == 0

    async def _read_data(self) -> None:
        """hypercorn's read loop, but what comes after we closed is discarded (see above)."""
        with self._reading:
            while True:
                try:
                    data = await self.stream.receive_some(MAX_RECV)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    break
                if self._closing:
                    if not data:
                        break
                    continue
                await self.protocol.handle(RawData(bytes(data)))
                if not data:
                    break
        await self.protocol.handle(Closed())
        self.idle_task.finish()  # the client has closed: nothing to wait for


class _IdleTimer:
    """hypercorn's keep-alive timeout (close a connection idle for `timeout` seconds between
    requests), as one task per connection whose deadline moves. hypercorn's own starts a new
    task each time the connection turns idle and cancels it when a request comes, a good part
    of the scheduling work of a short request; and a connection the client closed while idle
    stayed open on our side (CLOSE-WAIT) until the timeout ran out."""

    def __init__(self, server: TCPServer, timeout: float):
        self._server = server
        self._timeout = timeout
        self._scope = trio.CancelScope(deadline=math.inf)
        self._started = False
        self._finished = False

    async def restart(self, task_group: Any, action: Any) -> None:
        """The connection is idle: close it after the timeout (hypercorn's TrioSingleTask API)."""
        self._scope.deadline = trio.current_time() + self._timeout
        if not self._started:
            self._started = True
            task_group._nursery.start_soon(self._watch)

    async def stop(self) -> None:
        """A request came: no timeout while it is answered."""
        self._scope.deadline = math.inf

    def finish(self) -> None:
        self._finished = True
        self._scope.cancel()

    async def _watch(self) -> None:
        with self._scope:
            await trio.sleep_forever()
        if not self._finished:  # idle for too long: hypercorn's way of closing
            with trio.CancelScope(shield=True):
                await self._server._initiate_server_close()


def listen(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free port. Raises OSError (e.g. EADDRINUSE)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class _Config(HypercornConfig):
    """hypercorn's configuration, with the `date` header formatted once a second, not per answer."""

    _made: tuple[int, str, list[tuple[bytes, bytes]]] = (-1, "", [])

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        now = int(time.time())
        second, made_for, headers = self._made
        if now != second or protocol != made_for:
            headers = super().response_headers(protocol)
            self._made = (now, protocol, headers)
        return list(headers)


def hypercorn_config(errors: logging.Logger | None = None) -> HypercornConfig:
    config = _Config()
    config.backlog = BACKLOG
    config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT
    config.graceful_timeout = 1
    config.accesslog = None  # our own request log (-v) replaces it
    config.errorlog = errors if errors is not None else "-"  # real errors stay visible
    config.loglevel = "WARNING"
    config.include_server_header = False
    return config


async def serve(app: Any, sock: socket.socket, *, errors: logging.Logger | None = None,
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the ASGI `app` on the listening `sock` until cancelled; the socket is closed on exit."""
    config = hypercorn_config(errors)
    wrapped = wrap_app(app, config.wsgi_max_body_size, None)
    try:
        async with trio.open_nursery() as nursery:
            lifespan = Lifespan(wrapped, config, {})
            await nursery.start(lifespan.handle_lifespan)
            await lifespan.wait_for_startup()
            context, state = WorkerContext(None), ConnectionState({})

            async def connection(client: socket.socket) -> None:
                await _TCPServer(wrapped, config, context, state, client).run()

            nursery.start_soon(_accept, sock, connection, nursery)
            task_status.started()
    finally:
        trio.lowlevel.notify_closing(sock)
        sock.close()


# accept() errors that mean "out of resources for now": wait, then try again
_SCARCE = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
ACCEPT_BATCH = 512  # connections taken from the kernel's queue per pass of the event loop
START_BUDGET = 8  # runnable tasks below which new connections are started, per pass
START_LEAST = 4  # connections started per pass however busy the loop is


async def _accept(sock: socket.socket, handler: Any, nursery: trio.Nursery) -> None:
    """Take every waiting connection from the kernel at each pass, but start only as many as
    the event loop has room for. trio's `serve_listeners` takes one connection per pass: with
    thousands of streams running, the kernel's queue overflowed and clients waited seconds for
    their SYN retries. Starting every accepted connection at once instead made one pass run
    hundreds of requests' first steps back to back, while every stream waiting for its next
    chunk waited for the whole pass (hundreds of milliseconds late). So connections wait here,
    already accepted, and each pass starts `START_BUDGET` minus the tasks already runnable, and
    at least `START_LEAST`: more when the server is idle, a few when it is busy."""
    waiting: collections.deque[socket.socket] = collections.deque()
    try:
        while True:
            if not waiting:
                await trio.lowlevel.wait_readable(sock)
            for _ in range(ACCEPT_BATCH):
                try:
                    client, _ = sock.accept()
                except BlockingIOError:
                    break
                except OSError as error:
                    if error.errno in _SCARCE:
                        await trio.sleep(0.05)
                    break
                waiting.append(client)
            runnable = trio.lowlevel.current_statistics().tasks_runnable
            for _ in range(min(len(waiting), max(START_LEAST, START_BUDGET - runnable))):
                nursery.start_soon(handler, waiting.popleft())
            await trio.lowlevel.checkpoint()
    finally:
        for client in waiting:
            client.close()


def describe_bind_error(error: OSError, host: str, port: int) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"cannot listen on {host}:{port}: the port is in use (try --port 0 for a free one)"
    return f"cannot listen on {host}:{port}: {error.strerror or error}"
