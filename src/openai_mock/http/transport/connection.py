"""The connection a request sees: what it can do to its client's TCP connection from inside ASGI.

Its own module because it is the transport's interface to the rest of the project (the
executor uses `drop`, `reset`, `send_chunk` and `corked`, the router finds it under
`CONNECTION` in the scope's state); how the server behind it works is `tcpserver.py`'s.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
import termios
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import trio
from hypercorn.events import RawData

if TYPE_CHECKING:
    from .tcpserver import TCPServer

CONNECTION = "openai_mock.connection"  # the key of the `Connection` in an ASGI scope's "state"
DIRECT_WRITE = 1024 * 1024  # bytes of a chunk framed and sent at once, at most


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked HTTP/1.1 body, exactly as h11 frames it
    (tests/test_transport_contract.py compares the two)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


class Connection:
    """One client TCP connection: the faults that happen below HTTP, and a short way for the
    chunks of a streamed body."""

    def __init__(self, server: TCPServer, sock: socket.socket):
        self._server = server
        self._sock = sock  # the stdlib socket under hypercorn's trio stream: the same file descriptor
        self._rest: bytes | None = None  # what `send_chunk_now` could not send of its chunk
        self._watch: trio.CancelScope | None = None  # the request's, cancelled when the exchange ends
        self._over = False  # the exchange has ended: the client has gone, or the connection closes

    def cancel_when_over(self) -> trio.CancelScope:
        """A cancel scope for the current request, cancelled when its exchange ends before it
        does: the client closes or resets the connection, or the server closes it. (What an ASGI
        app learns from its "http.disconnect" message, without a task waiting for it: the
        transport calls `over()` where it tells hypercorn that the connection is closing, and
        hypercorn sends that message.) Enter it once; call `unwatch()` when the request is done."""
        scope = trio.CancelScope()
        if self._over:
            scope.cancel()
        self._watch = scope
        return scope

    def unwatch(self) -> None:
        self._watch = None

    def over(self) -> None:
        """The exchange in progress has ended (see `cancel_when_over`)."""
        self._over = True
        if self._watch is not None:
            self._watch.cancel()

    def send_chunk_now(self, data: bytes) -> bool:
        """Send `data` as one chunk with one non-blocking send(), if nothing else is being
        written: True when it went out whole. Otherwise False, and `send_chunk(data)` must be
        awaited next: it sends the chunk, or what is left of it. (No await: the shared timer
        calls this from its own task, see timers.py.)"""
        if not data or self._server.send_lock.locked():
            return not data
        frame = chunk(data)
        try:
            sent = self._sock.send(frame)
        except OSError:  # EAGAIN, or a broken connection: nothing was sent
            return False
        if sent == len(frame):
            return True
        self._rest = frame[sent:]
        return False

    async def send_chunk(self, data: bytes) -> None:
        """Send `data` as one chunk of a chunked HTTP/1.1 body, framed exactly as h11 frames it.
        Streams spend most of their time here, so the usual case is one non-blocking send()
        and nothing else; whatever does not fit at once (or fails) goes through hypercorn's own
        writer, with its lock and its handling of a client that has gone.
        Only valid between the response's headers and its end, on a chunked response."""
        if self._rest is not None:  # (after `send_chunk_now`, which sent part of this chunk)
            rest, self._rest = self._rest, None
            await self._server.protocol_send(RawData(data=rest))
            return
        if not data:
            return  # an empty chunk would end the body
        if len(data) > DIRECT_WRITE:  # (a long one is not copied into its framing: three writes)
            for part in (b"%x\r\n" % len(data), data, b"\r\n"):
                await self._server.protocol_send(RawData(data=part))
            return
        frame = chunk(data)
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
        leaves in one write and reaches the client in one wake-up. (`send_chunk` writes straight
        to the socket: only what hypercorn writes is gathered.)"""
        server = self._server
        if server.corked is not None:  # already corked: the outer block sends
            yield
            return
        server.corked = []
        try:
            yield
        finally:
            gathered, server.corked = server.corked, None
            await server.write(b"".join(gathered))

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
        return queued(self._sock, termios.TIOCOUTQ) or 0


def queued(sock: socket.socket, request: int) -> int | None:
    """Bytes in one of the socket's kernel queues: `termios.TIOCOUTQ` (written, not yet sent)
    or `termios.FIONREAD` (received, not yet read); None if the kernel cannot say (closed)."""
    try:
        buf = fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0")
    except OSError:
        return None
    count: int = struct.unpack("i", buf)[0]
    return count
