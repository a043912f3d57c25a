"""openai-mock's benchmark: figures, with ratios against baselines measured in the same run.

    python bench/run.py [--quick] [--only throughput|ready|fidelity|concurrency|streams|fixed]
                        [--server openai-mock|openai-mock-w2|openai-mock-api|floor|floor-hypercorn|
                                  floor-trio|floor-h11]
                        [--loadgen auto|wrk|python]

Prints one table per figure (see bench/README.md for what each means and the targets) and a
summary against the targets of PERFORMANCE.md; writes the same figures as JSON to
bench/results/last.json. Asserts nothing: single runs vary by about ±10% on a shared machine,
so read ratios taken in one run, never absolute figures from different runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import raise_fd_limit, run_workers, stream_worker, throughput_worker  # noqa: E402
from servers import (  # noqa: E402
    API_KEY,
    BENCH,
    CONCURRENCY_EVENTS,
    CONCURRENCY_TEXT,
    FIDELITY_EVENTS,
    FIDELITY_TEXT,
    PEER_CLI,
    PING,
    ROOT,
    SHORT_EVENTS,
    SHORT_TEXT,
    Meter,
    Running,
    Target,
    exchange,
    targets,
)

SECTIONS = ("throughput", "ready", "fidelity", "concurrency", "streams", "fixed")
ORDER = ("openai-mock", "openai-mock-api", "floor")
# which servers take part in which figure, in this order
TAKE_PART = {
    "throughput": ("openai-mock", "openai-mock-w2", "openai-mock-api", "floor", "floor-hypercorn"),
    "ready": ORDER,
    "fidelity": ORDER,
    "concurrency": ORDER,
    "streams": ("openai-mock", "openai-mock-w2", "openai-mock-api", "floor-trio", "floor-h11"),
    "fixed": ("openai-mock", "openai-mock-api", "floor-hypercorn", "floor-trio", "floor-h11"),
}
SERVERS = ("openai-mock", "openai-mock-w2", "openai-mock-api", "floor", "floor-hypercorn", "floor-trio", "floor-h11")
STREAM_DELAY_MS = 50  # figure 5: openai-mock-api's fixed delay, so that it takes part


@dataclass(frozen=True)
class Scale:
    duration: int  # seconds of each throughput run
    rounds: int  # throughput runs per server, interleaved
    warmup: int  # seconds of load before them, not counted
    connections: int
    ready_runs: int
    fidelity_streams: int
    fidelity_rate: float  # new streams a second, all client processes together
    concurrency_streams: int
    concurrency_delay_ms: int
    concurrency_rate: float
    clients: int  # load generator processes for the stream figures
    streams: tuple[tuple[int, float], ...]  # figure 5: (streams, opened a second), one table each


FULL = Scale(duration=5, rounds=3, warmup=2, connections=32, ready_runs=7, fidelity_streams=1000, fidelity_rate=5000,
             concurrency_streams=10_000, concurrency_delay_ms=1000, concurrency_rate=2000, clients=2,
             streams=((1000, 1000), (10_000, 1000), (1000, 200)))
QUICK = Scale(duration=1, rounds=1, warmup=1, connections=32, ready_runs=3, fidelity_streams=200, fidelity_rate=5000,
              concurrency_streams=500, concurrency_delay_ms=200, concurrency_rate=2000, clients=2,
              streams=((200, 1000), (1000, 1000), (200, 200)))


# --- printing ---------------------------------------------------------------------------------

def table(title: str, header: list[str], rows: list[list[Any]], notes: list[str] = ()) -> None:
    """A row shorter than the header (a server that did not run: name, why) spans the columns."""
    cells = [[str(c) for c in row] for row in rows]
    full = [r for r in cells if len(r) == len(header)]
    widths = [max(len(h), *(len(r[i]) for r in full)) if full else len(h) for i, h in enumerate(header)]
    widths[0] = max(widths[0], *(len(r[0]) for r in cells)) if cells else widths[0]
    print(f"\n{title}")
    print("  " + "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
    print("  " + "  ".join("-" * w for w in widths))
    for row in cells:
        if len(row) < len(header):
            print("  " + "  ".join([row[0].ljust(widths[0]), *row[1:]]))
            continue
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    for note in notes:
        print(f"  {note}")
    sys.stdout.flush()


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f} MiB"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


# --- 1. non-stream throughput ---------------------------------------------------------------

def wrk_script(workdir: Path) -> Path:
    path = workdir / "post.lua"
    path.write_text(
        "-- One chat completion: the same request to every server (bench/README.md).\n"
        'wrk.method = "POST"\n'
        f"wrk.body = '{PING}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {API_KEY}"\n')
    return path


def _seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def run_wrk(port: int, seconds: int, connections: int, script: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}/v1/chat/completions"],
        capture_output=True, text=True, check=True).stdout
    figures: dict[str, Any] = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    figures["requests"] = total
    figures["bad"] = int(non2xx.group(1)) if non2xx else 0
    figures["errors"] = sum(map(int, errors.groups())) if errors else 0
    for p in ("50", "99"):
        found = re.search(rf"^\s+{p}%\s+(\S+)", out, re.M)
        figures[f"p{p}"] = _seconds(found.group(1)) if found else None
    return figures


def run_python_load(port: int, request: bytes, seconds: float, connections: int) -> dict[str, Any]:
    processes = 2
    jobs = [dict(host="127.0.0.1", port=port, request=request, connections=connections // processes,
                 duration=seconds) for _ in range(processes)]
    results = run_workers(throughput_worker, jobs, timeout=seconds + 60)
    ok = sum(r["ok"] for r in results)
    elapsed = statistics.mean(r["elapsed"] for r in results)
    latencies = [x for r in results for x in r["latencies"]]
    return {"rps": ok / elapsed, "requests": ok + sum(r["bad"] for r in results), "bad": sum(r["bad"] for r in results),
            "errors": sum(r["errors"] for r in results), "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99)}


def throughput(all_targets: dict[str, Target], scale: Scale, workdir: Path, tool: str,
               only: list[str]) -> dict[str, Any]:
    """All servers run side by side; each round loads each of them in turn, so that a change in
    the machine's load (other work on it) falls on every server alike. Median of the rounds."""
    script = wrk_script(workdir)
    notes: list[str] = []
    skipped: list[list[str]] = []
    running: dict[str, Running] = {}
    rounds: dict[str, list[dict[str, Any]]] = {}
    cpu: dict[str, float] = {}
    redis_cpu: dict[str, float] = {}
    redis_commands: dict[str, int] = {}
    by_process: dict[str, dict[int, float]] = {}
    try:
        for name, target in _taking_part(TAKE_PART["throughput"], all_targets, only, skipped):
            running[name] = Running(target, workdir)
        for name, server in running.items():
            server.wait_ready()
            status, body = exchange(server.port, server.target.ping_request())
            if status != 200 or b"pong" not in body:
                raise RuntimeError(f"{name} answered the ping with {status}: {body[:300]!r}")

        def load_once(server: Running, seconds: int) -> dict[str, Any]:
            if tool == "wrk":
                return run_wrk(server.port, seconds, scale.connections, script)
            return run_python_load(server.port, server.target.ping_request(), seconds, scale.connections)

        for name, server in running.items():
            progress(f"throughput: warming up {name}")
            load_once(server, scale.warmup)
            server.settle()
        for n in range(scale.rounds):
            for name, server in running.items():
                progress(f"throughput: round {n + 1} of {scale.rounds}, {name}")
                meter = Meter(server)
                rounds.setdefault(name, []).append(load_once(server, scale.duration))
                used = meter.read()
                cpu[name] = cpu.get(name, 0.0) + used["server"]
                redis_cpu[name] = redis_cpu.get(name, 0.0) + (used["redis"] or 0.0)
                redis_commands[name] = redis_commands.get(name, 0) + (used["redis_commands"] or 0)
                for pid, seconds in used["by_process"].items():
                    by_process.setdefault(name, {})[pid] = by_process.get(name, {}).get(pid, 0.0) + seconds
        logged = {name: server.errors_logged() for name, server in running.items()}
    finally:
        for server in running.values():
            server.stop()
    figures: dict[str, Any] = {}
    for name, results in rounds.items():
        requests = sum(r["requests"] for r in results)
        figures[name] = {
            "rps": statistics.median(r["rps"] for r in results), "rounds": [r["rps"] for r in results],
            "p50": statistics.median(r["p50"] for r in results), "p99": statistics.median(r["p99"] for r in results),
            "bad": sum(r["bad"] for r in results), "errors": sum(r["errors"] for r in results),
            "server_cpu_us": cpu[name] / max(requests, 1) * 1e6, "errors_logged": logged[name],
            "redis_cpu_us": redis_cpu[name] / max(requests, 1) * 1e6 if running[name].target.workers > 1 else None,
            "cpu_by_process_s": by_process.get(name, {}),
            "redis_commands_per_req": redis_commands.get(name, 0) / max(requests, 1)}
    peer = figures.get("openai-mock-api", {}).get("rps")
    floor = figures.get("floor", {}).get("rps")
    rows = []
    for name, f in figures.items():
        spread = f"{min(f['rounds']):,.0f}-{max(f['rounds']):,.0f}" if len(f["rounds"]) > 1 else "-"
        rows.append([name, f"{f['rps']:,.0f}", spread, ratio(f["rps"], peer), ratio(f["rps"], floor), ms(f["p50"]),
                     ms(f["p99"]), f"{f['server_cpu_us']:.0f}", f"{f['bad'] + f['errors']}"])
        if f["redis_cpu_us"] is not None:
            notes.append(f"{name}: {_split(running[name].pid, f['cpu_by_process_s'])}; its redis-server used "
                         f"{f['redis_cpu_us']:.0f} us/req more (not in the server CPU column), "
                         f"{f['redis_commands_per_req']:.1f} commands a request")
        if f["errors_logged"]:
            notes.append(f"{name}: {len(f['errors_logged'])} error lines in its log, first: {f['errors_logged'][0]}")
    rows += skipped
    loadgen = ("wrk, 1 thread" if tool == "wrk" else "Python fallback (2 processes, epoll, keep-alive)")
    table(f"1. Non-stream throughput: POST /v1/chat/completions, {scale.connections} keep-alive connections, "
          f"{scale.rounds} round(s) of {scale.duration} s per server after {scale.warmup} s of warm-up; "
          f"load generator: {loadgen}",
          ["server", "req/s", "rounds", "/ peer", "/ floor", "p50", "p99", "server CPU us/req", "non-200 + errors"],
          rows, notes + [f"openai-mock / openai-mock-api = {ratio(figures.get('openai-mock', {}).get('rps'), peer)} "
                         f"(target >= 1.0); openai-mock-w2 (--workers 2, Redis) / openai-mock-api = "
                         f"{ratio(figures.get('openai-mock-w2', {}).get('rps'), peer)}; "
                         f"floor / openai-mock-api = {ratio(floor, peer)}", load()])
    figures["tool"] = tool
    return figures


def _split(parent: int, seconds: dict[int, float]) -> str:
    """How a server's CPU time divides between its parent and its workers."""
    workers = [f"{v:.1f}" for pid, v in sorted(seconds.items()) if pid != parent]
    return (f"server CPU by process: parent {seconds.get(parent, 0.0):.2f} s, "
            f"workers {' + '.join(workers) or '-'} s")


# --- 2. ready time ----------------------------------------------------------------------------

def ready(all_targets: dict[str, Target], scale: Scale, workdir: Path, only: list[str]) -> dict[str, Any]:
    samples: dict[str, list[float]] = {name: [] for name in ORDER}
    first_chat: list[float] = []
    skipped: list[list[str]] = []
    for name in ORDER:
        _wanted(all_targets[name], only, skipped)
    for run in range(scale.ready_runs):
        progress(f"ready: run {run + 1} of {scale.ready_runs}")
        for name in ORDER:  # interleaved, so that a change of load hits every server alike
            target = all_targets[name]
            if not _wanted(target, only, []):
                continue
            with Running(target, workdir) as server:
                samples[name].append(server.wait_ready())
                if target.kind == "ours":
                    status, _ = exchange(server.port, target.ping_request())
                    if status == 200:
                        first_chat.append(time.monotonic() - server.started)
            time.sleep(0.1)
    medians = {name: statistics.median(v) for name, v in samples.items() if v}
    peer = medians.get("openai-mock-api")
    rows = []
    for name in ORDER:
        if name not in medians:
            continue
        probe = "GET /health" if all_targets[name].kind == "ours" else "POST /v1/chat/completions"
        rows.append([name, ms(medians[name]), ms(min(samples[name])), ms(max(samples[name])),
                     ratio(medians[name], peer), probe])
    if first_chat:
        rows.append(["openai-mock, first chat completion", ms(statistics.median(first_chat)), ms(min(first_chat)),
                     ms(max(first_chat)), ratio(statistics.median(first_chat), peer), "POST after /health"])
    table(f"2. Ready time: process start to first HTTP 200, median of {scale.ready_runs} runs",
          ["server", "median", "min", "max", "/ peer", "probe"], rows + skipped,
          ["target: openai-mock ready no later than openai-mock-api (ratio <= 1.0)", load()])
    return {"median_s": medians, "samples_s": samples,
            "openai-mock_first_chat_s": statistics.median(first_chat) if first_chat else None}


# --- 3 and 4. streams -------------------------------------------------------------------------

def run_streams(target: Target, workdir: Path, rule: str, events: int, delay_ms: int, count: int,
                rate: float, clients: int, keep_times: bool, deadline: float) -> dict[str, Any]:
    """Start `target`, open `count` streams from `clients` processes, and gather the figures."""
    with Running(target, workdir) as server:
        server.wait_ready()
        request = target.stream_request(rule, events, delay_ms)
        status, _ = exchange(server.port, request, head_only=True)  # the rule is there
        if status != 200:
            raise RuntimeError(f"{target.name}: the {rule} stream answered {status}")
        server.settle()
        idle = server.status()
        meter = Meter(server)
        overflows = listen_overflows()
        share = [count // clients + (1 if i < count % clients else 0) for i in range(clients)]
        jobs = [dict(host="127.0.0.1", port=server.port, request=request, count=n, rate=rate / clients,
                     deadline=deadline, keep_times=keep_times) for n in share]
        results = run_workers(stream_worker, jobs, timeout=deadline + 120)
        used = meter.read()
        after = server.status()
        redis_peak = target.redis.peak_rss_kib() if target.workers > 1 and target.redis else None
        try:
            health, _ = exchange(server.port, target.ready_request())
        except OSError:
            health = 0  # gone, or no longer answering
        logged = server.errors_logged()
    streams = [s for r in results for s in r["streams"]]
    start = min(r["start"] for r in results)
    problems: dict[str, list[dict[str, Any]]] = {}
    completed = 0
    for s in streams:
        if s["status"] == 200 and s["complete"] and s["done"] and s["events"] == events and not s["error"]:
            completed += 1
            continue
        if s["error"]:
            what = s["error"]
        elif s["status"] != 200:
            what = f"HTTP {s['status']}"
        else:
            what = f"{s['events']} events, done={s['done']}, complete={s['complete']}"
        problems.setdefault(what, []).append(s)
    # streams in progress at once: from the first byte of the response to its end
    marks = sorted([(s["first_byte"], 1) for s in streams if s["first_byte"]]
                   + [(s["ended"], -1) for s in streams if s["first_byte"]])
    peak = level = 0
    for _, step in marks:
        level += step
        peak = max(peak, level)
    wall = max((s["ended"] for s in streams), default=start) - start
    waits = [s["first_byte"] - s["opened"] for s in streams if s["first_byte"]]
    first_events = [s["first_event"] - s["opened"] for s in streams if s["first_event"]]
    client_cpu = sum(r["cpu"] for r in results)
    return {"streams": streams, "count": len(streams), "completed": completed,
            "failed": len(streams) - completed, "problems": _describe(problems), "peak_open": peak,
            "listen_overflows": listen_overflows() - overflows,
            "idle_rss_kib": idle.get("VmRSS"), "peak_rss_kib": after.get("VmHWM"),
            "server_cpu_s": used["server"], "wall_s": wall, "first_byte_p50_s": percentile(waits, 50),
            "first_byte_p99_s": percentile(waits, 99), "client_cpu_s": client_cpu,
            "first_event_p50_s": percentile(first_events, 50), "first_event_p99_s": percentile(first_events, 99),
            "cpu_by_process_s": used["by_process"], "server_pid": server.pid, "redis_cpu_s": used["redis"],
            "redis_peak_rss_kib": redis_peak, "redis_commands": used["redis_commands"],
            # CPU the machine spent on anything else: other people's work, and the bench's own
            "other_cpu_s": used["machine"] - used["server"] - (used["redis"] or 0.0) - client_cpu,
            "health_after": health, "errors_logged": logged}


def _describe(problems: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """Per kind of failure: how many, after how many events, how long after opening."""
    out = {}
    for what, streams in problems.items():
        events = sorted(s["events"] for s in streams)
        ages = sorted(s["ended"] - s["opened"] for s in streams)
        out[what] = (f"{len(streams)} x {what} (after {events[0]}-{events[-1]} events, "
                     f"{ages[0]:.1f}-{ages[-1]:.1f} s after opening)")
    return out


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full (all
    processes: other work on the machine adds to it too)."""
    try:
        with open("/proc/net/netstat") as file:
            lines = file.read().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenOverflows", 0))
    return 0


def _deviations(target: Target, streams: list[dict[str, Any]], events: int, delay_ms: float) -> list[float]:
    """(gap − delay) in ms for every gap that carries the delay, over streams that got HTTP 200."""
    wanted = target.delayed_gaps(events)
    out = []
    for s in streams:
        times = s["times"]
        if s["status"] != 200 or not times:
            continue
        for i in wanted:
            if i + 1 < len(times):
                out.append((times[i + 1] - times[i]) * 1000 - delay_ms)
    return out


def fidelity(all_targets: dict[str, Target], scale: Scale, workdir: Path, only: list[str]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for delay, rule in ((20, "fidelity"), (50, "fidelity50")):
        rows, notes, skipped = [], [], []
        for name, target in _taking_part(ORDER, all_targets, only, skipped):
            if target.fixed_delay_ms is not None and target.fixed_delay_ms != delay:
                notes.append(f"{name}: skipped, its delay between chunks is fixed at {target.fixed_delay_ms:.0f} ms "
                             "(not configurable in 0.4.0); compare at 50 ms below")
                continue
            progress(f"fidelity: {name}, delay {delay} ms, {scale.fidelity_streams} streams")
            result = run_streams(target, workdir, rule, FIDELITY_EVENTS, delay, scale.fidelity_streams,
                                 scale.fidelity_rate, scale.clients, keep_times=True, deadline=120)
            deviations = _deviations(target, result.pop("streams"), FIDELITY_EVENTS, delay)
            result.update(p50=percentile(deviations, 50), p99=percentile(deviations, 99),
                          max=max(deviations, default=None), min=min(deviations, default=None),
                          gaps=len(deviations))
            figures[f"{name}@{delay}"] = result
            rows.append([name, f"{result['completed']:,}", f"{result['failed']:,}", signed(result["p50"]),
                         signed(result["p99"]), signed(result["max"]), signed(result["min"]),
                         f"{result['gaps']:,}", f"{result['peak_open']:,}", ms(result["first_byte_p99_s"]),
                         f"{result['server_cpu_s'] * 1000 / result['count']:.2f}",
                         f"{result['wall_s']:.1f} s", f"{result['client_cpu_s']:.1f}"])
            notes += [f"{name}: {note}" for note in _problems(result)]
        title = (f"3. Delay fidelity: {scale.fidelity_streams:,} streams opened at {scale.fidelity_rate:,.0f}/s "
                 f"from {scale.clients} client processes, {FIDELITY_EVENTS} data events each, {delay} ms "
                 f"between chunks; (gap - {delay} ms) in ms")
        if delay != 20:
            title += " -- at openai-mock-api's fixed delay, for a side-by-side comparison"
        notes += ["target (20 ms): p99 < 5 ms. A negative value is a gap shorter than the delay: two chunks "
                  "read together because the first was late.", load()]
        ideal = scale.fidelity_streams / scale.fidelity_rate + (FIDELITY_EVENTS - 1) * delay / 1000
        notes.insert(-1, f"wall: first open to last end; {ideal:.1f} s if every gap were exact. Peak open: "
                         "streams between their first response byte and their end at the same moment; 1st byte "
                         "p99: from connect() to the first response byte. A server that starts streams later "
                         "than they are opened has fewer open at once (and smaller gaps): read these together.")
        table(title, ["server", "completed", "failed", "p50", "p99", "max", "min", "gaps", "peak open",
                      "1st byte p99", "server CPU ms/stream", "wall", "client CPU s"], rows + skipped, notes)
    return figures


def _wanted(target: Target, only: list[str], skipped: list[list[str]]) -> bool:
    """Whether `target` runs in this figure; if it cannot, a row that says why goes to `skipped`."""
    if only and target.name not in only:
        return False
    if not target.available:
        skipped.append([target.name, target.why_not])
        return False
    return True


def _taking_part(names: tuple[str, ...], all_targets: dict[str, Target], only: list[str],
                 skipped: list[list[str]]) -> Iterator[tuple[str, Target]]:
    """The servers of `names` that run in this figure (`_wanted`), in that order."""
    for name in names:
        target = all_targets[name]
        if _wanted(target, only, skipped):
            yield name, target


def _problems(result: dict[str, Any]) -> list[str]:
    notes = list(result["problems"].values())
    if result["listen_overflows"]:
        notes.append(f"{result['listen_overflows']:,} listen queue overflows during the run "
                     "(kernel count, all processes)")
    if result["health_after"] != 200:
        notes.append(f"health check after the run: HTTP {result['health_after']}")
    if result["errors_logged"]:
        notes.append(f"{len(result['errors_logged'])} error lines in its log, first: {result['errors_logged'][0]}")
    return notes


def concurrency(all_targets: dict[str, Target], scale: Scale, workdir: Path, only: list[str]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    rows, notes, skipped = [], [], []
    length = (CONCURRENCY_EVENTS - 1) * scale.concurrency_delay_ms / 1000
    deadline = scale.concurrency_streams / scale.concurrency_rate + length + 90
    for name, target in _taking_part(ORDER, all_targets, only, skipped):
        if target.fixed_delay_ms is not None:
            notes.append(f"{name}: skipped, its delay between chunks is fixed at {target.fixed_delay_ms:.0f} ms, "
                         f"so a stream of {CONCURRENCY_EVENTS} chunks cannot stay open for seconds")
            continue
        progress(f"concurrency: {name}, {scale.concurrency_streams} streams")
        result = run_streams(target, workdir, "concurrency", CONCURRENCY_EVENTS, scale.concurrency_delay_ms,
                             scale.concurrency_streams, scale.concurrency_rate, scale.clients,
                             keep_times=False, deadline=deadline)
        result.pop("streams")
        figures[name] = result
        busy = result["server_cpu_s"] / result["wall_s"] if result["wall_s"] else 0
        rows.append([name, f"{result['completed']:,}", f"{result['failed']:,}", f"{result['peak_open']:,}",
                     f"{ms(result['first_byte_p50_s'])} / {ms(result['first_byte_p99_s'])}",
                     mib(result["idle_rss_kib"]), mib(result["peak_rss_kib"]),
                     f"{result['server_cpu_s']:.1f} ({busy:.0%})",
                     f"{result['server_cpu_s'] * 1000 / result['count']:.2f}", f"{result['wall_s']:.1f} s",
                     f"{result['client_cpu_s']:.1f}"])
        notes += [f"{name}: {note}" for note in _problems(result)]
    ours, floor = figures.get("openai-mock"), figures.get("floor")
    notes += [f"peak RSS openai-mock / floor = "
              f"{ratio(ours and ours['peak_rss_kib'], floor and floor['peak_rss_kib'])}; "
              "target: every stream complete, peak RSS < 1 GiB",
              "1st byte: from connect() to the first byte of the response (waits in the listen queue show here). "
              "Peak open: streams between their first response byte and their end, at the same moment. "
              f"All {scale.concurrency_streams:,} can be open at once only if the server starts them all "
              f"within one stream's length ({length:.1f} s).",
              load()]
    table(f"4. Concurrency: {scale.concurrency_streams:,} streams opened at {scale.concurrency_rate:,.0f}/s from "
          f"{scale.clients} client processes, {CONCURRENCY_EVENTS} data events each, "
          f"{scale.concurrency_delay_ms} ms between chunks",
          ["server", "completed", "failed", "peak open", "1st byte p50 / p99", "idle RSS", "peak RSS",
           "server CPU s (busy)",
           "CPU ms/stream", "wall", "client CPU s"], rows + skipped, notes)
    return figures


# --- 5. streams at a steady rate: one process, workers, the peer, the floors ---------------------

def streams(all_targets: dict[str, Target], scale: Scale, workdir: Path, only: list[str]) -> dict[str, Any]:
    """Streams of 32 `data:` events 50 ms apart (the delay openai-mock-api cannot change), opened
    at a steady rate: how each server keeps its gaps and its first chunks as the streams add up,
    and what a stream costs it in CPU."""
    figures: dict[str, Any] = {}
    delay = STREAM_DELAY_MS
    length = (FIDELITY_EVENTS - 1) * delay / 1000
    for count, rate in scale.streams:
        rows, notes, skipped = [], [], []
        for name, target in _taking_part(TAKE_PART["streams"], all_targets, only, skipped):
            progress(f"streams: {name}, {count} streams at {rate:.0f}/s")
            result = run_streams(target, workdir, "fidelity50", FIDELITY_EVENTS, delay, count, rate, scale.clients,
                                 keep_times=True, deadline=count / rate + length + 120)
            deviations = _deviations(target, result.pop("streams"), FIDELITY_EVENTS, delay)
            result.update(p50=percentile(deviations, 50), p99=percentile(deviations, 99),
                          max=max(deviations, default=None), gaps=len(deviations))
            figures[f"{name}/{count}@{rate:.0f}"] = result
            per_stream = 1000 / max(result["count"], 1)
            redis = result["redis_cpu_s"]
            rows.append([name, f"{result['completed']:,}", f"{result['failed']:,}", signed(result["p50"]),
                         signed(result["p99"]), signed(result["max"]), ms(result["first_event_p50_s"]),
                         ms(result["first_event_p99_s"]), f"{result['peak_open']:,}",
                         f"{result['server_cpu_s'] * per_stream:.2f}",
                         "-" if redis is None else f"{redis * per_stream:.2f}",
                         f"{result['wall_s']:.1f} s", f"{result['client_cpu_s']:.1f}",
                         f"{result['other_cpu_s']:.1f}{' *' if _disturbed(result) else ''}"])
            if target.workers > 1:
                peak = result["redis_peak_rss_kib"]
                commands = result["redis_commands"] / max(result["count"], 1)
                notes.append(f"{name}: {_split(result['server_pid'], result['cpu_by_process_s'])}; "
                             f"redis-server: {redis:.2f} s of CPU, {commands:.1f} commands a stream, "
                             f"peak RSS {mib(peak)}")
            notes += [f"{name}: {note}" for note in _problems(result)]
        if not only or "floor" in only:
            notes.append("floor (quart-trio) takes no part: its CPU per stream (figure 3) is several times what "
                         "one process can spend on each of 1,000 new streams a second")
        ideal = count / rate + length
        notes += [f"(gap - {delay} ms) and its p99: over every gap that carries the delay; 1st chunk: from "
                  "connect() to the first data: event; server CPU: every process of the server (for --workers, "
                  "the parent and each worker); redis CPU apart; other CPU: what the machine spent on "
                  "anything but the server, its redis-server and the load generators (other work on the "
                  "machine, and a few tenths of a second of the bench's own); * disturbed: more than 0.5 s + 10% "
                  "of one core of it, so that the row's figures are not the server's alone",
                  f"wall: first open to last end; {ideal:.1f} s if every gap were exact. "
                  "target (--workers 2): gap p99 and 1st chunk p99 at or below openai-mock-api's; "
                  "CPU per stream <= 1.5 ms in one process (at 200/s, below saturation)", load()]
        table(f"5. Streams at a steady rate: {count:,} streams opened at {rate:,.0f}/s from {scale.clients} client "
              f"processes, {FIDELITY_EVENTS} data events each, {delay} ms between chunks",
              ["server", "completed", "failed", f"gap-{delay} p50", f"gap-{delay} p99", f"gap-{delay} max",
               "1st chunk p50", "1st chunk p99",
               "peak open", "server CPU ms/stream", "redis ms/stream", "wall", "client CPU s", "other CPU s"],
              rows + skipped, notes)
    return figures


def fixed(all_targets: dict[str, Target], scale: Scale, workdir: Path, only: list[str],
          streamed: dict[str, Any] | None) -> dict[str, Any]:
    """Streams of 3 events (role chunk, one word, closing chunk) at figure 5's slowest rate: what
    a stream costs apart from its chunks (the connection, the request, the answer's head and end).
    With figure 5's run at that rate in the same process, what each further chunk costs too."""
    figures: dict[str, Any] = {}
    count, rate = min(scale.streams, key=lambda streams: streams[1])
    delay = STREAM_DELAY_MS
    rows, notes, skipped = [], [], []
    for name, target in _taking_part(TAKE_PART["fixed"], all_targets, only, skipped):
        progress(f"fixed: {name}, {count} streams of {SHORT_EVENTS} events at {rate:.0f}/s")
        result = run_streams(target, workdir, "short50", SHORT_EVENTS, delay, count, rate, scale.clients,
                             keep_times=False, deadline=count / rate + 120)
        result.pop("streams")
        cpu = result["server_cpu_s"] * 1000 / max(result["count"], 1)
        figures[name] = result | {"cpu_ms": cpu}
        longer = (streamed or {}).get(f"{name}/{count}@{rate:.0f}")
        per_chunk = None
        if longer:
            longer_cpu = longer["server_cpu_s"] * 1000 / max(longer["count"], 1)
            per_chunk = (longer_cpu - cpu) / (FIDELITY_EVENTS - SHORT_EVENTS) * 1000
            figures[name]["per_chunk_us"] = per_chunk
        rows.append([name, f"{result['completed']:,}", f"{result['failed']:,}", f"{cpu:.2f}", "",
                     "-" if per_chunk is None else f"{per_chunk:.0f}",
                     f"{result['client_cpu_s']:.1f}", f"{result['other_cpu_s']:.1f}{' *' if _disturbed(result) else ''}"])
        notes += [f"{name}: {note}" for note in _problems(result)]
    base = figures.get("floor-hypercorn", {}).get("cpu_ms")
    for row in rows:
        row[4] = ratio(figures[row[0]]["cpu_ms"], base)
    notes += ["server CPU: what one stream of 3 events cost the server (its connection, request, head, waits "
              "and end); / floor-hypercorn: the same over what hypercorn alone spends on it (a plain ASGI "
              "app that streams fixed frames). Each further chunk: figure 5's CPU per stream at the same "
              f"rate (32 events) minus this one, over the {FIDELITY_EVENTS - SHORT_EVENTS} chunks between "
              "(the floors' include a trio.sleep each; openai-mock's shared timer sends them without waking "
              "the stream's task); '-' without figure 5 at this rate in the same run",
              load()]
    table(f"6. What a stream costs apart from its chunks: {count:,} streams of {SHORT_EVENTS} data events opened "
          f"at {rate:,.0f}/s from {scale.clients} client processes, {delay} ms between chunks",
          ["server", "completed", "failed", "server CPU ms/stream", "/ floor-hypercorn",
           "each further chunk us", "client CPU s", "other CPU s"],
          rows + skipped, notes)
    return figures


# --- summary ----------------------------------------------------------------------------------

def summary(results: dict[str, Any], scale: Scale, quick: bool) -> None:
    rows = []
    t = results.get("throughput")
    if t and "openai-mock" in t and "openai-mock-api" in t:
        r = t["openai-mock"]["rps"] / t["openai-mock-api"]["rps"]
        rows.append(["non-stream throughput / openai-mock-api", f"{r:.2f}", ">= 1.0", _verdict(r >= 1.0)])
    if t and "openai-mock-w2" in t and "openai-mock-api" in t:
        r = t["openai-mock-w2"]["rps"] / t["openai-mock-api"]["rps"]
        rows.append(["same, --workers 2 with Redis", f"{r:.2f}", "(none)", ""])
    r = results.get("ready")
    if r and "openai-mock" in r["median_s"] and "openai-mock-api" in r["median_s"]:
        ours, peer = r["median_s"]["openai-mock"], r["median_s"]["openai-mock-api"]
        rows.append(["ready time (median)", f"{ours * 1000:.0f} ms vs {peer * 1000:.0f} ms", "<= openai-mock-api",
                     _verdict(ours <= peer)])
    f = (results.get("fidelity") or {}).get("openai-mock@20")
    if f:
        rows.append([f"delay fidelity p99, {scale.fidelity_streams:,} streams at 20 ms", f"{signed(f['p99'])} ms",
                     "< 5 ms", _verdict(f["p99"] is not None and f["p99"] < 5 and f["failed"] == 0)])
    c = (results.get("concurrency") or {}).get("openai-mock")
    if c:
        rows.append([f"{scale.concurrency_streams:,} concurrent streams: completed", f"{c['completed']:,}",
                     "all", _verdict(c["failed"] == 0)])
        rows.append([f"{scale.concurrency_streams:,} concurrent streams: peak RSS", mib(c["peak_rss_kib"]),
                     "< 1024 MiB", _verdict(c["peak_rss_kib"] < 1024 * 1024)])
    st = results.get("streams") or {}
    for count, rate in scale.streams:
        at = f"{count:,} streams at {rate:,.0f}/s"
        one, w2, peer = (st.get(f"{name}/{count}@{rate:.0f}") for name in ("openai-mock", "openai-mock-w2",
                                                                           "openai-mock-api"))
        if rate == min(r for _, r in scale.streams):
            if one:
                cpu = one["server_cpu_s"] * 1000 / max(one["count"], 1)
                rows.append([f"server CPU per stream, one process, {at}", f"{cpu:.2f} ms", "<= 1.5 ms",
                             _verdict(cpu <= 1.5, one)])
            short = results.get("fixed") or {}
            if "openai-mock" in short and "floor-hypercorn" in short:
                rows.append([f"same, streams of {SHORT_EVENTS} events: openai-mock vs hypercorn alone",
                             f"{short['openai-mock']['cpu_ms']:.2f} vs {short['floor-hypercorn']['cpu_ms']:.2f} ms",
                             "(none)", ""])
            continue
        if w2:
            rows.append([f"--workers 2, {at}: completed", f"{w2['completed']:,}", "all",
                         _verdict(w2["failed"] == 0, w2)])
        if w2 and peer:
            ok = w2["p99"] is not None and peer["p99"] is not None and w2["p99"] <= peer["p99"]
            rows.append([f"--workers 2, {at}: (gap - {STREAM_DELAY_MS}) p99",
                         f"{signed(w2['p99'])} vs {signed(peer['p99'])} ms", "<= openai-mock-api",
                         _verdict(ok, w2, peer)])
            ours, theirs = w2["first_event_p99_s"], peer["first_event_p99_s"]
            ok = ours is not None and theirs is not None and ours <= theirs
            rows.append([f"--workers 2, {at}: 1st chunk p99", f"{ms(ours)} vs {ms(theirs)}", "<= openai-mock-api",
                         _verdict(ok, w2, peer)])
    notes = []
    if any("disturbed" in row[-1] for row in rows):
        notes.append("disturbed: a figure 5 run in which other work on the machine took more CPU than the bench's "
                     "own overhead (over 0.5 s + 10% of one core; its other CPU column): its gaps and first chunks "
                     "are not the server's alone. Run again on a quiet machine.")
    if rows:
        table("Summary against the targets (PERFORMANCE.md)" + (" -- QUICK RUN: scaled down, indicative only"
                                                                  if quick else ""),
              ["figure", "openai-mock", "target", ""], rows, notes)


def _verdict(ok: bool, *runs: dict[str, Any]) -> str:
    verdict = "met" if ok else "NOT MET"
    if any(_disturbed(run) for run in runs):
        verdict += ", disturbed"
    return verdict


def _disturbed(run: dict[str, Any]) -> bool:
    """Whether other work on the machine took a share of it during a run (figure 5)."""
    return run["other_cpu_s"] > 0.5 + 0.1 * run["wall_s"]


# --- main -------------------------------------------------------------------------------------

def ensure_peer() -> None:
    """`nox -s bench` installs the peer; a bare `python bench/run.py` does it here if npm exists."""
    if not PEER_CLI.exists() and shutil.which("npm"):
        progress("installing openai-mock-api into bench/node")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(BENCH / "node")],
                       check=False)


def describe(tool: str) -> None:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True,
                           text=True).stdout.strip()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("node") else "absent"
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip() if shutil.which("uptime") else load()
    print(f"openai-mock bench, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"  commit {commit or '?'}{' (src modified)' if dirty else ''}; Python {platform.python_version()}; "
          f"node {node}; {os.cpu_count()} CPUs; open files limit {raise_fd_limit()}")
    print(f"  non-stream load generator: {tool}; uptime: {uptime}")
    sys.stdout.flush()


def wakeup() -> dict[str, float] | None:
    """What a wake-up of a trio event loop costs on this machine (bench/wakeup.py), printed under
    the title: below saturation a server wakes up to a thousand times a second, and its CPU per
    stream carries that."""
    done = subprocess.run([sys.executable, str(BENCH / "wakeup.py")], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        print(f"  wake-up cost: not measured ({(done.stderr.strip().splitlines() or ['?'])[-1]})")
        return None
    figures: dict[str, float] = json.loads(done.stdout)
    print(f"  wake-up cost (bench/wakeup.py): {figures['idle_us']:.0f} us of CPU per wake-up of a trio task that "
          f"sleeps 1 ms, {figures['busy_us']:.0f} us per pass of a loop that never sleeps; openai-mock's shared "
          f"timer: {figures['timer_us']:.0f} us a tick under its own clock, {figures['timer_task_us']:.0f} us with a "
          f"task of its own (trio's clock)")
    sys.stdout.flush()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scaled down: about 1.5 minutes, indicative only")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this figure (repeatable)")
    parser.add_argument("--server", choices=SERVERS, action="append", default=[],
                        help="run only this server (repeatable); ratios need both sides")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                        help="non-stream load generator (auto: wrk when on PATH)")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    tool = args.loadgen if args.loadgen != "auto" else ("wrk" if shutil.which("wrk") else "python")
    if tool == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not on PATH")
    ensure_peer()
    describe(tool)
    started = time.monotonic()
    results: dict[str, Any] = {"date": datetime.datetime.now().astimezone().isoformat(), "quick": args.quick,
                               "scale": scale.__dict__, "load_before": os.getloadavg(), "wakeup": wakeup()}
    with tempfile.TemporaryDirectory(prefix="openai-mock-bench-") as tmp:
        workdir = Path(tmp)
        all_targets = targets(workdir, {
            "fidelity": (FIDELITY_TEXT, 20),
            "fidelity50": (FIDELITY_TEXT, 50),
            "concurrency": (CONCURRENCY_TEXT, scale.concurrency_delay_ms),
            "short50": (SHORT_TEXT, STREAM_DELAY_MS),
        })
        try:
            for section in SECTIONS:
                if args.only and section not in args.only:
                    continue
                if section == "throughput":
                    results[section] = throughput(all_targets, scale, workdir, tool, args.server)
                elif section == "ready":
                    results[section] = ready(all_targets, scale, workdir, args.server)
                elif section == "fidelity":
                    results[section] = fidelity(all_targets, scale, workdir, args.server)
                elif section == "concurrency":
                    results[section] = concurrency(all_targets, scale, workdir, args.server)
                elif section == "streams":
                    results[section] = streams(all_targets, scale, workdir, args.server)
                else:
                    results[section] = fixed(all_targets, scale, workdir, args.server, results.get("streams"))
        finally:
            for target in all_targets.values():
                if target.redis is not None:
                    target.redis.stop()
    summary(results, scale, args.quick)
    results["load_after"] = os.getloadavg()
    print(f"\ndone in {time.monotonic() - started:.0f} s; {load()}")
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "last.json").write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
