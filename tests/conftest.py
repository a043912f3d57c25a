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
from collections.abc import Callable
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

    def __init__(self, config: str | Path | None, *args: str, api_key: str = "test-key",
                 preexec_fn: Callable[[], None] | None = None):
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
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log, text=True,
                                        preexec_fn=preexec_fn)
        line = _readline(self.process, timeout=20)
        if not line.startswith("http://"):
            log = self.log()
            self.stop()
            raise RuntimeError(f"server did not start: {line!r}\n{log}")
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

    @property
    def admin_headers(self) -> dict[str, str]:
        """What the admin API needs: the key (when the configuration has one)."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def journal(self, session: str | None = None) -> list[dict[str, Any]]:
        params = {"session": session} if session else {}
        response = httpx.get(f"{self.root}/_mock/requests", params=params, headers=self.admin_headers, timeout=10)
        response.raise_for_status()
        return response.json()["data"]

    def reset(self, session: str | None = None) -> None:
        params = {"session": session} if session else {}
        httpx.post(f"{self.root}/_mock/reset", params=params, headers=self.admin_headers, json={},
                   timeout=10).raise_for_status()

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


class RawResponse:
    """What a raw socket saw: the status, headers, the body's SSE events, and how it ended."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body = b""
        self.terminated = False  # the chunked body ended with its zero-length chunk
        self.ending = ""  # "complete" | "eof" (FIN mid-body) | "reset" (RST) | "timeout"
        self.elapsed = 0.0

    @property
    def events(self) -> list[str]:
        return sse_events(self.body)


def raw_request(host: str, port: int, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, timeout: float = 10.0) -> RawResponse:
    """One HTTP/1.1 request over a plain socket, decoding the chunked body by hand so that the
    way the connection ended is visible (a dropped connection, a reset, a clean end)."""
    import socket
    import time

    payload = b"" if body is None else json.dumps(body).encode()
    given = {k.lower(): f"{k}: {v}" for k, v in (headers or {}).items()}  # these replace the defaults
    lines = [f"{method} {path} HTTP/1.1", given.pop("host", f"Host: {host}:{port}"),
             given.pop("content-length", f"Content-Length: {len(payload)}"),
             given.pop("content-type", "Content-Type: application/json"), *given.values()]
    result = RawResponse()
    started = time.monotonic()
    sock = socket.create_connection((host, port), timeout=timeout)
    buffer = b""

    def fill() -> bool:
        nonlocal buffer
        data = sock.recv(65536)
        if not data:
            return False
        buffer += data
        return True

    def until(marker: bytes) -> bytes | None:
        nonlocal buffer
        while marker not in buffer:
            if not fill():
                return None
        head, _, buffer = buffer.partition(marker)
        return head

    def exactly(count: int) -> bytes | None:
        nonlocal buffer
        while len(buffer) < count:
            if not fill():
                return None
        data, buffer = buffer[:count], buffer[count:]
        return data

    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        head = until(b"\r\n\r\n")
        if head is None:
            result.ending = "eof"
            return result
        status_line, *header_lines = head.decode("latin1").split("\r\n")
        result.status = int(status_line.split()[1])
        result.headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
        if result.headers.get("transfer-encoding") == "chunked":
            while True:
                size_line = until(b"\r\n")
                if size_line is None:
                    result.ending = "eof"
                    break
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    until(b"\r\n")
                    result.terminated, result.ending = True, "complete"
                    break
                chunk = exactly(size + 2)
                if chunk is None:
                    result.ending = "eof"
                    break
                result.body += chunk[:-2]
        else:
            length = int(result.headers.get("content-length", "0"))
            data = exactly(length)
            result.body = data if data is not None else buffer
            result.ending = "complete" if data is not None else "eof"
    except ConnectionResetError:
        result.ending = "reset"
    except TimeoutError:
        result.ending = "timeout"
    finally:
        result.elapsed = time.monotonic() - started
        sock.close()
    return result


FAILURE_KINDS = ("disconnect", "reset", "truncate", "hang", "malformed", "error_event")


def failure_rules(reply: str) -> str:
    """A `responses:` list with one rule per failure kind: the user message "fail:KIND" gets
    `reply`, cut by that failure after 3 chunks (a hang lasts 300 ms)."""
    return "responses:\n" + "".join(f"""
  - id: {kind}
    matcher: {{type: contains, messages: [{{role: user, content: "fail:{kind}"}}]}}
    reply: "{reply}"
    fail_after_chunks: 3
    failure: {kind}
""" + ("    hang_ms: 300\n" if kind == "hang" else "") for kind in FAILURE_KINDS)


def chat_body(text: str, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], "stream": stream, **extra}


# --- a real Redis, for the tests of shared state ----------------------------------------------

REDIS_REQUIRED = os.environ.get("OPENAI_MOCK_REQUIRE_REDIS") == "1"  # .ci/run: missing is a failure


def _redis_server_binary() -> str | None:
    """Debian's redis-server, installed when it is missing and this session may (as root with apt)."""
    import shutil

    found = shutil.which("redis-server")
    if found or not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        return found
    subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], capture_output=True, timeout=600)
    return shutil.which("redis-server")


class RedisServer:
    """A redis-server of the test session's own, on a free loopback port, without persistence."""

    def __init__(self, binary: str):
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._binary = binary
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        import socket
        import time

        self.process = subprocess.Popen(
            [self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--protected-mode", "yes"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture(scope="session")
def redis_server():
    binary = _redis_server_binary()
    if binary is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server) and could not be installed"
        if REDIS_REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    server = RedisServer(binary)
    yield server
    server.stop()
