"""Keep-alive connections: what happens to a client's TCP connection between and after requests.

SDKs keep connections in pools: an idle connection stays open for the keep-alive timeout, a busy
one (a long stream) is never cut by it, and one the client closed is closed on our side at once
(not left in CLOSE-WAIT, holding a file descriptor, until the timeout runs out)."""

from __future__ import annotations

import json
import os
import socket
import time

import httpx
import pytest

from openai_mock import MockServer
from openai_mock.http import transport

RULES = """
responses:
  - id: slow
    matcher: {type: contains, messages: [{role: user, content: slow}]}
    reply: "one two three four five six"
    chunking: word
    delay_ms: 150
  - id: quick
    matcher: {type: any}
    reply: pong
"""


def request_bytes(content: str, stream: bool = False) -> bytes:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": content}], "stream": stream})
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: mock\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def read_response(sock: socket.socket) -> bytes:
    """One whole response (content-length or chunked) from a keep-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the response's head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    while (len(body) < int(length[0].split(b":")[1]) if length else not body.endswith(b"0\r\n\r\n")):
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the response's end: {body!r}"
        body += chunk
    return body


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
def test_connections_the_clients_close_are_closed_at_once(fresh_server):
    server = fresh_server(RULES)
    # a route of the Quart app answers once it is loaded (its import opens files while it runs)
    httpx.get(f"{server.root}/_mock/requests", headers={"Connection": "close"}, timeout=20)
    time.sleep(0.2)  # (and the server has closed that connection)
    before = open_fds(server.process.pid)
    answered = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(10)]
    for client in answered:
        client.sendall(request_bytes("ping"))
    for client in answered:
        assert b'"content":"pong"' in read_response(client)
    assert open_fds(server.process.pid) >= before + 10  # the server holds them while they are open
    # a load generator that stops closes connections with requests still in flight
    pipelined = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(10)]
    for client in pipelined:
        client.sendall(request_bytes("ping") * 2)
    time.sleep(0.05)
    for client in answered + pipelined:
        client.close()
    # the keep-alive timeout is 75 s: only closing on the client's FIN brings the count back now
    assert wait_for(lambda: open_fds(server.process.pid) <= before, timeout=5), \
        f"{open_fds(server.process.pid)} descriptors open, {before} before the connections"


def test_idle_connections_close_after_the_keep_alive_timeout(monkeypatch):
    monkeypatch.setattr(transport, "KEEP_ALIVE_TIMEOUT", 0.5)
    with MockServer(RULES) as mock:
        sock = socket.create_connection(("127.0.0.1", mock.port), timeout=10)
        with sock:
            for _ in range(3):  # several requests on one connection: each one ends an idle wait
                sock.sendall(request_bytes("ping"))
                assert b'"content":"pong"' in read_response(sock)
                time.sleep(0.2)
            answered = time.monotonic()
            assert sock.recv(1) == b""  # the server closed the idle connection
            idle = time.monotonic() - answered
    assert 0.25 < idle < 5, idle


def test_a_stream_longer_than_the_keep_alive_timeout_is_not_cut(monkeypatch):
    monkeypatch.setattr(transport, "KEEP_ALIVE_TIMEOUT", 0.3)
    with MockServer(RULES) as mock:
        sock = socket.create_connection(("127.0.0.1", mock.port), timeout=10)
        with sock:
            sock.sendall(request_bytes("slow", stream=True))
            started = time.monotonic()
            body = read_response(sock)
            assert time.monotonic() - started > 0.6  # 7 waits of 150 ms: twice the timeout
            words = [json.loads(line[6:])["choices"][0]["delta"].get("content")
                     for line in body.decode().splitlines() if line.startswith("data: {")]
            assert "".join(w or "" for w in words) == "one two three four five six"
            assert b"data: [DONE]" in body
            sock.sendall(request_bytes("ping"))  # and the connection still serves the next request
            assert b'"content":"pong"' in read_response(sock)
            assert sock.recv(1) == b""


BIG = "word " * 150_000  # 750 kB: far more than the socket buffers hold


def test_a_slow_reader_gets_every_byte_of_large_answers():
    """Writes go straight to the socket while they fit; what does not fit waits for the reader
    in hypercorn's writer. A client that reads slowly must still get every byte, in order."""
    rules = {"responses": [
        {"id": "big", "matcher": {"type": "any"}, "reply": BIG.strip(), "chunking": 1000},
    ]}
    with MockServer(rules) as mock:
        for stream in (False, True):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(20)
            sock.connect(("127.0.0.1", mock.port))
            with sock:
                sock.sendall(request_bytes("big", stream=stream))
                time.sleep(0.3)  # the server fills the buffers and has to wait
                body = read_response(sock)
                if stream:
                    # chunked framing around SSE events: join the deltas of the data lines
                    events = [json.loads(line[6:]) for line in body.decode().split("\r\n")
                              if line.startswith("data: {")]
                    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
                    assert body.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
                else:
                    text = json.loads(body)["choices"][0]["message"]["content"]
                assert text == BIG.strip()
                sock.sendall(request_bytes("again"))  # the connection is still in step
                assert json.loads(read_response(sock))["choices"][0]["message"]["content"] == BIG.strip()


def test_a_large_answer_that_waited_reaches_a_slow_reader_whole():
    """An answer with a latency is sent while the request's task watches for the client's
    disconnect; hypercorn tells that task its exchange is over before the corked answer is
    written, and the task is cancelled. What did not fit in the socket at once must still go
    out (it was cut after the first send, and the client waited forever for the rest)."""
    rules = {"responses": [
        {"id": "big", "matcher": {"type": "any"}, "reply": BIG.strip(), "latency_ms": 20},
    ]}
    with MockServer(rules) as mock:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(20)
        sock.connect(("127.0.0.1", mock.port))
        with sock:
            # (whether the task is cancelled in time is up to trio's scheduling order, which it
            # varies on purpose: about every other time; and the connection stays in step)
            for _ in range(10):
                sock.sendall(request_bytes("big"))
                assert json.loads(read_response(sock))["choices"][0]["message"]["content"] == BIG.strip()


def test_a_413_reaches_a_client_that_is_still_sending_its_body(fresh_server):
    """The server answers a body over the limit before reading it, then closes. Closing with
    unread data sends an RST, which can destroy the answer before the client reads it (the SDK
    then sees a dropped connection and retries). The server lingers instead: FIN after the
    answer, and what the client still sends is read and discarded."""
    server = fresh_server(RULES, "--max-body-size", "2048")
    size = 1_000_000
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: mock\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {server.api_key}\r\nContent-Length: {size}\r\n\r\n").encode()
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head + b" " * 65536)
            answer = b""
            while b"}}" not in answer:
                data = sock.recv(65536)
                assert data, f"closed before the answer was complete: {answer!r}"
                answer += data
            assert answer.startswith(b"HTTP/1.1 413 "), answer
            assert b'"code":"request_too_large"' in answer
            sock.sendall(b" " * (size - 65536))  # the rest of the body: no RST while it goes
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(65536) == b""  # then a clean end


def test_the_fast_paths_answer_while_the_quart_app_is_still_loading(monkeypatch):
    """`serve` imports the Quart app (every route but the generation endpoints and health) in a
    worker thread after it starts listening. Held back here: health and chat answer at once, and
    a Quart route waits for the app, then answers normally."""
    import importlib
    import threading

    from openai_mock.http.deferred import DeferredApp

    gate = threading.Event()

    def held_back(name: str):
        assert gate.wait(20), "the test never opened the gate"
        return importlib.import_module(name)

    monkeypatch.setattr(DeferredApp, "import_module", staticmethod(held_back))
    with MockServer(RULES) as mock:
        try:
            health = httpx.get(f"{mock.url}/health", timeout=10)
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            assert health.headers["access-control-allow-origin"] == "*"
            reply = mock.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
            assert reply.choices[0].message.content == "pong"
            models: list[httpx.Response] = []
            waiting = threading.Thread(target=lambda: models.append(
                httpx.get(f"{mock.base_url}/models", headers={"Authorization": f"Bearer {mock.api_key}"},
                          timeout=20)))
            waiting.start()
            waiting.join(timeout=0.5)
            assert waiting.is_alive() and not models  # it waits for the app
        finally:
            gate.set()
        waiting.join(timeout=20)
        assert models and models[0].status_code == 200
        assert models[0].json()["object"] == "list"
