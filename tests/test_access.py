"""Who may reach the mock: the key on the admin API, foreign origins and hosts, simple requests,
and the warning of a server exposed without a key. Each request is what a browser page (or a
DNS-rebinding page) would send, written by hand."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from conftest import chat_body, raw_request

from openai_mock.http.access import Access
from openai_mock.scenario import load_text

KEY = "sk-admin-test"
RULES = """
responses:
  - id: hi
    matcher: {type: any}
    reply: hello there
"""
CONFIG = f"apiKey: {KEY}\n" + RULES
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json"}
YAML_BODY = b"responses:\n  - id: replaced\n    matcher: {type: any}\n    reply: replaced\n"
# every admin request, as (method, path, body)
ADMIN = [("GET", "/_mock/requests", None), ("GET", "/_mock/scenarios", None),
         ("POST", "/_mock/reset", b"{}"), ("PUT", "/_mock/scenarios", YAML_BODY)]


@pytest.fixture
def server(fresh_server):
    return fresh_server(CONFIG, api_key=KEY)


def rule_ids(server) -> list[str]:
    with server.http() as http:
        return [r["id"] for r in http.get("/_mock/scenarios", headers=AUTH).json()["data"]]


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN)
def test_admin_needs_the_key(server, method, path, body):
    with server.http() as http:
        for headers in ({}, {"Authorization": "Bearer wrong-key"}):
            response = http.request(method, path, content=body, headers={**JSON, **headers})
            assert response.status_code == 401
            assert error_of(response)["code"] == "invalid_api_key"
        assert http.request(method, path, content=body, headers={**JSON, **AUTH}).status_code == 200


def test_the_keyless_journal_leaks_no_prompt(server):
    server.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "secret plan"}])
    with server.http() as http:
        response = http.get("/_mock/requests")
    assert response.status_code == 401
    assert "secret plan" not in response.text


@pytest.mark.parametrize(("method", "path", "body"), ADMIN)
def test_a_foreign_origin_is_refused_on_the_admin_api(fresh_server, method, path, body):
    server = fresh_server(RULES)  # no key: the origin alone must be enough to refuse
    with server.http() as http:
        response = http.request(method, path, content=body,
                                headers={**JSON, "Origin": "https://attacker.example"})
    assert response.status_code == 403
    assert error_of(response)["code"] == "origin_not_allowed"
    assert not [h for h in response.headers if h.startswith("access-control-")]
    assert rule_ids(server) == ["hi"]


def test_admin_preflights_and_answers_carry_no_cors_by_default(fresh_server):
    server = fresh_server(RULES)
    with server.http() as http:
        preflight = http.options("/_mock/scenarios", headers={
            "Origin": "https://attacker.example", "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type"})
        plain = http.get("/_mock/scenarios")  # not from a browser: answered, but no CORS
        api = http.get("/v1/models", headers={"Origin": "https://attacker.example"})
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    assert plain.status_code == 200
    assert not [h for h in plain.headers if h.startswith("access-control-")]
    assert api.headers["access-control-allow-origin"] == "*"  # the API stays open to pages


def test_an_origin_listed_by_name_may_use_the_admin_api(fresh_server):
    app = "http://localhost:5173"
    server = fresh_server(f"cors: {{origins: ['{app}']}}\n" + RULES)
    with server.http() as http:
        preflight = http.options("/_mock/reset", headers={
            "Origin": app, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        reset = http.post("/_mock/reset", json={}, headers={"Origin": app})
        other = http.post("/_mock/reset", json={}, headers={"Origin": "http://localhost:8080"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == app
    assert reset.status_code == 200 and reset.headers["access-control-allow-origin"] == app
    assert other.status_code == 403


def test_a_star_origin_does_not_open_the_admin_api(fresh_server):
    server = fresh_server("cors: {origins: '*'}\n" + RULES)
    with server.http() as http:
        response = http.get("/_mock/requests", headers={"Origin": "https://attacker.example"})
    assert response.status_code == 403


@pytest.mark.parametrize("content_type", [None, "text/plain", "text/plain;charset=UTF-8",
                                          "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_simple_requests_cannot_change_the_admin_state(fresh_server, content_type):
    server = fresh_server(RULES)
    headers = {"Content-Type": content_type} if content_type else {}
    with server.http() as http:
        put = http.put("/_mock/scenarios", content=YAML_BODY, headers=headers)
        reset = http.post("/_mock/reset", content=b"", headers=headers)
    for response in (put, reset):
        assert response.status_code == 415
        assert error_of(response)["code"] == "unsupported_media_type"
    assert rule_ids(server) == ["hi"]


@pytest.mark.parametrize("content_type", ["application/yaml", "application/json; charset=utf-8",
                                          "text/yaml", "application/x-yaml"])
def test_json_and_yaml_bodies_are_accepted(fresh_server, content_type):
    server = fresh_server(RULES)
    with server.http() as http:
        response = http.put("/_mock/scenarios", content=YAML_BODY, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert rule_ids(server) == ["replaced"]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/health", None), ("GET", "/v1/models", None), ("POST", "/v1/chat/completions", chat_body("hi")),
    ("GET", "/_mock/requests", None), ("PUT", "/_mock/scenarios", None), ("OPTIONS", "/v1/chat/completions", None),
])
def test_a_foreign_host_is_refused_everywhere(fresh_server, method, path, body):
    server = fresh_server(RULES)
    response = raw_request("127.0.0.1", server.port, method, path, body,
                           headers={"Host": "rebound.attacker.example:" + str(server.port)})
    assert response.status == 403, response.body
    error = json.loads(response.body)["error"]
    assert error["code"] == "host_not_allowed"
    assert "allowed_hosts" in error["message"]
    assert rule_ids(server) == ["hi"]


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:{port}", "127.0.0.1:{port}", "127.0.0.2",
                                  "[::1]:{port}", "app.localhost:{port}", "localhost.:{port}"])
def test_loopback_hosts_are_answered(servers, host):
    server = servers(RULES)
    response = raw_request("127.0.0.1", server.port, "GET", "/health",
                           headers={"Host": host.format(port=server.port)})
    assert response.status == 200


def test_allowed_hosts_from_the_file_and_the_command_line(fresh_server):
    server = fresh_server("allowed_hosts: [mock, .svc.cluster.local]\n" + RULES, "--allowed-host", "gateway")
    answers = {}
    for host in ("mock", "MOCK:8080", "svc.cluster.local", "mock.ns.svc.cluster.local", "gateway",
                 "mocker", "evilsvc.cluster.local", "gateway.example"):
        answers[host] = raw_request("127.0.0.1", server.port, "GET", "/health", headers={"Host": host}).status
    assert answers == {"mock": 200, "MOCK:8080": 200, "svc.cluster.local": 200, "mock.ns.svc.cluster.local": 200,
                       "gateway": 200, "mocker": 403, "evilsvc.cluster.local": 403, "gateway.example": 403}


def test_a_star_allows_any_host(fresh_server):
    server = fresh_server("allowed_hosts: ['*']\n" + RULES)
    assert raw_request("127.0.0.1", server.port, "GET", "/health", headers={"Host": "anything.example"}).status == 200


def test_the_bound_host_and_the_arrival_address_are_allowed():
    # The address a connection arrived at and the --host given are this server's own names; a
    # rebinding page can only send a name of its own. (Binding a non-loopback address is not
    # possible on every test machine, hence the check itself here.)
    config = load_text(RULES)
    exposed = Access(config, bound_host="mock-box")
    assert exposed.host_allowed("mock-box:3000", "10.1.2.3")
    assert exposed.host_allowed("10.1.2.3:3000", "10.1.2.3")
    assert exposed.host_allowed("[fe80::1]:3000", "fe80::1%eth0")
    assert exposed.host_allowed("192.168.0.9", "::ffff:192.168.0.9")
    assert not exposed.host_allowed("10.1.2.4:3000", "10.1.2.3")
    assert not exposed.host_allowed("attacker.example:3000", "10.1.2.3")


def test_a_bad_allowed_host_is_reported_at_its_place(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("allowed_hosts: [mock, 'mock:3000', 'http://x']\n" + RULES)
    result = subprocess.run([sys.executable, "-m", "openai_mock", "check", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{bad}:1:23: 'mock:3000' is not a host name")


def test_exposing_the_mock_without_a_key_warns(tmp_path):
    config = tmp_path / "c.yaml"
    warnings = {}
    for name, text in (("keyless", RULES), ("keyed", CONFIG)):
        config.write_text(text)
        process = subprocess.Popen([sys.executable, "-m", "openai_mock", "serve", "--host", "0.0.0.0", "--port", "0",
                                    "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert process.stdout.readline().startswith("http://")
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=10)
        warnings[name] = stderr
    assert "warning: serving on 0.0.0.0 without an apiKey" in warnings["keyless"]
    assert "anyone who can reach this port" in warnings["keyless"]
    assert "warning" not in warnings["keyed"]


def test_a_loopback_server_does_not_warn(fresh_server):
    server = fresh_server(RULES)
    assert "warning" not in server.log()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/_mock/reset"])
def test_a_refused_request_leaves_its_connection_usable(server, path):
    # the refusal reads the body it refused: one left unread would make the server close the
    # connection, and a client reusing it would see a broken connection instead of an answer
    body = chat_body("hi", stream=False, user="x" * 2_000_000)  # more than one read of the socket
    with server.http() as http:
        sockets = set()
        for headers in ({}, AUTH, {}, AUTH):
            response = http.post(path, json=body, headers=headers)
            assert response.status_code == (200 if headers else 401)
            sockets.add(response.extensions["network_stream"].get_extra_info("socket").getsockname())
    assert len(sockets) == 1  # one connection for all four


def test_a_wrong_or_missing_key_names_the_configurations_apikey_and_where_it_is(server):
    """The 401 says which key the mock takes and where it is set, never what it is."""
    import openai

    wrong = openai.OpenAI(base_url=server.base_url, api_key="sk-wrong-key-1234", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        wrong.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    message = refused.value.body["message"]
    assert message.startswith("Incorrect API key provided: sk-**********1234. ")  # the real API's words first
    assert f"`apiKey` in its configuration ({server.config_path}:1:1)" in message
    assert KEY not in message
    with server.http() as http:
        missing = error_of(http.get("/_mock/requests"))["message"]
    assert missing.startswith("You didn't provide an API key.")
    assert f"`apiKey` in its configuration ({server.config_path}:1:1)" in missing
