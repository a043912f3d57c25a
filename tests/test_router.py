"""The one way in: every path of the table answers its methods, and 404, 405, 408 and 413 are
the same answers wherever they come from (the router, or the admin API's Quart app)."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from conftest import chat_body, raw_request

from openai_mock.http.endpoints import PATHS, PREFIXES

CONFIG = """
responses:
  - id: hi
    matcher: {type: any}
    reply: hello there
"""


@pytest.fixture
def server(servers):
    return servers(CONFIG)


def example_paths() -> list[tuple[str, dict]]:
    """Every path of the table, with the prefixed ones filled in."""
    found = [(path, methods) for path, methods in PATHS.items()]
    found += [(prefix + "an-id", methods) for prefix, (methods, _) in PREFIXES.items()]
    return found


def test_the_table_covers_every_api_path():
    names = {endpoint.name for _, methods in example_paths() for endpoint in methods.values()}
    assert names == {"chat", "responses", "completions", "moderations", "embeddings", "models", "model",
                     "retrieve response", "delete response", "health"}


@pytest.mark.parametrize(("path", "methods"), example_paths(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_method_the_path_does_not_serve_is_405_with_allow(server, path, methods):
    wrong = next(m for m in ("PATCH", "PUT", "POST", "GET") if m not in methods)
    response = httpx.request(wrong, server.root + path, json={}, headers={"Authorization": "Bearer k"}, timeout=10)
    assert response.status_code == 405
    assert response.headers["allow"] == ", ".join(sorted(methods))
    error = response.json()["error"]
    assert error["message"] == f"Invalid method for URL ({wrong} {path}): use {response.headers['allow']}"
    assert set(error) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("path", ["/v1/nothing", "/v1/responses/resp_1/input_items", "/", "/_mock/nothing"])
def test_unknown_paths_are_404_alike_on_both_layers(server, path):
    response = httpx.get(server.root + path, timeout=10)
    assert response.status_code == 404
    assert response.json() == {"error": {"message": f"Invalid URL (GET {path})", "type": "invalid_request_error",
                                         "param": None, "code": None}}


def test_a_base_url_without_v1_gets_the_fix_in_its_404(server):
    import openai

    client = openai.OpenAI(base_url=server.root, api_key="k", max_retries=0)  # (the /v1 forgotten)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["message"] == (
        "Invalid URL (POST /chat/completions): the API is served under /v1 (POST /v1/chat/completions); check "
        'that the client\'s base_url ends with /v1: base_url="http://HOST:PORT/v1"')
    twice = httpx.get(server.root + "/v1/v1/models", timeout=10).json()["error"]["message"]
    assert twice.startswith("Invalid URL (GET /v1/v1/models): the API is served under /v1 (GET /v1/models);")
    assert "ends with /v1 once" in twice


def test_head_health_has_no_body(server):
    response = raw_request("127.0.0.1", server.port, "HEAD", "/health")
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    with httpx.Client(base_url=server.root, timeout=10) as http:  # and the connection goes on
        assert http.head("/health").status_code == 200
        assert http.get("/health").json() == {"status": "ok"}


def test_models_and_stored_responses_answer_through_the_table(server, session_id):
    client = server.client(session_id)
    assert "gpt-4o" in [m.id for m in client.models.list()]
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    created = client.responses.create(model="gpt-5", input="hi")
    assert client.responses.retrieve(created.id).output_text == "hello there"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings", "/_mock/scenarios"])
def test_a_body_that_stalls_gets_408(fresh_server, path):
    server = fresh_server(CONFIG, "--body-timeout", "0.5")
    method = "PUT" if path.startswith("/_mock") else "POST"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: 100\r\n\r\n{".encode())
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert time.monotonic() - started < 8  # half a second, on a loaded machine


def test_a_body_over_the_limit_is_413_before_it_is_read(fresh_server):
    server = fresh_server(CONFIG, "--max-body-size", "1000")
    big = chat_body("x" * 2000)
    for path in ("/v1/chat/completions", "/v1/embeddings"):
        response = httpx.post(server.root + path, json=big, timeout=10)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
    admin = httpx.put(server.root + "/_mock/scenarios", content=b"#" * 2000,
                      headers={"Content-Type": "application/yaml"}, timeout=10)
    assert admin.status_code == 413
    assert admin.json()["error"]["message"] == "Request body too large: the limit is 1000 bytes."
