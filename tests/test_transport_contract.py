"""What the transport (src/openai_mock/http/transport/) uses of hypercorn's insides and of h11,
checked on the installed versions by name, signature and behaviour.

The transport subclasses hypercorn's private trio `TCPServer` and stands in for parts of it. A
rename upstream would not raise: hypercorn would call its own method instead of ours, and the
server would quietly lose the keep-alive timeout, the lingering close or the direct write path.
hypercorn is pinned below its next minor release in pyproject.toml; before raising the pin, run
this file against the new version: every difference is reported by name.
"""

from __future__ import annotations

import collections
import importlib
import inspect
import logging
import socket
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import h11
import trio

from openai_mock.http.transport import connection, listener, tcpserver
from openai_mock.http.transport.descriptors import IdleConnections

GONE = object()

# Callables: where (module:qualified name), the parameters it must take ("name=" has a
# default), whether it is a coroutine function, and what the transport does with it.
CALLABLES: list[tuple[str, str, bool, str]] = [
    ("hypercorn.trio.tcp_server:TCPServer.__init__", "(self, app, config, context, state, stream)", False,
     "tcpserver.TCPServer passes its arguments on"),
    ("hypercorn.trio.tcp_server:TCPServer.run", "(self)", True, "serves each connection"),
    ("hypercorn.trio.tcp_server:TCPServer.protocol_send", "(self, event)", True,
     "overridden (direct and corked writes, the lingering close); its writer takes what does not fit"),
    ("hypercorn.trio.tcp_server:TCPServer._read_data", "(self)", True, "overridden: the lingering close"),
    ("hypercorn.trio.worker_context:TrioSingleTask.restart", "(self, task_group, action)", True,
     "tcpserver.IdleTimer stands in for it as `idle_task`"),
    ("hypercorn.trio.worker_context:TrioSingleTask.stop", "(self)", True, "tcpserver.IdleTimer stands in for it"),
    ("hypercorn.trio.task_group:TaskGroup.spawn", "(self, func, *args)", False, "TCPServer.expire starts its close of an idle connection"),
    ("hypercorn.protocol:ProtocolWrapper.handle", "(self, event)", True, "the connection's events (Closed, data)"),
    ("hypercorn.protocol.h11:H11Protocol._check_protocol", "(self, event)", True,
     "tcpserver.HTTP1Only replaces it: no switch to HTTP/2 (h2c)"),
    ("hypercorn.protocol.h11:H11Protocol.stream_send", "(self, event)", True,
     "tcpserver.HTTP1Only adds to it: the close after hypercorn refuses a WebSocket handshake itself"),
    ("hypercorn.protocol.events:EndBody", "(stream_id)", False, "the end of an answer (HTTP1Only.stream_send)"),
    ("hypercorn.config:Config.response_headers", "(self, protocol)", False, "listener._Config caches the date"),
    ("hypercorn.events:RawData", "(data, address=)", False, "what is written and read"),
    ("hypercorn.events:Closed", "()", False, "the connection's end"),
    ("hypercorn.trio.lifespan:Lifespan.__init__", "(self, app, config, state)", False, "listener.serve"),
    ("hypercorn.trio.lifespan:Lifespan.handle_lifespan", "(self, *, task_status=)", True, "listener.serve"),
    ("hypercorn.trio.lifespan:Lifespan.wait_for_startup", "(self)", True, "listener.serve"),
    ("hypercorn.trio.worker_context:WorkerContext.__init__", "(self, max_requests)", False, "listener.serve"),
    ("hypercorn.utils:wrap_app", "(app, wsgi_max_body_size, mode)", False, "listener.serve"),
]

# hypercorn code that must still reach what the transport replaces or reads: the names each
# one uses (attributes read or set, methods called).
CALLS: list[tuple[str, set[str], str]] = [
    ("hypercorn.trio.tcp_server:TCPServer.run",
     {"ProtocolWrapper", "protocol", "protocol_send", "_read_data", "idle_task", "restart", "_task_group"},
     "else our read loop, writer or idle timer is bypassed"),
    ("hypercorn.trio.tcp_server:TCPServer.protocol_send", {"send_lock", "idle_task", "restart", "stop"},
     "its writer holds `send_lock` (our direct writes wait for it); idle and busy go to `idle_task`"),
    ("hypercorn.protocol.h11:H11Protocol", {"response_headers"}, "else the cached date header is not used"),
    ("hypercorn.protocol.h11:H11Protocol._handle_events", {"_check_protocol"},
     "else HTTP1Only's check is bypassed, and h2c switches to hypercorn's HTTP/2 again"),
    ("hypercorn.protocol.ws_stream:WSStream.handle", {"_send_error_response", "closed"},
     "hypercorn's own refusal of a handshake, after which HTTP1Only closes the connection"),
    ("hypercorn.protocol.ws_stream:WSStream._send_error_response", {"send", "EndBody"},
     "its answer ends with EndBody, on which HTTP1Only.stream_send acts"),
    ("hypercorn.protocol.h11:H11Protocol._create_stream", {"WSStream", "stream"},
     "a WebSocket handshake is the protocol's `stream`, a WSStream"),
]


def _resolve(where: str, replace: dict[str, Any]) -> Any:
    if where in replace:
        return replace[where]
    module, _, names = where.partition(":")
    try:
        found: Any = importlib.import_module(module)
        for name in names.split("."):
            found = inspect.getattr_static(found, name)
    except (ImportError, AttributeError):
        return GONE
    return found.__func__ if isinstance(found, (staticmethod, classmethod)) else found


def shape(func: Callable[..., Any]) -> str:
    """The parameters `func` takes, without annotations (those change between releases)."""
    parts: list[str] = []
    starred = False
    for p in inspect.signature(func).parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}")
            starred = True
        elif p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
        else:
            if p.kind is p.KEYWORD_ONLY and not starred:
                parts.append("*")
                starred = True
            parts.append(p.name + ("=" if p.default is not p.empty else ""))
    return f"({', '.join(parts)})"


def _names(found: Any) -> set[str]:
    """The names the code of a function, or of every method of a class, uses."""
    functions = [found] if inspect.isfunction(found) else [
        f for f in vars(found).values() if inspect.isfunction(f)]
    return {name for f in functions for name in f.__code__.co_names}


def contract_problems(replace: dict[str, Any] | None = None) -> list[str]:
    """Every way the installed hypercorn and h11 differ from what the transport expects.
    `replace` stands a doctored object in for one of them (to show that this check can fail)."""
    replace = replace or {}
    problems: list[str] = []
    for where, expected, is_async, why in CALLABLES:
        found = _resolve(where, replace)
        if found is GONE:
            problems.append(f"{where} is gone ({why})")
            continue
        if shape(found) != expected:
            problems.append(f"{where} takes {shape(found)}, not {expected} ({why})")
        if inspect.iscoroutinefunction(found) != is_async:
            problems.append(f"{where} is {'no longer' if is_async else 'now'} async ({why})")
    for where, names, why in CALLS:
        found = _resolve(where, replace)
        missing = names - _names(found) if found is not GONE else names
        if missing:
            problems.append(f"{where} no longer uses {', '.join(sorted(missing))} ({why})")
    max_recv = _resolve("hypercorn.trio.tcp_server:MAX_RECV", replace)
    if not isinstance(max_recv, int):
        problems.append("hypercorn.trio.tcp_server.MAX_RECV is not an int (tcpserver's read loop reads that much)")
    problems += _instance_problems(replace)
    problems += _ours_problems(replace)
    problems += _h11_problems(replace)
    return problems


def _instance_problems(replace: dict[str, Any]) -> list[str]:
    """Attributes set when hypercorn's objects are made, not visible on their classes."""
    from hypercorn.config import Config
    from hypercorn.typing import ConnectionState

    problems: list[str] = []
    server_class = _resolve("hypercorn.trio.tcp_server:TCPServer", replace)
    single_task = _resolve("hypercorn.trio.worker_context:TrioSingleTask", replace)
    context_class = _resolve("hypercorn.trio.worker_context:WorkerContext", replace)
    wrapper_class = _resolve("hypercorn.protocol:ProtocolWrapper", replace)
    if GONE in (server_class, single_task, context_class, wrapper_class):
        return problems  # reported above
    try:
        server = server_class(None, Config(), context_class(None), {}, object())
    except Exception as error:  # noqa: BLE001 - any failure is the news
        return [f"hypercorn.trio.tcp_server.TCPServer(app, config, context, state, stream) fails: {error!r}"]
    if not isinstance(getattr(server, "send_lock", None), trio.Lock):
        problems.append("TCPServer.send_lock is not a trio.Lock (direct writes wait while hypercorn's writer holds it)")
    if not isinstance(getattr(server, "idle_task", None), single_task):
        problems.append("TCPServer.idle_task is not a TrioSingleTask (tcpserver.IdleTimer replaces it)")
    async def send(event: Any) -> None:
        pass
    try:
        wrapper = wrapper_class(None, Config(), context_class(None), None, ConnectionState({}), False, None,
                                None, send, "http/1.1")
    except Exception as error:  # noqa: BLE001
        return [*problems, f"hypercorn.protocol.ProtocolWrapper(...) fails: {error!r}"]
    if not isinstance(getattr(getattr(wrapper, "protocol", None), "connection", None), h11.Connection):
        problems.append("ProtocolWrapper.protocol.connection is not the h11.Connection of an HTTP/1.1 client "
                        "(tcpserver reads its state to close at once or linger)")
    ws_class = _resolve("hypercorn.protocol.ws_stream:WSStream", replace)
    handshake = _resolve("hypercorn.protocol.ws_stream:ASGIWebsocketState.HANDSHAKE", replace)
    if GONE in (ws_class, handshake):
        problems.append("hypercorn.protocol.ws_stream's WSStream or ASGIWebsocketState.HANDSHAKE is gone "
                        "(HTTP1Only.stream_send reads them)")
    else:
        ws = ws_class(None, Config(), context_class(None), None, False, None, None, send, 1)
        if getattr(ws, "state", None) is not handshake or getattr(ws, "closed", None) is not False:
            problems.append("a new WSStream's `state` is not HANDSHAKE or its `closed` not False "
                            "(HTTP1Only.stream_send reads them)")
    if type(getattr(wrapper, "protocol", None)) is not _resolve("hypercorn.protocol.h11:H11Protocol", replace):
        problems.append("ProtocolWrapper.protocol is not an H11Protocol for an HTTP/1.1 connection (tcpserver "
                        "makes it an HTTP1Only, which refuses HTTP/2)")
    return problems


def _ours_problems(replace: dict[str, Any]) -> list[str]:
    """Our stand-ins take what hypercorn passes to the parts they replace."""
    pairs = [("hypercorn.trio.worker_context:TrioSingleTask.restart", tcpserver.IdleTimer.restart),
             ("hypercorn.trio.worker_context:TrioSingleTask.stop", tcpserver.IdleTimer.stop),
             ("hypercorn.trio.tcp_server:TCPServer.protocol_send", tcpserver.TCPServer.protocol_send),
             ("hypercorn.trio.tcp_server:TCPServer._read_data", tcpserver.TCPServer._read_data),
             ("hypercorn.protocol.h11:H11Protocol._check_protocol", tcpserver.HTTP1Only._check_protocol),
             ("hypercorn.protocol.h11:H11Protocol.stream_send", tcpserver.HTTP1Only.stream_send)]
    problems = []
    for where, ours in pairs:
        theirs = _resolve(where, replace)
        if theirs is not GONE and shape(theirs) != shape(ours):
            problems.append(f"{where} takes {shape(theirs)}; {ours.__qualname__} takes {shape(ours)}")
    return problems


def _h11_problems(replace: dict[str, Any]) -> list[str]:
    """The h11 the transport reads (public API) and the framing it writes without h11."""
    problems = []
    for name in ("their_state", "trailing_data"):
        if not isinstance(_resolve(f"h11:Connection.{name}", replace), property):
            problems.append(f"h11.Connection.{name} is gone (tcpserver reads it to close at once or linger)")
    if _resolve("h11:MUST_CLOSE", replace) is GONE:
        return [*problems, "h11.MUST_CLOSE is gone"]
    for request, what in [(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "Connection: close"),
                          (b"GET / HTTP/1.0\r\n\r\n", "HTTP/1.0")]:
        peer = h11.Connection(h11.SERVER)
        peer.receive_data(request)
        while peer.next_event() not in (h11.NEED_DATA, h11.PAUSED):
            pass
        if peer.their_state is not h11.MUST_CLOSE or peer.trailing_data != (b"", False):
            problems.append(f"h11 no longer says MUST_CLOSE with nothing unread after a {what} request "
                            f"(their_state {peer.their_state}, trailing_data {peer.trailing_data})")
    peer = h11.Connection(h11.SERVER)
    peer.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    peer.next_event()
    peer.send(h11.Response(status_code=200, headers=[("transfer-encoding", "chunked")]))
    for data in (b"x", b"data: {}\n\n" * 30):
        framed = peer.send(h11.Data(data=data))
        if framed != connection.chunk(data):
            problems.append(f"h11 frames a chunk of {len(data)} bytes as {framed!r}, "
                            f"Connection.send_chunk as {connection.chunk(data)!r}")
    return problems


def test_hypercorn_and_h11_have_what_the_transport_uses():
    problems = contract_problems()
    assert not problems, (
        f"hypercorn {version('hypercorn')} / h11 {version('h11')} changed what "
        "src/openai_mock/http/transport/ relies on; adapt it before allowing this version in "
        "pyproject.toml:\n  " + "\n  ".join(problems))


def test_the_contract_check_names_what_changed():
    async def run(self: Any) -> None:  # a `run` that reads with another method
        await self._receive_all()

    async def restart(self: Any, task_group: Any) -> None:
        pass

    before = contract_problems()
    problems = contract_problems({
        "hypercorn.trio.tcp_server:TCPServer._read_data": GONE,
        "hypercorn.trio.tcp_server:TCPServer.run": run,
        "hypercorn.trio.worker_context:TrioSingleTask.restart": restart,
        "h11:Connection.trailing_data": GONE,
    })
    expected = [
        "hypercorn.trio.tcp_server:TCPServer._read_data is gone (overridden: the lingering close)",
        "hypercorn.trio.tcp_server:TCPServer.run no longer uses ProtocolWrapper, _read_data, _task_group, "
        "idle_task, protocol, protocol_send, restart (else our read loop, writer or idle timer is bypassed)",
        "hypercorn.trio.worker_context:TrioSingleTask.restart takes (self, task_group), not "
        "(self, task_group, action) (tcpserver.IdleTimer stands in for it as `idle_task`)",
        "hypercorn.trio.worker_context:TrioSingleTask.restart takes (self, task_group); "
        "IdleTimer.restart takes (self, task_group, action)",
        "h11.Connection.trailing_data is gone (tcpserver reads it to close at once or linger)",
    ]
    assert [p for p in expected if p not in problems] == []
    assert [p for p in problems if p not in expected and p not in before] == []  # nothing else


def test_the_accept_loop_reads_trios_run_queue():
    """`listener.runnable_counter` reads the length of trio's private run queue, because
    `current_statistics()` walks every registered socket (a tenth of the server's CPU with
    thousands of streams open). If trio moves it, the counter falls back on the public call:
    still right, but slow, so this names the change."""
    counts: list[tuple[int, int]] = []

    async def main() -> None:
        count = listener.runnable_counter()
        assert isinstance(getattr(count, "__self__", None), collections.deque), (
            "trio._core._run.GLOBAL_RUN_CONTEXT.runner.runq is gone: the accept loop counts runnable "
            "tasks the slow way (see listener.runnable_counter)")
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                counts.append((count(), trio.lowlevel.current_statistics().tasks_runnable))
                nursery.start_soon(trio.lowlevel.checkpoint)
                nursery.start_soon(trio.lowlevel.checkpoint)
            counts.append((count(), trio.lowlevel.current_statistics().tasks_runnable))

    trio.run(main)
    assert [ours for ours, _ in counts] == [theirs for _, theirs in counts] == [0, 2, 4, 6]


def test_an_error_in_one_connection_ends_that_connection_only(caplog):
    """A bug of ours that escapes one connection's handler (here: the accept loop given a handler
    that fails on its first connection) is logged and ends that connection; the server goes on."""
    served: list[bytes] = []

    async def handler(client: socket.socket) -> None:
        if not served:
            served.append(b"failed")
            raise RuntimeError("a bug in a connection's handler")
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(client))
        async with stream:
            served.append(await stream.receive_some(100))
            await stream.send_all(b"ok")

    async def main() -> None:
        listening = socket.create_server(("127.0.0.1", 0))
        listening.setblocking(False)
        port = listening.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(listener._accept, listening,
                               listener._guarded(handler, logging.getLogger("test")), nursery,
                               IdleConnections(None), False)
            first = await trio.open_tcp_stream("127.0.0.1", port)
            assert await first.receive_some(10) == b""  # closed: the connection that failed
            second = await trio.open_tcp_stream("127.0.0.1", port)
            await second.send_all(b"hello")
            assert await second.receive_some(10) == b"ok"  # the next one is served
            nursery.cancel_scope.cancel()
        listening.close()

    with caplog.at_level(logging.ERROR, logger="test"):
        trio.run(main)
    assert served == [b"failed", b"hello"]
    assert "a connection ended on an internal error" in caplog.text
    assert "a bug in a connection's handler" in caplog.text
