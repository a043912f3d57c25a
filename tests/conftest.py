"""Shared fixtures: the real server, started with the real CLI on a free loopback port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "tests" / "data" / "seed"
NODE_DIR = ROOT / "tests" / "node"


class RunningServer:
    """`openai-mock serve` in a subprocess, and handy ways to talk to it."""

    def __init__(self, config: str | Path | None, *args: str, api_key: str = "test-key"):
        self.api_key = api_key
        self._tmp = tempfile.TemporaryDirectory(prefix="openai-mock-test-")
        self.log_path = Path(self._tmp.name) / "server.log"
        command = [sys.executable, "-m", "openai_mock", "serve", "--port", "0", *args]
        if config is not None:
            if isinstance(config, str) and not os.path.exists(config):
                path = Path(self._tmp.name) / "scenarios.yaml"
                path.write_text(textwrap.dedent(config))
                config = path
            command += ["--config", str(config)]
        self.config_path = Path(config) if config is not None else None
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log, text=True)
        line = _readline(self.process, timeout=20)
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"server did not start: {line!r}\n{self.log()}")
        self.base_url = line.strip()
        self.root = self.base_url.removesuffix("/v1")
        self.port = int(self.root.rsplit(":", 1)[1])

    def client(self, session: str | None = None, **options: Any) -> openai.OpenAI:
        headers = {"X-Mock-Session": session} if session else {}
        return openai.OpenAI(base_url=self.base_url, api_key=self.api_key, default_headers=headers, **options)

    def async_client(self, session: str | None = None, **options: Any) -> openai.AsyncOpenAI:
        headers = {"X-Mock-Session": session} if session else {}
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, default_headers=headers, **options)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.root, timeout=10)

    def journal(self, session: str | None = None) -> list[dict[str, Any]]:
        params = {"session": session} if session else {}
        return httpx.get(f"{self.root}/_mock/requests", params=params, timeout=10).json()["data"]

    def reset(self, session: str | None = None) -> None:
        params = {"session": session} if session else {}
        httpx.post(f"{self.root}/_mock/reset", params=params, timeout=10).raise_for_status()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        self._log.close()
        self._tmp.cleanup()


def _readline(process: subprocess.Popen, timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else ""


@pytest.fixture(scope="session")
def servers():
    """Start servers by configuration, once per test run; `servers(config, *args)`."""
    running: dict[tuple, RunningServer] = {}

    def start(config: str | Path | None, *args: str, api_key: str = "test-key") -> RunningServer:
        key = (str(config), args, api_key)
        if key not in running or running[key].process.poll() is not None:
            running[key] = RunningServer(config, *args, api_key=api_key)
        return running[key]

    yield start
    for server in running.values():
        server.stop()


@pytest.fixture
def fresh_server():
    """A server of this test's own, stopped when the test ends."""
    started: list[RunningServer] = []

    def start(config: str | Path | None, *args: str, **kwargs: Any) -> RunningServer:
        server = RunningServer(config, *args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def session_id(request) -> str:
    """A mock session of this test's own: its step counters and journal are its alone."""
    return f"{request.node.name}-{uuid.uuid4().hex[:8]}"


def sse_events(raw: bytes) -> list[str]:
    """The data of every SSE event in a raw body, in order."""
    events = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [line[5:].lstrip() for line in block.split(b"\n") if line.startswith(b"data:")]
        if lines:
            events.append(b"\n".join(lines).decode())
    return events


def data_chunks(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(e) for e in sse_events(raw) if e != "[DONE]"]
