"""What the server answers besides HTTP/1.1: a WebSocket upgrade is refused with a plain HTTP
answer on every path, `Upgrade: h2c` is ignored (answered over HTTP/1.1) and HTTP/2's preface
(h2c "prior knowledge") gets a 505 and the end of the connection; none leaves a traceback."""

from __future__ import annotations

import base64
import json
import os
import socket

import httpx
import pytest
from conftest import chat_body
from wsproto import ConnectionType, WSConnection
from wsproto.events import RejectConnection, RejectData, Request

RULES = """
responses:
  - id: answer
    matcher: {type: any}
    reply: "one two three"
"""
PATHS = ["/v1/chat/completions", "/v1/responses", "/v1/models", "/v1/realtime", "/_mock/requests", "/_mock/nope",
         "/health", "/nope"]
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS_FRAME = bytes.fromhex("000000040000000000")  # an empty SETTINGS frame


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A server of this module's own, its stderr and its --log-file apart: a traceback in either
    is a failure."""
    from conftest import RunningServer

    log_file = tmp_path_factory.mktemp("protocols") / "requests.log"
    server = RunningServer(RULES, "--log-file", str(log_file), "-v")
    yield server, log_file
    server.stop()


def no_traceback(server, log_file) -> None:
    for text in (server.log(), log_file.read_text() if log_file.exists() else ""):
        assert "Traceback" not in text and "ERROR" not in text, text[-3000:]


def receive_all(sock: socket.socket) -> tuple[bytes, str]:
    """Everything until the server ends the connection, and how it ended."""
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, "eof"
            data += chunk
    except ConnectionResetError:
        return data, "reset"
    except TimeoutError:
        return data, "timeout"


def websocket_upgrade(port: int, path: str) -> tuple[int, dict[str, str], bytes, str]:
    """A real upgrade request (a GET with Upgrade: websocket, a Sec-WebSocket-Key, version 13)
    over a raw socket: the status, headers and body of the answer, and how the connection ended."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        data, ending = receive_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body, ending


@pytest.mark.parametrize("path", PATHS)
def test_a_websocket_upgrade_is_refused_with_an_openai_error(logged, path):
    server, log_file = logged
    status, headers, body, ending = websocket_upgrade(server.port, path)
    known = path not in ("/v1/realtime", "/nope")
    assert status == (400 if known else 404), body
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert "WebSocket" in error["message"]
    assert ending == "eof"  # the connection ends after the answer (a FIN, not a reset)
    no_traceback(server, log_file)


def test_a_websocket_client_sees_the_refusal(logged):
    """wsproto's client (what hypercorn uses) reads the refusal as a rejected handshake, with the body."""
    server, log_file = logged
    client = WSConnection(ConnectionType.CLIENT)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(client.send(Request(host=f"127.0.0.1:{server.port}", target="/v1/chat/completions")))
        data, _ = receive_all(sock)
    client.receive_data(data)
    events = list(client.events())
    assert isinstance(events[0], RejectConnection) and events[0].status_code == 400
    body = b"".join(event.data for event in events if isinstance(event, RejectData))
    assert json.loads(body)["error"]["message"].startswith("/v1/chat/completions takes no WebSocket connection")
    no_traceback(server, log_file)


def test_the_refusal_is_in_the_request_log(logged):
    server, log_file = logged
    websocket_upgrade(server.port, "/health")
    assert any("/health" in line and " 400 " in line for line in log_file.read_text().splitlines())


def test_a_websocket_upgrade_for_another_host_is_refused_as_any_request(logged):
    server, log_file = logged
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall((f"GET /v1/models HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        data, _ = receive_all(sock)
    assert data.startswith(b"HTTP/1.1 403 ") and b"host_not_allowed" in data
    no_traceback(server, log_file)


@pytest.mark.parametrize("case", ["no key", "HTTP/1.0", "a body", "frames before the answer"])
def test_a_handshake_refused_by_hypercorn_ends_the_connection(logged, case):
    """Handshakes that hypercorn refuses itself, before or while the router answers (no key, not
    HTTP/1.1, data sent before the answer): a 400 and the end of the connection, which stayed open
    before, and nothing logged."""
    server, log_file = logged
    host = f"Host: 127.0.0.1:{server.port}\r\n"
    upgrade = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n")
    request = {
        "no key": f"GET /v1/models HTTP/1.1\r\n{host}Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "HTTP/1.0": f"GET /v1/models HTTP/1.0\r\n{upgrade}\r\n",
        "a body": f"GET /v1/models HTTP/1.1\r\n{host}{upgrade}Content-Length: 5\r\n\r\nhello",
        "frames before the answer": f"GET /v1/models HTTP/1.1\r\n{host}{upgrade}\r\n"
                                    "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",  # a masked "Hello"
    }[case]
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request.encode("latin-1"))
        data, ending = receive_all(sock)
    assert data.startswith(b"HTTP/1.1 400 "), data
    assert ending == "eof"
    assert httpx.get(f"{server.root}/health", timeout=10).status_code == 200
    no_traceback(server, log_file)


def test_an_h2c_upgrade_is_answered_over_http_1_1(logged):
    """`Upgrade: h2c` (on a request without a body, the one hypercorn switched) is ignored: the
    answer comes over HTTP/1.1, and the connection goes on with a whole stream."""
    server, log_file = logged
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall((f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nConnection: Upgrade, HTTP2-Settings"
                      "\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n").encode())
        data = b""
        while b'{"status":"ok"}' not in data:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 "), data
        body = json.dumps(chat_body("hi")).encode()
        sock.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                      f"Authorization: Bearer {server.api_key}\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"data: [DONE]" in data
    no_traceback(server, log_file)


def test_http2_prior_knowledge_is_refused(logged):
    """HTTP/2's preface gets HTTP/1.1's 505 with an OpenAI error, then the end of the connection."""
    server, log_file = logged
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(HTTP2_PREFACE + SETTINGS_FRAME)
        data, ending = receive_all(sock)
    assert data.startswith(b"HTTP/1.1 505 HTTP Version Not Supported\r\n"), data
    assert ending == "eof"
    assert json.loads(data.partition(b"\r\n\r\n")[2])["error"]["code"] == "http_version_not_supported"
    no_traceback(server, log_file)


def test_an_http2_client_is_refused_and_the_server_goes_on(logged):
    server, log_file = logged
    with httpx.Client(http1=False, http2=True, timeout=10) as client, pytest.raises(httpx.HTTPError):
        client.get(f"{server.root}/health")
    assert httpx.get(f"{server.root}/health", timeout=10).json() == {"status": "ok"}
    no_traceback(server, log_file)
