"""File descriptors (issue 13): the server raises its soft RLIMIT_NOFILE to the hard limit at
start, and when accept() finds no descriptor left it closes the longest-idle keep-alive
connections, so that a new client is served at once instead of waiting for the keep-alive
timeout (75 s) to free one.

The server runs with a soft and a hard limit of 1,024 (raising cannot help), and a client holds
1,500 keep-alive connections that each made one request and went idle."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import pytest
from conftest import RunningServer
from test_connections import read_response, request_bytes

resource = pytest.importorskip("resource")  # (POSIX: the limit does not exist elsewhere)

RULES = """
responses:
  - id: quick
    matcher: {type: any}
    reply: pong
"""
SERVER_LIMIT = 1024
IDLE_CONNECTIONS = 1500
ANSWER_WITHIN = 1.0  # seconds for a new client at the limit (before: 75 s, the keep-alive timeout)


class LimitedServer(RunningServer):
    """`openai-mock serve` started with RLIMIT_NOFILE set to (soft, hard)."""

    def __init__(self, config: str, soft: int, hard: int, *args: str):
        self._limits = (soft, hard)
        super().__init__(config, *args, preexec_fn=self._limit)

    def _limit(self) -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, self._limits)


@pytest.fixture
def limited() -> Iterator[list[LimitedServer]]:
    started: list[LimitedServer] = []
    yield started
    for server in started:
        server.stop()


def client_room(needed: int) -> None:
    """This process holds `needed` sockets: raise its own soft limit if it must."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"this machine's hard limit on descriptors ({hard}) leaves no room for {needed} client sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def health(port: int) -> float:
    """Seconds until a new connection's GET /health is answered (0 on the way there fails the test)."""
    started = time.monotonic()
    with connect(port) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock) == b'{"status":"ok"}'
    return time.monotonic() - started


def state(sock: socket.socket) -> str:
    """'open', 'closed' (the server's FIN) or 'reset', without reading what is there."""
    sock.setblocking(False)
    try:
        return "closed" if sock.recv(1, socket.MSG_PEEK) == b"" else "open"
    except BlockingIOError:
        return "open"
    except ConnectionResetError:
        return "reset"
    finally:
        sock.setblocking(True)


def test_at_the_descriptor_limit_the_longest_idle_connections_make_room(limited: list[LimitedServer]) -> None:
    client_room(IDLE_CONNECTIONS + 200)
    server = LimitedServer(RULES, SERVER_LIMIT, SERVER_LIMIT, "-v")
    limited.append(server)
    sockets: list[socket.socket] = []
    try:
        # The oldest connections, not idle: one has sent half a request's head, one the head and
        # half the body. Neither may be closed to make room.
        half_head = connect(server.port)
        half_head.sendall(request_bytes("ping")[:40])
        half_body = connect(server.port)
        whole = request_bytes("ping")
        half_body.sendall(whole[:-10])
        sockets += [half_head, half_body]
        idle: list[socket.socket] = []
        for number in range(1, IDLE_CONNECTIONS + 1):
            sock = connect(server.port)
            sockets.append(sock)
            idle.append(sock)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            try:
                assert read_response(sock) == b'{"status":"ok"}'
            except TimeoutError:
                pytest.fail(f"connection {number} of {IDLE_CONNECTIONS} got no answer within 5 s: the server "
                            "stopped accepting at its descriptor limit")

        assert health(server.port) < ANSWER_WITHIN
        client = server.client(max_retries=0, timeout=10)
        started = time.monotonic()
        reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "ping"}])
        assert time.monotonic() - started < ANSWER_WITHIN
        assert reply.choices[0].message.content == "pong"
        client.close()

        # Longest idle first: what was closed is the oldest idle connections, each with a FIN
        states = [state(sock) for sock in idle]
        closed = states.count("closed")
        assert "reset" not in states
        assert closed >= IDLE_CONNECTIONS - SERVER_LIMIT, states
        assert states == ["closed"] * closed + ["open"] * (IDLE_CONNECTIONS - closed)
        # and the requests in progress were left alone: both are answered once whole
        half_head.sendall(whole[40:])
        half_body.sendall(whole[-10:])
        assert b"pong" in read_response(half_head)
        assert b"pong" in read_response(half_body)
        log = server.log()
        assert "Traceback" not in log
        assert "descriptors: soft limit 1,024 (hard limit 1,024)" in log  # (-v: nothing to raise)
        assert ("descriptors: none left (soft limit 1,024): closing the longest-idle keep-alive connections to "
                "accept new ones (1 so far)") in log
    finally:
        for sock in sockets:
            sock.close()


def test_the_soft_limit_is_raised_to_the_hard_limit_and_logged(limited: list[LimitedServer]) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip(f"this machine's hard limit on descriptors ({hard}) leaves nothing to raise from 1,024")
    server = LimitedServer(RULES, 1024, hard, "-v")
    limited.append(server)
    expected = hard if hard != resource.RLIM_INFINITY else None
    raised = [line for line in server.log().splitlines() if "descriptors:" in line]
    assert len(raised) == 1, server.log()
    assert "soft limit raised from 1,024 to " in raised[0]
    if expected is not None and expected <= 1 << 20:
        assert raised[0].endswith(f"to {expected:,}")
    if sys.platform.startswith("linux"):
        with open(f"/proc/{server.process.pid}/limits") as limits:
            line = next(line for line in limits if line.startswith("Max open files"))
        assert int(line.split()[3]) > 1024
    assert health(server.port) < 5


class RefusingLimits:
    """The platform's getrlimit and setrlimit, as a kernel that refuses a soft limit above
    `allowed` (macOS above kern.maxfilesperproc; or a sandbox that refuses any)."""

    def __init__(self, soft: int, hard: int, allowed: int):
        self.limits, self.allowed = (soft, hard), allowed

    def getrlimit(self, which: int) -> tuple[int, int]:
        return self.limits

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        if limits[0] > self.allowed:
            raise ValueError("not allowed to raise maximum limit")
        self.limits = limits


def test_a_refused_raise_tries_less_and_never_stops_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from openai_mock import MockServer
    from openai_mock.http.transport.descriptors import raise_limit

    kernel = RefusingLimits(1024, resource.RLIM_INFINITY, allowed=10_240)
    monkeypatch.setattr(resource, "getrlimit", kernel.getrlimit)
    monkeypatch.setattr(resource, "setrlimit", kernel.setrlimit)
    assert raise_limit() == "descriptors: soft limit raised from 1,024 to 8,192"
    assert raise_limit() == ("descriptors: soft limit stays 8,192: raising it to the hard limit was refused "
                             "(not allowed to raise maximum limit)")  # (a second server)
    kernel.limits, kernel.allowed = (1024, 4096), 0
    assert raise_limit() == ("descriptors: soft limit stays 1,024: raising it to the hard limit was refused "
                             "(not allowed to raise maximum limit)")
    with MockServer(RULES) as mock:  # (it calls raise_limit too: refused, it serves all the same)
        reply = mock.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "pong"



class Listed:
    """A connection as the idle list sees it: whether it lets itself be shed, and what happened
    to it (with the time, on trio's clock)."""

    def __init__(self, sheds: bool):
        self.sheds = sheds
        self.events: list[str] = []
        self.expired_at: float | None = None

    def shed(self) -> bool:
        self.events.append("shed" if self.sheds else "declined")
        return self.sheds

    def expire(self) -> None:
        import trio

        self.events.append("expired")
        self.expired_at = trio.current_time()


def test_the_idle_list_sheds_the_longest_idle_and_expires_each_at_its_deadline() -> None:
    """One task closes every connection idle past its keep-alive deadline, in the order they
    turned idle; a connection that declines to be shed (its request is arriving) stays listed,
    so that its keep-alive timeout still holds if that request never comes whole."""
    import trio

    from openai_mock.http.transport.descriptors import IdleConnections

    arriving, oldest, newer, busy = Listed(sheds=False), Listed(sheds=True), Listed(sheds=True), Listed(sheds=True)
    start = 0.0

    async def main() -> None:
        nonlocal start
        idle = IdleConnections()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(idle.run)
            start = trio.current_time()
            idle.add(arriving, start + 0.2)
            idle.add(oldest, start + 0.2)
            idle.add(newer, start + 0.3)
            idle.add(busy, start + 0.3)
            idle.discard(busy)  # a request came: no timeout while it is answered
            assert idle.shed()  # skips `arriving`, closes `oldest`
            await trio.sleep(0.5)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert arriving.events == ["declined", "expired"]
    assert oldest.events == ["shed"]  # shed, and so no longer listed: never expired
    assert newer.events == ["expired"]
    assert busy.events == []
    assert arriving.expired_at is not None and newer.expired_at is not None
    assert 0.2 <= arriving.expired_at - start < 0.29, arriving.expired_at - start
    assert 0.3 <= newer.expired_at - start < 0.39, newer.expired_at - start
