"""Headers, CORS, health, admin endpoints and seeded ids, as a client sees them on the wire."""

from __future__ import annotations

import re

import pytest
from conftest import chat_body, raw_request

CONFIG = """
apiKey: sk-test
responses:
  - id: hi
    matcher: {type: contains, messages: [{role: user, content: hi}]}
    reply: hello there
"""

AUTH = {"Authorization": "Bearer sk-test"}


@pytest.fixture
def server(servers):
    return servers(CONFIG, api_key="sk-test")


def test_response_headers_as_the_real_api_sends_them(server):
    with server.http() as http:
        plain = http.post("/v1/chat/completions", json=chat_body("hi", stream=False), headers=AUTH)
        streamed = http.post("/v1/chat/completions", json=chat_body("hi"), headers=AUTH)
    for response in (plain, streamed):
        assert re.fullmatch(r"req_[0-9a-f]{32}", response.headers["x-request-id"])
        assert response.headers["openai-version"] == "2020-10-01"
        assert response.headers["openai-processing-ms"].isdigit()
    assert plain.headers["content-type"] == "application/json"
    assert streamed.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert plain.headers["x-request-id"] != streamed.headers["x-request-id"]


def test_every_answer_carries_the_current_date(server):
    import email.utils
    import time

    with server.http() as http:
        for _ in range(3):  # the date is formatted once a second: it must still move on
            before = time.time()
            response = http.post("/v1/chat/completions", json=chat_body("hi", stream=False), headers=AUTH)
            after = time.time()
            date = response.headers["date"]
            assert re.fullmatch(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT", date)
            sent = email.utils.parsedate_to_datetime(date).timestamp()
            assert int(before) <= sent <= after  # (to the second, formatted after `before`)
            time.sleep(0.6)


def test_the_sdk_sees_the_request_id(server):
    completion = server.client().chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "hi"}])
    assert completion.request_id == completion.headers["x-request-id"]
    entry = server.journal()[-1]
    assert entry["id"] == completion.request_id


def test_stream_ends_with_done_then_the_body_closes(server):
    response = raw_request("127.0.0.1", server.port, "POST", "/v1/chat/completions", chat_body("hi"), AUTH)
    assert response.events[-1] == "[DONE]"
    assert response.terminated
    assert response.body.endswith(b"data: [DONE]\n\n")


def test_cors_preflight_needs_no_key(server):
    with server.http() as http:
        response = http.options("/v1/chat/completions", headers={
            "Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os"})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "authorization, content-type, x-stainless-os"


def test_cross_origin_responses_carry_cors_headers(server):
    with server.http() as http:
        ok = http.post("/v1/chat/completions", json=chat_body("hi", stream=False),
                       headers={**AUTH, "Origin": "http://localhost:5173"})
        refused = http.post("/v1/chat/completions", json=chat_body("hi", stream=False),
                            headers={"Origin": "http://localhost:5173"})
    for response in (ok, refused):
        assert response.headers["access-control-allow-origin"] == "*"
        assert "x-request-id" in response.headers["access-control-expose-headers"]
    assert refused.status_code == 401


def test_cors_origins_narrow_the_allowed_origins(servers):
    server = servers("cors: {origins: ['http://app.example']}\n" + CONFIG.split("\n", 2)[2])
    with server.http() as http:
        allowed = http.get("/v1/models", headers={"Origin": "http://app.example"})
        other = http.get("/v1/models", headers={"Origin": "http://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "http://app.example"
    assert "access-control-allow-origin" not in other.headers
    assert "Origin" in other.headers["vary"]


def test_health_needs_no_key_and_admin_needs_it(server):
    with server.http() as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/_mock/scenarios").status_code == 401
        scenarios = http.get("/_mock/scenarios", headers=AUTH).json()
        assert scenarios["object"] == "list"
        (rule,) = scenarios["data"]
        assert (rule["id"], rule["form"], rule["line"]) == ("hi", "matcher", 4)
        assert rule["file"].endswith("scenarios.yaml")
        assert http.get("/_mock/requests", headers=AUTH).status_code == 200
        assert http.get("/v1/models").status_code == 401


def test_journal_entries_have_the_documented_fields(server, session_id):
    server.client(session_id).chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    (entry,) = server.journal(session_id)
    assert {"id", "time", "method", "path", "session", "rule_id", "step", "status", "stream",
            "chunks_sent", "outcome", "duration_ms"} <= set(entry)
    assert (entry["method"], entry["path"], entry["session"], entry["rule_id"]) == (
        "POST", "/v1/chat/completions", session_id, "hi")
    assert (entry["step"], entry["status"], entry["stream"], entry["outcome"]) == (None, 200, False, "completed")
    assert entry["body"]["messages"] == [{"role": "user", "content": "hi"}]
    assert isinstance(entry["time"], float) and entry["duration_ms"] >= 0


def test_put_scenarios_replaces_the_configuration(fresh_server, session_id):
    server = fresh_server(CONFIG, api_key="sk-test")
    client = server.client(session_id)
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    with server.http() as http:
        yaml = {**AUTH, "Content-Type": "application/yaml"}
        bad = http.put("/_mock/scenarios", content=b"responses:\n  - id: x\n    mesages: []\n", headers=yaml)
        assert bad.status_code == 400
        assert "<PUT /_mock/scenarios>:3:5: unknown key `mesages`" in bad.json()["error"]["message"]
        assert client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content == "hello there"
        good = http.put("/_mock/scenarios", headers={**AUTH, "Content-Type": "application/json"},
                        content=b'{"responses": [{"id": "new", "matcher": {"type": "any"}, "reply": "new reply"}]}')
        assert good.status_code == 200, good.text
        assert [r["id"] for r in good.json()["data"]] == ["new"]
    # the new configuration has no apiKey: any key works now
    answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "anything"}])
    assert answer.choices[0].message.content == "new reply"
    assert len(server.journal(session_id)) == 3  # the journal is kept


def test_seed_makes_ids_reproducible_across_restarts(fresh_server):
    config = "seed: 42\n" + CONFIG

    def run() -> list[tuple[str, str]]:
        server = fresh_server(config, api_key="sk-test")
        seen = []
        for stream in (False, True, False):
            response = server.client().chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=stream)
            parsed = response.parse()
            first = parsed if not stream else next(iter(parsed))
            seen.append((response.headers["x-request-id"], first.id))
        server.stop()
        return seen

    first, second = run(), run()
    assert first == second
    assert len({request_id for request_id, _ in first}) == 3


def test_without_a_seed_ids_differ(server):
    ids = {server.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).id
           for _ in range(3)}
    assert len(ids) == 3


def test_bad_requests_never_500(server):
    bodies = [b"", b"null", b"[]", b'"text"', b"{", b"\xff\xfe", b'{"model": 5}', b'{"model": "m", "messages": {}}',
              b'{"model": "m", "messages": [null]}', b'{"model": "m", "messages": [{"role": "user", "content": [1]}]}',
              b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": true}}',
              b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 9}',
              b'{"model": "m", "messages": [{"role": "assistant"}]}']
    with server.http() as http:
        for body in bodies:
            response = http.post("/v1/chat/completions", content=body, headers=AUTH)
            assert response.status_code == 400, (body, response.text)
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        for method, path in [("PUT", "/v1/models"), ("DELETE", "/v1/chat/completions"), ("GET", "/v1"),
                             ("POST", "/v1/nope/deeper"), ("PATCH", "/health")]:
            response = http.request(method, path, headers=AUTH)
            assert response.status_code in (404, 405), (method, path)
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in server.log()


def test_an_http_10_stream_ends_by_closing_the_connection(server):
    import json
    import socket

    body = json.dumps(chat_body("hi")).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.0\r\nAuthorization: Bearer sk-test\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
        received = b""
        while data := sock.recv(65536):  # a timeout here would mean the body never ended
            received += data
    head, _, payload = received.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert payload.endswith(b"data: [DONE]\n\n")
    assert payload.count(b"data: {") >= 3
