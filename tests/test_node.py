"""The official Node SDK (npm `openai` 6.x, installed into tests/node by `nox -s tests`)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import NODE_DIR

CONFIG = """
apiKey: node-key
responses:
  - id: story
    matcher: {type: contains, messages: [{role: user, content: story}]}
    reply: Once upon a time, there was a brave developer.
  - id: cut
    matcher: {type: contains, messages: [{role: user, content: cut}]}
    reply: one two three four five six
    fail_after_chunks: 3
    failure: disconnect
"""


def node(**options) -> dict:
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "openai").is_dir():
        pytest.fail("the Node SDK is missing: run `nox -s tests` (it installs it with npm into tests/node)")
    completed = subprocess.run(["node", str(NODE_DIR / "chat.mjs"), json.dumps(options)],
                               capture_output=True, text=True, timeout=60, cwd=NODE_DIR)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture
def server(servers):
    return servers(CONFIG, api_key="node-key")


def test_node_streams_a_reply(server):
    result = node(baseURL=server.base_url, apiKey="node-key", content="Tell me a story", stream=True)
    assert "error" not in result, result
    assert result["content"] == "Once upon a time, there was a brave developer."
    chunks = result["chunks"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert len({c["id"] for c in chunks}) == 1


def test_node_gets_a_401_with_a_wrong_key(server):
    result = node(baseURL=server.base_url, apiKey="wrong-key", content="Tell me a story", maxRetries=0)
    error = result["error"]
    assert error["class"] == "AuthenticationError"
    assert error["status"] == 401
    assert error["code"] == "invalid_api_key"
    assert error["requestID"].startswith("req_")


def test_node_sees_an_error_when_the_connection_drops(server, session_id):
    result = node(baseURL=server.base_url, apiKey="node-key", content="cut", stream=True, session=session_id)
    assert len(result["chunks"]) == 3
    error = result["error"]
    assert error["message"] == "terminated"  # undici's TypeError, not wrapped by the SDK
    assert error["cause"] in ("UND_ERR_SOCKET", "other side closed")
    assert server.journal(session_id)[-1]["outcome"] == "failed:disconnect"
