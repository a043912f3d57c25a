"""The three servers the bench compares, and how to start, probe and measure each.

- openai-mock: this project, `python -m openai_mock serve --config FILE --port N`.
- openai-mock-api: the npm package pinned in bench/node (Node, Express): what our users would
  otherwise pick. Its per-chunk delay is fixed at 50 ms (not configurable in 0.4.0).
- floor: bench/floor_app.py, a minimal quart-trio app on hypercorn; the least our framework
  choice costs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from loadgen import Response, http_request, raise_fd_limit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEER_CLI = BENCH / "node" / "node_modules" / "openai-mock-api" / "dist" / "cli.js"

API_KEY = "bench-key"
MODEL = "gpt-4o-mini"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}

# The non-stream request of the throughput figure: the same bytes to every server.
PING = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "ping"}]},
                  separators=(",", ":"))

# Streamed replies: 30 words for delay fidelity (role chunk + 30 words + closing chunk = 32
# `data:` events, 31 gaps); 8 words for concurrency (10 events).
FIDELITY_TEXT = " ".join(f"word{n}" for n in range(1, 31))
CONCURRENCY_TEXT = " ".join(f"word{n}" for n in range(1, 9))
FIDELITY_EVENTS = 32
CONCURRENCY_EVENTS = 10


def scenario_yaml(streams: dict[str, tuple[str, int | None]], peer: bool) -> str:
    """The configuration: a `ping` rule, and one streamed rule per name (`text`, `delay_ms`).
    The peer gets the same rules without our behaviour keys (it has none)."""
    lines = [f"apiKey: {API_KEY}", "responses:",
             "  - id: ping",
             "    messages:",
             "      - {role: user, content: ping}",
             "      - {role: assistant, content: pong}"]
    for name, (text, delay_ms) in streams.items():
        lines += [f"  - id: {name}",
                  "    messages:",
                  f"      - {{role: user, content: {name}}}",
                  f"      - {{role: assistant, content: \"{text}\"}}"]
        if not peer and delay_ms is not None:
            lines += [f"    delay_ms: {delay_ms}", "    chunking: word"]
    return "\n".join(lines) + "\n"


@dataclass
class Target:
    name: str
    kind: str  # "ours" | "peer" | "floor"
    available: bool = True
    why_not: str = ""
    config: Path | None = None  # the scenario file (openai-mock, openai-mock-api)
    fixed_delay_ms: float | None = None  # a delay between chunks that cannot be configured

    def argv(self, port: int) -> list[str]:
        if self.kind == "ours":
            return [sys.executable, "-m", "openai_mock", "serve", "--config", str(self.config),
                    "--port", str(port)]
        if self.kind == "peer":
            return ["node", str(PEER_CLI), "--config", str(self.config), "--port", str(port)]
        return [sys.executable, str(BENCH / "floor_app.py"), "--port", str(port)]

    def ping_request(self) -> bytes:
        return http_request("POST", "/v1/chat/completions", PING.encode(), HEADERS)

    def ready_request(self) -> bytes:
        """What counts as ready: our `GET /health`; the others' first chat completion."""
        if self.kind == "ours":
            return http_request("GET", "/health")
        return self.ping_request()

    def stream_request(self, rule: str, events: int, delay_ms: int) -> bytes:
        if self.kind == "floor":
            return http_request("POST", f"/stream/{events}/{delay_ms}", b"{}", HEADERS)
        body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": rule}],
                           "stream": True}, separators=(",", ":"))
        return http_request("POST", "/v1/chat/completions", body.encode(), HEADERS)

    def delayed_gaps(self, events: int) -> range:
        """Which gaps between consecutive `data:` events carry the configured delay. The peer
        sends its role chunk and first word back to back, then waits after every word."""
        if self.kind == "peer":
            return range(1, events - 1)
        return range(0, events - 1)


def targets(workdir: Path, streams: dict[str, tuple[str, int | None]]) -> dict[str, Target]:
    ours_config = workdir / "openai-mock.yaml"
    ours_config.write_text(scenario_yaml(streams, peer=False))
    peer_config = workdir / "openai-mock-api.yaml"
    peer_config.write_text(scenario_yaml(streams, peer=True))
    peer = Target("openai-mock-api", "peer", config=peer_config, fixed_delay_ms=50)
    if shutil.which("node") is None:
        peer.available, peer.why_not = False, "node is not installed"
    elif not PEER_CLI.exists():
        peer.available, peer.why_not = False, "not installed: npm install --prefix bench/node"
    return {
        "openai-mock": Target("openai-mock", "ours", config=ours_config),
        "openai-mock-api": peer,
        "floor": Target("floor", "floor"),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def exchange(port: int, request: bytes, timeout: float = 5.0, head_only: bool = False) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body). With `head_only`, hang up once the
    status is known. Raises OSError when nobody listens."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        response = Response(keep_body=True)
        while not response.complete and not (head_only and response.status):
            data = sock.recv(65536)
            if not data:
                response.eof()
                break
            response.feed(data, time.monotonic())
        return response.status, b"".join(response.chunks or ())


class Running:
    """A started server process: its port, log, and /proc figures."""

    def __init__(self, target: Target, workdir: Path):
        raise_fd_limit()  # inherited by the server: 10,000 streams need 10,000 sockets
        self.target = target
        self.port = free_port()
        self.log_path = workdir / f"{target.name}.{self.port}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        # the peer logs every request on stdout: that goes nowhere; errors go to the log
        stdout = subprocess.DEVNULL if target.kind == "peer" else self.log
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # Python caches compiled modules by default, and an installed package ships them. Some
        # machines (this project's CI among them) turn that off, which makes every start of an
        # editable install compile the project again: a cost no user's installed copy pays.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.started = time.monotonic()
        self.process = subprocess.Popen(target.argv(self.port), stdout=stdout, stderr=self.log,
                                        stdin=subprocess.DEVNULL, cwd=ROOT, env=env)
        self.ready_after: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, request: bytes | None = None, timeout: float = 30.0) -> float:
        """Seconds from process start to the first successful (HTTP 200) `request`."""
        request = request or self.target.ready_request()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.target.name} exited with {self.process.returncode}:\n"
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                status, _ = exchange(self.port, request, timeout=timeout)
            except OSError:
                status = 0
            now = time.monotonic()
            if status == 200:
                self.ready_after = now - self.started
                return self.ready_after
            if now - self.started > timeout:
                raise RuntimeError(f"{self.target.name} not ready after {timeout} s")
            time.sleep(0.002)

    def status(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak resident set), in KiB."""
        figures = {}
        with open(f"/proc/{self.pid}/status") as file:
            for line in file:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    figures[name] = int(value.split()[0])
        return figures

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def errors_logged(self) -> list[str]:
        self.log.flush()
        text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines()
                if "Traceback" in line or "ERROR" in line or "Error" in line.split(":", 1)[0]]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
