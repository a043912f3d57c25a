"""Clients that leave mid-stream cancel exactly their own work: no leaks, no error spam."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import chat_body, raw_request

CONFIG = """
responses:
  - id: long
    matcher: {type: any}
    reply: "one two three four five six seven eight nine ten eleven twelve"
    delay_ms: 20
"""


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def abort_one(port: int, session: str) -> None:
    """Start a stream, read its first bytes, and leave."""
    body = chat_body("tell me")
    payload = __import__("json").dumps(body).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"X-Mock-Session: {session}\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
        received = b""
        while b"data: " not in received:
            data = sock.recv(4096)
            assert data, "the stream ended before it started"
            received += data


def wait_for_outcomes(server, session: str, count: int) -> list[dict]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        entries = server.journal(session)
        if len(entries) == count and all(e["outcome"] for e in entries):
            return entries
        time.sleep(0.1)
    return server.journal(session)


@pytest.mark.slow
def test_300_aborts_leave_no_trace(fresh_server, session_id):
    server = fresh_server(CONFIG, "-v")
    with ThreadPoolExecutor(10) as pool:  # warm up: first-time allocations are not leaks
        list(pool.map(lambda _: abort_one(server.port, session_id + "-warm"), range(100)))
    wait_for_outcomes(server, session_id + "-warm", 100)
    server.reset()
    before = rss_kib(server.process.pid)

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda _: abort_one(server.port, session_id), range(300)))
    entries = wait_for_outcomes(server, session_id, 300)
    assert [e["outcome"] for e in entries] == ["client_disconnected"] * 300
    assert all(0 < e["chunks_sent"] < 14 for e in entries)

    server.reset()  # the journal's own entries are not a leak
    response = raw_request("127.0.0.1", server.port, "POST", "/v1/chat/completions", chat_body("still there?"))
    assert response.status == 200 and response.terminated
    assert response.events[-1] == "[DONE]"
    after = rss_kib(server.process.pid)
    assert after - before < 4 * 1024, f"RSS grew from {before} KiB to {after} KiB"

    log = server.log()
    for word in ("Traceback", "ERROR", "Error in ASGI", "Exception"):
        assert word not in log, log[-3000:]
    mine = [line for line in log.splitlines() if f"session={session_id} " in line]
    assert len(mine) == 300  # the -v log says what happened, once each
    assert all(line.endswith("client_disconnected") for line in mine)


SLOW_START = """
responses:
  - id: slow-start
    matcher: {type: any}
    reply: "one two three"
    delay_ms: 20
    latency_ms: 20000
"""


def test_a_client_that_leaves_before_its_stream_starts_is_noticed_at_once(fresh_server, session_id):
    """The request and the client's FIN can arrive in one read, before the request's own task
    has started: the server must still notice that the client left (and not wait for the
    first chunk, 20 s away, to find out from a failed write)."""
    server = fresh_server(SLOW_START)
    payload = __import__("json").dumps(chat_body("tell me")).encode()
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + f"X-Mock-Session: {session_id}\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
    sent = time.monotonic()
    entries = wait_for_outcomes(server, session_id, 5)
    assert [e["outcome"] for e in entries] == ["client_disconnected"] * 5, entries
    assert all(e["chunks_sent"] == 0 for e in entries)
    assert time.monotonic() - sent < 10  # (noticed when they left: 20 s before a write would fail)
