"""The servers the bench compares, and how to start, probe and measure each.

- openai-mock: this project, `python -m openai_mock serve --config FILE --port N`.
- openai-mock-w2: the same with `--workers 2 --state redis://...`, on a redis-server that the
  bench starts itself (`Redis`).
- openai-mock-api: the npm package pinned in bench/node (Node, Express): what our users would
  otherwise pick. Its per-chunk delay is fixed at 50 ms (not configurable in 0.4.0).
- floor: bench/floor_app.py, a minimal quart-trio app on hypercorn; the least our framework
  choice costs.
- floor-hypercorn: bench/floor_hypercorn.py, a plain ASGI app on hypercorn: what hypercorn
  alone costs (openai-mock's generation endpoints are a plain ASGI app on it too).
- floor-trio, floor-h11: bench/floor_trio.py, trio servers with no framework (raw bytes, or
  h11 as hypercorn uses it): what one trio process can reach.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
# One word (role chunk + the word + closing chunk = 3 events): a stream's cost apart from its chunks.
SHORT_TEXT = "word1"
SHORT_EVENTS = 3


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
    workers: int = 1  # openai-mock's --workers; more than 1 needs `redis`
    redis: Redis | None = None  # the store of --state, once started (`Redis.start`)
    floor: list[str] = field(default_factory=lambda: ["floor_app.py"])  # a floor's script and options

    def argv(self, port: int) -> list[str]:
        if self.kind == "ours":
            argv = [sys.executable, "-m", "openai_mock", "serve", "--config", str(self.config), "--port", str(port)]
            if self.workers > 1:
                assert self.redis is not None and self.redis.url, "start the Redis first"
                # a prefix of its own per start: no state left over from the previous run
                argv += ["--workers", str(self.workers), "--state", self.redis.url,
                         "--state-prefix", f"bench-{port}:"]
            return argv
        if self.kind == "peer":
            return ["node", str(PEER_CLI), "--config", str(self.config), "--port", str(port)]
        return [sys.executable, str(BENCH / self.floor[0]), *self.floor[1:], "--port", str(port)]

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
        peer.available, peer.why_not = False, "skipped: node is not installed"
    elif not PEER_CLI.exists():
        peer.available, peer.why_not = False, "skipped: not installed (npm install --prefix bench/node)"
    workers = Target("openai-mock-w2", "ours", config=ours_config, workers=2, redis=Redis())
    if workers.redis is not None and workers.redis.binary is None:
        workers.available, workers.why_not = False, "skipped: redis-server not installed"
    elif importlib.util.find_spec("coredis") is None:
        workers.available, workers.why_not = False, "skipped: coredis not installed (pip install -e '.[redis]')"
    return {
        "openai-mock": Target("openai-mock", "ours", config=ours_config),
        "openai-mock-w2": workers,
        "openai-mock-api": peer,
        "floor": Target("floor", "floor"),
        "floor-hypercorn": Target("floor-hypercorn", "floor", floor=["floor_hypercorn.py"]),
        "floor-trio": Target("floor-trio", "floor", floor=["floor_trio.py"]),
        "floor-h11": Target("floor-h11", "floor", floor=["floor_trio.py", "--h11"]),
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
        if target.workers > 1 and target.redis is not None:
            target.redis.start()
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

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until the server has finished its start-up work (openai-mock imports its admin
        app in a thread once it listens; workers start theirs), so that the CPU measured next is
        the load's: until it uses under 2 clock ticks in 0.2 s, for at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        tick = 2 / os.sysconf("SC_CLK_TCK")
        before = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self.cpu_seconds()
            if now - before < tick:
                return
            before = now

    def pids(self) -> list[int]:
        """The server's processes: the one started, and its children (workers) and theirs."""
        return process_tree(self.pid)

    def status(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak resident set), in KiB, summed over the server's processes (for
        workers, the sum of each one's peak: an upper bound of the peak of the sum)."""
        figures = {"VmRSS": 0, "VmHWM": 0}
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/status") as file:
                    for line in file:
                        name, _, value = line.partition(":")
                        if name in figures:
                            figures[name] += int(value.split()[0])
            except OSError:
                pass  # gone meanwhile
        return figures

    def cpu_seconds(self) -> float:
        """CPU time of the server's processes: each one's own, and that of its children that have
        exited (so that a worker that died and was restarted still counts)."""
        return sum(self.cpu_by_process().values())

    def cpu_by_process(self) -> dict[int, float]:
        figures = {}
        for pid in self.pids():
            seconds = cpu_seconds(pid, children=True)
            if seconds is not None:
                figures[pid] = seconds
        return figures

    def errors_logged(self) -> list[str]:
        self.log.flush()
        text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines()
                if "Traceback" in line or "ERROR" in line or "Error" in line.split(":", 1)[0]]

    def stop(self) -> None:
        children = [pid for pid in self.pids() if pid != self.pid] if self.process.poll() is None else []
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in children:  # workers outliving their parent: stop them (they are ours)
            if cpu_seconds(pid) is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self.log.close()
        if self.target.workers > 1 and self.target.redis is not None:
            self.target.redis.flush()

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc/PID/task/*/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as file:
                    todo += [int(child) for child in file.read().split()]
            except OSError:
                pass
    return found


def cpu_seconds(pid: int, children: bool = False) -> float | None:
    """User + system CPU time of process `pid` (with `children`, plus that of its children that
    have exited and been waited for); None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time that every core of the machine spent busy since boot (/proc/stat), all processes."""
    with open("/proc/stat") as file:
        values = [int(v) for v in file.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (steal: the hypervisor's, not ours; guest
    # time is already in user)
    busy = sum(values[:7]) - values[3] - values[4]
    return busy / os.sysconf("SC_CLK_TCK")


class Redis:
    """A redis-server of the bench's own, started when a figure needs one: a free loopback port,
    no persistence (no RDB snapshots, no append-only file). Stopped at the end of the run."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.url = ""

    def start(self) -> None:
        if self.process is not None:
            return
        assert self.binary is not None
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--protected-mode", "yes"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while self.command(b"PING") != b"+PONG":
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)
        version = subprocess.run([self.binary, "--version"], capture_output=True, text=True).stdout.split()
        release = next((word[2:] for word in version if word.startswith("v=")), "?")
        print(f"  redis-server {release} started by the bench for openai-mock-w2: 127.0.0.1:{self.port}, "
              f"pid {self.process.pid}, no persistence (--save '' --appendonly no)", flush=True)

    def command(self, *words: bytes) -> bytes:
        """One command in RESP: a simple answer's line, or a bulk string's bytes (b"" if nobody
        answers)."""
        request = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                sock.sendall(request)
                answer = b""
                while b"\r\n" not in answer or (answer.startswith(b"$") and len(answer) < self._bulk_end(answer)):
                    data = sock.recv(65536)
                    if not data:
                        break
                    answer += data
        except OSError:
            return b""
        line, _, rest = answer.partition(b"\r\n")
        return rest[: self._bulk_end(answer) - len(line) - 4] if answer.startswith(b"$") else line

    @staticmethod
    def _bulk_end(answer: bytes) -> int:
        """Where a bulk string answer ends (its final CRLF included)."""
        line = answer.split(b"\r\n", 1)[0]
        return len(line) + 2 + max(int(line[1:]), 0) + 2

    def commands_processed(self) -> int:
        """How many commands it has run since it started (INFO stats)."""
        for line in self.command(b"INFO", b"stats").splitlines():
            if line.startswith(b"total_commands_processed:"):
                return int(line.split(b":")[1])
        return 0

    def flush(self) -> None:
        """Empty it between two servers, so that each starts on an empty store."""
        if self.process is not None and self.process.poll() is None:
            self.command(b"FLUSHALL")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def cpu_seconds(self) -> float:
        return (cpu_seconds(self.pid) or 0.0) if self.pid is not None else 0.0

    def peak_rss_kib(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/status") as file:
                for line in file:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Meter:
    """CPU time used between `Meter(server)` and `.read()`: the server's processes (for workers:
    the parent and every worker, apart), its redis-server, and the whole machine."""

    def __init__(self, server: Running):
        self.server = server
        self.redis = server.target.redis if server.target.workers > 1 else None
        self.before = server.cpu_by_process()
        self.redis_before = self.redis.cpu_seconds() if self.redis else 0.0
        self.commands_before = self.redis.commands_processed() if self.redis else 0
        self.busy_before = machine_busy_seconds()

    def read(self) -> dict[str, Any]:
        after = self.server.cpu_by_process()
        by_process = {pid: seconds - self.before.get(pid, 0.0) for pid, seconds in after.items()}
        return {
            # (a worker that died meanwhile is in its parent's time of exited children)
            "server": sum(after.values()) - sum(self.before.values()),
            "parent": by_process.get(self.server.pid, 0.0),
            "by_process": by_process,
            "redis": self.redis.cpu_seconds() - self.redis_before if self.redis else None,
            "redis_commands": self.redis.commands_processed() - self.commands_before if self.redis else None,
            "machine": machine_busy_seconds() - self.busy_before,
        }
