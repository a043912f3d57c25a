"""`openai_mock.MockServer`: the mock in-process, for tests."""

from __future__ import annotations

import socket
import threading

import openai
import pytest
import trio

from openai_mock import ConfigError, MockServer

YAML = """
responses:
  - id: hi
    matcher: {type: contains, messages: [{role: user, content: hi}]}
    reply: hello from yaml
"""


def ask(client: openai.OpenAI, text: str = "hi") -> str:
    return client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": text}]).choices[0].message.content


def port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("openai-mock:")]


@pytest.mark.parametrize("kind", ["yaml text", "file", "folder", "dict"])
def test_each_kind_of_config(tmp_path, kind):
    if kind == "yaml text":
        config = YAML
    elif kind == "dict":
        config = {"responses": [{"id": "hi", "matcher": {"type": "contains", "messages": [
            {"role": "user", "content": "hi"}]}, "reply": "hello from yaml"}]}
    else:
        (tmp_path / "rules.yaml").write_text(YAML)
        config = tmp_path / "rules.yaml" if kind == "file" else tmp_path
    with MockServer(config) as mock:
        assert ask(mock.client()) == "hello from yaml"
        assert mock.base_url == f"http://127.0.0.1:{mock.port}/v1"


def test_bundled_scenarios_by_default():
    with MockServer() as mock:
        assert ask(mock.client(), "Tell me a story").startswith("Once upon a time")


def test_two_servers_at_once_then_stop_closes_each_port():
    with MockServer(YAML) as first, MockServer({"responses": [
            {"id": "other", "matcher": {"type": "any"}, "reply": "second server"}]}) as second:
        assert first.port != second.port
        assert ask(first.client()) == "hello from yaml"
        assert ask(second.client()) == "second server"
        assert len(server_threads()) == 2
        second.stop()
        assert port_is_closed(second.port)
        assert ask(first.client()) == "hello from yaml"
    assert port_is_closed(first.port)
    assert server_threads() == []


def test_a_bad_config_raises_with_its_place():
    with pytest.raises(ConfigError, match=r"<string>:3:5: unknown key `mesages` in a rule"):
        MockServer("responses:\n  - id: x\n    mesages: []\n")
    assert server_threads() == []


def test_requests_reset_and_replace():
    with MockServer(YAML) as mock:
        client = mock.client(max_retries=0)
        ask(client)
        with pytest.raises(openai.BadRequestError):
            ask(client, "zzz")
        entries = mock.requests()
        assert [(e["rule_id"], e["status"]) for e in entries] == [("hi", 200), (None, 400)]
        assert entries[0]["session"] == "default"
        mock.reset()
        assert mock.requests() == []
        mock.replace({"responses": [{"id": "new", "matcher": {"type": "any"}, "reply": "replaced"}]})
        assert ask(client, "anything") == "replaced"


def test_sessions_keep_their_own_journal():
    with MockServer(YAML) as mock:
        ask(mock.client("alice"))
        ask(mock.client("bob"))
        ask(mock.client("bob"))
        assert len(mock.requests("alice")) == 1
        assert len(mock.requests("bob")) == 2
        assert len(mock.requests()) == 3


def test_api_key_comes_from_the_config():
    with MockServer("apiKey: sk-secret\n" + YAML) as mock:
        assert mock.api_key == "sk-secret"
        assert ask(mock.client()) == "hello from yaml"
        with pytest.raises(openai.AuthenticationError):
            ask(mock.client(api_key="sk-wrong", max_retries=0))


def test_async_client_under_trio():
    with MockServer(YAML) as mock:
        async def main() -> str:
            client = mock.async_client()
            completion = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}])
            await client.close()
            return completion.choices[0].message.content

        assert trio.run(main) == "hello from yaml"


def test_stop_is_idempotent_and_a_server_starts_once():
    mock = MockServer(YAML).start()
    with pytest.raises(RuntimeError):
        mock.start()
    mock.stop()
    mock.stop()
    assert port_is_closed(mock.port)
