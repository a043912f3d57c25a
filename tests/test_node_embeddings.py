"""Embeddings through the official Node SDK 6.x, which asks for base64 by default and returns an
empty list if floats come back instead (tests/node/embeddings.mjs)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import NODE_DIR

CONFIG = "apiKey: node-embeddings-key\nresponses: []\n"


def run_node(base_url: str, api_key: str) -> dict:
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "openai").is_dir():
        pytest.fail("the Node SDK is missing: run `nox -s tests` (it installs it with npm into tests/node), "
                    "or `npm install --prefix tests/node`")
    completed = subprocess.run(["node", str(NODE_DIR / "embeddings.mjs"), base_url, api_key],
                               capture_output=True, text=True, timeout=60, cwd=NODE_DIR)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_node_sdk_gets_the_vectors(servers):
    server = servers(CONFIG, api_key="node-embeddings-key")
    result = run_node(server.base_url, "node-embeddings-key")
    assert "error" not in result, result
    vectors = result["default"]["data"]
    assert [v["index"] for v in vectors] == [0, 1, 2]
    for vector in vectors:  # decoded from base64: a full vector, not the [] of a float answer
        assert vector["isArray"] and vector["length"] == 1536
        assert vector["norm"] == pytest.approx(1.0, abs=1e-5)
    assert result["sameTextSameVector"] and result["differentTextDifferentVector"]
    assert result["default"]["usage"]["prompt_tokens"] > 0
    assert result["float"]["data"][0]["length"] == 1536
    assert result["floatMatchesDefault"]  # float32 values: both forms give the same numbers
    assert result["short"]["data"][0]["length"] == 256


def test_node_sdk_agrees_with_python(servers):
    server = servers(CONFIG, api_key="node-embeddings-key")
    result = run_node(server.base_url, "node-embeddings-key")
    python = server.client().embeddings.create(model="text-embedding-3-small", input="The food was delicious")
    assert result["default"]["data"][0]["head"] == python.data[0].embedding[:4]
