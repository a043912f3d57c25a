"""Serving on hypercorn's trio server, with a hand on each client's socket.

ASGI has no way to say "reset this connection". So instead of `hypercorn.trio.serve` we run
hypercorn's own trio `TCPServer` over our listening socket, giving each connection's ASGI
scope a `Connection` (in `scope["state"]`) through which a request can drop its connection
(FIN, the chunked body never terminated) or reset it (TCP RST). Everything else, HTTP
parsing and framing included, is hypercorn's.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import socket
import struct
import termios
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

CONNECTION = "openai_mock.connection"
BACKLOG = 4096  # hypercorn's default (100) makes bursts of clients wait for SYN retries


class Connection:
    """One client TCP connection, for the faults that happen below HTTP."""

    def __init__(self, sock: trio.socket.SocketType):
        self._sock = sock

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
        self._sock.close()  # trio wakes any task waiting on it with ClosedResourceError

    def _unsent(self) -> int:
        try:
            buf = fcntl.ioctl(self._sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        except OSError:
            return 0
        return struct.unpack("i", buf)[0]


class _TCPServer(TCPServer):
    def __init__(self, app: Any, config: HypercornConfig, context: WorkerContext, state: Any,
                 stream: trio.SocketStream):
        super().__init__(app, config, context, {**state, CONNECTION: Connection(stream.socket)}, stream)


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


def hypercorn_config(errors: logging.Logger | None = None) -> HypercornConfig:
    config = HypercornConfig()
    config.backlog = BACKLOG
    config.keep_alive_timeout = 75  # SDK clients keep connections in pools
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
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    try:
        async with trio.open_nursery() as nursery:
            lifespan = Lifespan(wrapped, config, {})
            await nursery.start(lifespan.handle_lifespan)
            await lifespan.wait_for_startup()
            handler = partial(_TCPServer, wrapped, config, WorkerContext(None), ConnectionState({}))
            await nursery.start(partial(trio.serve_listeners, handler, [listener], handler_nursery=nursery))
            task_status.started()
    finally:
        with trio.CancelScope(shield=True):
            await listener.aclose()


def describe_bind_error(error: OSError, host: str, port: int) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"cannot listen on {host}:{port}: the port is in use (try --port 0 for a free one)"
    return f"cannot listen on {host}:{port}: {error.strerror or error}"
