"""The listening socket, and serving an ASGI app on it: hypercorn's configuration and lifespan,
then our accept loop, which hands each connection to `tcpserver.TCPServer`.

Its own module because it replaces `hypercorn.trio.serve`, a different job from handling one
connection: it decides how many connections wait and how fast they start. Of hypercorn it uses
the configuration (`Config`, and `response_headers`, which its HTTP/1 protocol calls for each
answer), `wrap_app`, `Lifespan` and `WorkerContext`: checked in tests/test_transport_contract.py.
hypercorn's settings for its own serve (`backlog`, `graceful_timeout`, ...) mean nothing here:
the backlog is `BACKLOG`, and cancelling `serve` closes every connection at once.
"""

from __future__ import annotations

import collections
import errno
import logging
import socket
import time
from collections.abc import Awaitable, Callable

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import wrap_app

from .descriptors import IdleConnections, raise_limit
from .tcpserver import TCPServer

BACKLOG = 4096  # hypercorn's default (100) makes bursts of clients wait for SYN retries


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


def describe_bind_error(error: OSError, host: str, port: int) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"cannot listen on {host}:{port}: the port is in use (try --port 0 for a free one)"
    return f"cannot listen on {host}:{port}: {error.strerror or error}"


class _Config(Config):
    """hypercorn's configuration, with the `date` header formatted once a second, not per answer."""

    _made: tuple[int, str, list[tuple[bytes, bytes]]] = (-1, "", [])

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        now = int(time.time())
        second, made_for, headers = self._made
        if now != second or protocol != made_for:
            headers = super().response_headers(protocol)
            self._made = (now, protocol, headers)
        return list(headers)


def hypercorn_config(errors: logging.Logger | None = None) -> Config:
    """Only what hypercorn reads while it handles connections: its logs and its headers. (The
    keep-alive timeout is `tcpserver.KEEP_ALIVE_TIMEOUT`, kept by our own timer.)"""
    config = _Config()
    config.accesslog = None  # our own request log (-v) replaces it
    config.errorlog = errors if errors is not None else "-"  # real errors stay visible
    config.loglevel = "WARNING"
    config.include_server_header = False
    return config


async def serve(app: Callable[..., Awaitable[None]], sock: socket.socket, *, errors: logging.Logger | None = None,
                shared: bool = False, notice: Callable[[str], None] | None = None,
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the ASGI `app` (called with scope, receive, send) on the listening `sock` until
    cancelled; the socket is closed on exit. `shared`: other processes accept on the same
    socket (`serve --workers`). `notice` takes what the -v log says about descriptors: the
    soft limit raised at start (`descriptors.raise_limit`), idle connections closed for want
    of one."""
    raised = raise_limit()
    if notice is not None:
        notice(raised)
    idle = IdleConnections(notice)
    config = hypercorn_config(errors)
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    try:
        async with trio.open_nursery() as nursery:
            lifespan = Lifespan(wrapped, config, {})
            await nursery.start(lifespan.handle_lifespan)
            await lifespan.wait_for_startup()
            context, state = WorkerContext(None), ConnectionState({})

            async def connection(client: socket.socket) -> None:
                await TCPServer(wrapped, config, context, state, client, idle).run()

            nursery.start_soon(idle.run)  # (the keep-alive timeout of every connection)
            nursery.start_soon(_accept, sock, _guarded(connection, errors), nursery, idle, shared)
            task_status.started()
    finally:
        trio.lowlevel.notify_closing(sock)
        sock.close()


def _guarded(handler: Callable[[socket.socket], Awaitable[None]],
             errors: logging.Logger | None) -> Callable[[socket.socket], Awaitable[None]]:
    """`handler`, but an error escaping one connection ends that connection only (logged with
    what raised it: a bug of ours), never the nursery of every connection, the server with it."""
    log = errors if errors is not None else logging.getLogger("openai_mock")

    async def guarded(client: socket.socket) -> None:
        try:
            await handler(client)
        except Exception:
            log.exception("openai-mock: a connection ended on an internal error; the server goes on")
            if client.fileno() >= 0:
                trio.lowlevel.notify_closing(client)
                client.close()

    return guarded


# accept() errors that mean "out of resources for now": wait, then try again; for want of a
# descriptor, first close an idle connection to free one
_SCARCE = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_NO_DESCRIPTOR = {errno.EMFILE, errno.ENFILE}
ACCEPT_BATCH = 512  # connections taken from the kernel's queue per pass of the event loop
START_BUDGET = 8  # runnable tasks below which new connections are started, per pass
START_LEAST = 4  # connections started per pass however busy the loop is


def runnable_counter() -> Callable[[], int]:
    """A function that returns how many tasks are runnable in the current trio run, as
    `trio.lowlevel.current_statistics().tasks_runnable` does. That one also counts the tasks
    waiting for I/O, by looking at every registered socket: with 10,000 open streams each call
    took about 0.3 ms, and the accept loop asks twice per pass of the event loop (a tenth of
    the server's CPU). So this reads the length of trio's run queue itself (a private part of
    trio, checked by tests/test_transport_contract.py), and falls back on the public call."""
    try:
        queue = trio._core._run.GLOBAL_RUN_CONTEXT.runner.runq
    except AttributeError:
        return lambda: trio.lowlevel.current_statistics().tasks_runnable
    return queue.__len__


async def _accept(sock: socket.socket, handler: Callable[[socket.socket], Awaitable[None]],
                  nursery: trio.Nursery, idle: IdleConnections, shared: bool = False) -> None:
    """Take every waiting connection from the kernel at each pass, but start only as many as
    the event loop has room for. trio's `serve_listeners` takes one connection per pass: with
    thousands of streams running, the kernel's queue overflowed and clients waited seconds for
    their SYN retries. Starting every accepted connection at once instead made one pass run
    hundreds of requests' first steps back to back, while every stream waiting for its next
    chunk waited for the whole pass (hundreds of milliseconds late). So connections wait here,
    already accepted, and each pass starts `START_BUDGET` minus the tasks already runnable, and
    at least `START_LEAST`: more when the server is idle, a few when it is busy.

    On a socket `shared` with other workers, a worker takes only what it starts at once: what it
    would keep waiting here is better left in the kernel's queue for a worker with room (one
    busy worker took most of a burst).

    When accept() fails for want of a descriptor, the connection idle the longest is closed and
    accept() tried again at once, one for one (`IdleConnections.shed`): else the new client
    waited in the kernel's queue until the keep-alive timeout freed a descriptor. Only with no
    idle connection left does the loop wait (50 ms) and try again."""
    runnable = runnable_counter()
    waiting: collections.deque[socket.socket] = collections.deque()
    try:
        while True:
            if not waiting:
                await trio.lowlevel.wait_readable(sock)
            room = max(START_LEAST, START_BUDGET - runnable())
            for _ in range(ACCEPT_BATCH if not shared else room - len(waiting)):
                try:
                    client, _ = sock.accept()
                except BlockingIOError:
                    break
                except OSError as error:
                    if error.errno in _NO_DESCRIPTOR and idle.shed():
                        continue
                    if error.errno in _SCARCE:
                        await trio.sleep(0.05)
                    break
                waiting.append(client)
            for _ in range(min(len(waiting), max(START_LEAST, START_BUDGET - runnable()))):
                nursery.start_soon(handler, waiting.popleft())
            await trio.lowlevel.checkpoint()
    finally:
        for client in waiting:
            client.close()
