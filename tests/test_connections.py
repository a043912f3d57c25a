"""Keep-alive connections: what happens to a client's TCP connection between and after requests.

SDKs keep connections in pools: an idle connection stays open for the keep-alive timeout, a busy
one (a long stream) is never cut by it, and one the client closed is closed on our side at once
(not left in CLOSE-WAIT, holding a file descriptor, until the timeout runs out). A request that
asks to close (`Connection: close`, or HTTP/1.0) gets its whole answer, then the server's FIN."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import selectors
import socket
import struct
import time

import httpx
import pytest
from conftest import FAILURE_KINDS, RunningServer, failure_rules

from openai_mock import MockServer
from openai_mock.http.transport import tcpserver

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
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
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
    monkeypatch.setattr(tcpserver, "KEEP_ALIVE_TIMEOUT", 0.5)
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
    monkeypatch.setattr(tcpserver, "KEEP_ALIVE_TIMEOUT", 0.3)
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
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
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


def test_the_router_answers_while_the_admin_app_is_still_loading(monkeypatch):
    """`serve` imports the Quart app (the admin API) in a worker thread after it starts
    listening. Held back here: health, chat, models and a 404 answer at once, and an admin
    request waits for the app, then answers normally."""
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
            auth = {"Authorization": f"Bearer {mock.api_key}"}
            models = httpx.get(f"{mock.base_url}/models", headers=auth, timeout=10)  # every /v1 path: the router
            assert models.status_code == 200 and models.json()["object"] == "list"
            assert httpx.get(f"{mock.url}/nowhere", timeout=10).status_code == 404
            admin: list[httpx.Response] = []
            waiting = threading.Thread(target=lambda: admin.append(
                httpx.get(f"{mock.url}/_mock/scenarios", headers=auth, timeout=20)))
            waiting.start()
            waiting.join(timeout=0.5)
            assert waiting.is_alive() and not admin  # the admin API waits for the app
        finally:
            gate.set()
        waiting.join(timeout=20)
        assert admin and admin[0].status_code == 200
        assert admin[0].json()["object"] == "list"


# --- Connection: close and HTTP/1.0 ---------------------------------------------------------

CLOSING_RULES = """
responses:
  - id: late
    matcher: {type: contains, messages: [{role: user, content: late}]}
    reply: "late pong"
    latency_ms: 20
  - id: faulted
    matcher: {type: contains, messages: [{role: user, content: "fail"}]}
    reply: "one two three four five"
    chunking: word
    fail_after_chunks: 3
    failure: error_event
  - id: quick
    matcher: {type: any}
    reply: pong
"""


def last_event(payload: bytes) -> dict:
    """The last `data:` event of an SSE body, which must end with a whole event."""
    assert payload.endswith(b"\n\n"), payload[-200:]
    return json.loads(payload.rstrip(b"\n").rsplit(b"\n\n", 1)[-1].removeprefix(b"data: "))


def chat(text: str, stream: bool) -> tuple[str, str, bytes]:
    return "POST", "/v1/chat/completions", json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": text}], "stream": stream}).encode()


# each: (method, path, body), the status, and what the whole answer's body must satisfy
CLOSING_CASES = {
    "models": (("GET", "/v1/models", b""), 200, lambda body: json.loads(body)["object"] == "list"),
    "journal": (("GET", "/_mock/requests", b""), 200, lambda body: "data" in json.loads(body)),
    "scenarios": (("GET", "/_mock/scenarios", b""), 200, lambda body: isinstance(json.loads(body), dict)),
    "not-found": (("GET", "/v1/nope", b""), 404, lambda body: "error" in json.loads(body)),
    "head-health": (("HEAD", "/health", b""), 200, lambda body: body == b""),
    "health": (("GET", "/health", b""), 200, lambda body: json.loads(body) == {"status": "ok"}),
    "chat": (chat("ping", False), 200,
             lambda body: json.loads(body)["choices"][0]["message"]["content"] == "pong"),
    "chat-latency": (chat("late", False), 200,
                     lambda body: json.loads(body)["choices"][0]["message"]["content"] == "late pong"),
    "chat-stream": (chat("ping", True), 200, lambda body: body.endswith(b"data: [DONE]\n\n")),
    "chat-stream-fault": (chat("fail", True), 200, lambda body: "error" in last_event(body)),
}


def server_connections(pid: int, port: int) -> int:
    """How many client connections the process `pid`, listening on `port`, holds a descriptor
    for: its sockets (from /proc/PID/fd) that the kernel lists as TCP connections on that port."""
    inodes: set[str] = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
                count += local_port == port and state != "0A" and inode in inodes  # 0A: LISTEN
    return count


def dechunk(data: bytes) -> bytes | None:
    """A chunked body's payload, or None if its last chunk has not arrived."""
    payload = b""
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        if not sep:
            return None
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return payload if data == b"\r\n" else None
        if len(data) < size + 2:
            return None
        payload, data = payload + data[:size], data[size + 2:]


def read_to_the_end(clients: list[socket.socket], timeout: float) -> list[tuple[bytes, str]]:
    """Everything each client receives until the server ends the connection, and how it ended:
    "eof", "reset", or "open" if the connection was still open after `timeout` seconds."""
    received = {client: b"" for client in clients}
    ending: dict[socket.socket, str] = {}
    with selectors.DefaultSelector() as selector:
        for client in clients:
            client.setblocking(False)
            selector.register(client, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while len(ending) < len(clients) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.1):
                client = key.fileobj
                try:
                    data = client.recv(65536)
                except ConnectionResetError:
                    data, ending[client] = b"", "reset"
                if data:
                    received[client] += data
                    continue
                ending.setdefault(client, "eof")
                selector.unregister(client)
    return [(received[client], ending.get(client, "open")) for client in clients]


def assert_server_closed_them(server: RunningServer, count: int) -> None:
    """Within 5 s the server holds none of the `count` connections it was sent (their clients
    may still hold their ends)."""
    assert wait_for(lambda: server_connections(server.process.pid, server.port) == 0, timeout=5), \
        f"{server_connections(server.process.pid, server.port)} of {count} connections still open on the server"


@pytest.fixture(scope="module")
def closing_server():
    server = RunningServer(CLOSING_RULES)
    yield server
    server.stop()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
@pytest.mark.parametrize("version", ["1.1 close", "1.0"])
@pytest.mark.parametrize("case", list(CLOSING_CASES))
def test_the_server_closes_what_the_client_asked_to_close(closing_server, case, version):
    """A request with `Connection: close`, or over HTTP/1.0, gets its whole answer, then the
    server's FIN (EOF, not a reset), on every path: the Quart routes, health, the generation
    endpoints plain, delayed, streamed and faulted. The server then holds no descriptor for
    those connections, although the clients keep theirs open: it does not wait for them."""
    server, count = closing_server, 200
    (method, path, body), status, whole = CLOSING_CASES[case]
    http_version, connection = ("HTTP/1.1", "Connection: close\r\n") if version == "1.1 close" else ("HTTP/1.0", "")
    request = (f"{method} {path} {http_version}\r\nHost: 127.0.0.1\r\n{connection}"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    httpx.get(f"{server.root}/_mock/scenarios", timeout=20)  # the Quart app is loaded
    clients = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(count)]
    try:
        for client in clients:
            client.sendall(request)
        answers = read_to_the_end(clients, timeout=10)
        # the clients still hold their ends: the server's are closed all the same
        assert_server_closed_them(server, count)
    finally:
        for client in clients:
            client.close()
    assert [ending for _, ending in answers] == ["eof"] * count
    for answer, _ in answers:
        head, _, rest = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert int(lines[0].split()[1]) == status, head
        headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
        if method == "HEAD":
            payload = rest
        elif "content-length" in headers:
            assert len(rest) == int(headers["content-length"]), (head, rest)
            payload = rest
        elif headers.get("transfer-encoding") == "chunked":
            payload = dechunk(rest)
            assert payload is not None, f"the chunked body never ended: {rest[-200:]!r}"
        else:  # an HTTP/1.0 stream: its body ends with the connection
            payload = rest
        assert whole(payload), (head, payload[-300:])


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
@pytest.mark.parametrize("version", ["1.1 close", "1.0"])
def test_faults_end_connections_their_own_way_when_the_client_asked_to_close(fresh_server, version):
    """Under `Connection: close` or HTTP/1.0 too, `disconnect` and `hang` end with a FIN in the
    middle of the body, `reset` with an RST; the faults that end the body cleanly (`truncate`,
    `malformed`, `error_event`) end it, then the connection. Streamed or not, and nothing left
    open on the server."""
    server = fresh_server(failure_rules("one two three four five six"))
    http_version, connection = ("HTTP/1.1", "Connection: close\r\n") if version == "1.1 close" else ("HTTP/1.0", "")
    cases = [(kind, stream) for kind in FAILURE_KINDS for stream in (True, False)] * 3
    clients = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in cases]
    try:
        for client, (kind, stream) in zip(clients, cases, strict=True):
            _, path, body = chat(f"fail:{kind}", stream)
            client.sendall((f"POST {path} {http_version}\r\nHost: 127.0.0.1\r\n{connection}Content-Type: "
                            f"application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
        answers = read_to_the_end(clients, timeout=10)
        assert_server_closed_them(server, len(cases))
    finally:
        for client in clients:
            client.close()
    for (kind, stream), (answer, ending) in zip(cases, answers, strict=True):
        if kind == "reset":
            assert ending == "reset", (kind, stream, answer[-200:])
            continue
        assert ending == "eof", (kind, stream, ending, answer[-200:])
        head, _, rest = answer.partition(b"\r\n\r\n")
        cut = kind in ("disconnect", "hang")
        if not stream and cut:  # cut before anything was sent
            assert answer == b"", (kind, answer)
        elif not stream:  # the body has its length: all of it came
            length = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
            assert len(rest) == int(length[0].split(b":")[1]), (kind, answer)
        elif http_version == "HTTP/1.1":  # the chunked body ends, unless the fault cut it
            assert (dechunk(rest) is not None) == (not cut), (kind, rest[-200:])
        else:
            assert rest.count(b"data: ") >= 3, (kind, rest)
    assert "Traceback" not in server.log()


def _ended_connections_garbage(mock: MockServer, count: int) -> int:
    """How many objects the garbage collector finds unreachable after `count` connections, each
    with one request, have ended (the server's own collector paused meanwhile)."""
    def one() -> None:
        with socket.create_connection(("127.0.0.1", mock.port), timeout=10) as sock:
            sock.sendall(request_bytes("ping"))
            assert b'"content":"pong"' in read_response(sock)

    for _ in range(5):  # (first-time allocations are not the point)
        one()
    time.sleep(0.2)
    gc.collect()
    gc.disable()
    try:
        for _ in range(count):
            one()
        time.sleep(0.3)  # (the server ends each connection on its client's FIN)
        return gc.collect()
    finally:
        gc.enable()


def test_an_ended_connection_leaves_nothing_for_the_garbage_collector():
    """The objects of a connection (hypercorn's handler and protocol, the h11 state, the socket,
    ours) are freed when it ends, by reference counting. They were tied in loops of references,
    some 30 objects a connection, freed only by the garbage collector: whose passes over
    thousands of ended connections at once stalled every stream (up to 210 ms, at 10,000 streams
    opened at 1,000/s)."""
    with MockServer(RULES) as mock:
        found = _ended_connections_garbage(mock, 100)
    assert found < 300, f"{found} objects left for the garbage collector by 100 ended connections"


def test_clients_that_reset_at_once_leave_no_error(fresh_server):
    """A client that resets its connection at once (an RST right after connecting: a port
    scanner, a load balancer's check, a client killed) ends the connection before hypercorn has
    set it up: nothing may be logged as an error, and the server goes on."""
    server = fresh_server(RULES)
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request_bytes("ping"))
        assert b'"content":"pong"' in read_response(sock)
    time.sleep(0.3)
    log = server.log()
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
