"""Nothing blocks the event loop: a runaway regex, a big configuration (PUT or --watch), and
what `check`/`serve` refuse to read (a device, a FIFO, a file over the size limit).

The timing tests run streams paced at 50 ms while the offending request is served, and read
every stream from one thread with `selectors`, so the client's own threads do not blur the
gaps they measure. Bounds are wide enough for a loaded 2-core machine.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]

# `re` needs about two seconds for this one on 35 a's; the `regex` module longer still
RUNAWAY = "^(a|aa)+$"
RUNAWAY_TEXT = "a" * 35 + "!"
STREAM_WORDS = 40

CONFIG = f"""
responses:
  - id: paced
    matcher: {{type: contains, messages: [{{role: user, content: paced}}]}}
    reply: "{' '.join(['word'] * STREAM_WORDS)}"
    delay_ms: 50
  - id: runaway
    matcher:
      type: regex
      messages: [{{role: user, content: '{RUNAWAY}'}}]
    reply: never
"""


def cli(*args: str, timeout: float = 30, **options) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "openai_mock", *args], capture_output=True, text=True,
                          timeout=timeout, **options)


def chat_request(host: str, port: int, text: str, stream: bool) -> bytes:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}], "stream": stream}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class Streams:
    """`count` paced streams, read from one thread: the arrival time of every read, per stream."""

    def __init__(self, server, count: int):
        host, port = server.root.removeprefix("http://").rsplit(":", 1)
        self.selector = selectors.DefaultSelector()
        self.arrivals: list[list[float]] = [[] for _ in range(count)]
        self.data = [b"" for _ in range(count)]
        for index in range(count):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(chat_request(host, int(port), "paced", stream=True))
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, index)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        open_count = len(self.arrivals)
        deadline = time.monotonic() + 30
        while open_count and time.monotonic() < deadline:
            for key, _ in self.selector.select(timeout=1):
                now = time.monotonic()
                chunk = key.fileobj.recv(65536)
                self.arrivals[key.data].append(now)
                self.data[key.data] += chunk
                if not chunk or self.data[key.data].endswith(b"0\r\n\r\n"):
                    self.selector.unregister(key.fileobj)
                    key.fileobj.close()
                    open_count -= 1

    def started(self) -> bool:
        return all(len(times) >= 3 for times in self.arrivals)

    def join(self) -> None:
        self.thread.join(40)

    def worst_gap(self) -> float:
        return max(b - a for times in self.arrivals for a, b in zip(times, times[1:]))

    def complete(self) -> bool:
        return all(b"data: [DONE]" in data and data.endswith(b"0\r\n\r\n") for data in self.data)


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# --- a runaway regex ---------------------------------------------------------------------------


def test_a_runaway_regex_gets_a_400_and_does_not_stall_the_streams(fresh_server):
    server = fresh_server(CONFIG)
    streams = Streams(server, 20)
    wait_until(streams.started)
    started = time.monotonic()
    response = httpx.post(f"{server.base_url}/chat/completions", timeout=30, json={
        "model": "m", "messages": [{"role": "user", "content": RUNAWAY_TEXT}]})
    took = time.monotonic() - started
    streams.join()

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "regex_timeout"
    assert f"rule 'runaway' ({server.config_path}:7)" in error["message"]
    assert repr(RUNAWAY) in error["message"]
    assert took < 1.0
    assert streams.complete()
    # the streams wait 50 ms between chunks: a request holding the loop would show in a gap (the
    # regex alone held it for seconds before its budget; a loaded 2-core machine adds ~0.1 s)
    assert streams.worst_gap() < 0.05 + 0.4


def test_the_regex_budget_is_for_the_whole_request(fresh_server):
    """Many rules whose regexes each stay under the budget still share it: the request ends
    in the 400 instead of taking rules x budget."""
    rules = "".join(f"""
  - id: slowish-{i}
    matcher: {{type: regex, messages: [{{role: user, content: '^(a|aa)+$'}}]}}
    reply: never
""" for i in range(40))
    server = fresh_server("responses:" + rules)
    started = time.monotonic()
    response = httpx.post(f"{server.base_url}/chat/completions", timeout=60, json={
        "model": "m", "messages": [{"role": "user", "content": "a" * 25 + "!"}]})  # ~10-40 ms each
    assert time.monotonic() - started < 1.0
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "regex_timeout"


def test_regexes_that_match_quickly_still_match(fresh_server):
    server = fresh_server(CONFIG)
    response = httpx.post(f"{server.base_url}/chat/completions", timeout=10, json={
        "model": "m", "messages": [{"role": "user", "content": "a" * 35}]})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "never"


# --- check warns about shapes that backtrack ----------------------------------------------------

def test_check_warns_about_a_nested_quantifier_and_passes(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("responses:\n"
                    "  - id: greedy\n"
                    "    matcher: {type: regex, messages: [{role: user, content: '^(a+)+$'}]}\n"
                    "    reply: x\n"
                    "  - id: words\n"
                    "    messages:\n"
                    "      - {role: user, content: '(\\w+\\s?)*$', matcher: regex}\n"
                    "      - {role: assistant, content: y}\n")
    result = cli("check", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: ok, 2 rules\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:3:61: warning: regex '^(a+)+$' repeats a group that itself contains a repeat")
    assert lines[1].startswith(f"{path}:7:31: warning: regex '(\\\\w+\\\\s?)*$' repeats a group")
    assert "possessive" in lines[0] and "`a+`" in lines[0]  # how to rewrite it
    assert "Traceback" not in result.stderr


def test_check_prints_the_warnings_with_the_problems(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("responses:\n"
                    "  - id: greedy\n"
                    "    matcher: {type: regex, messages: [{role: user, content: '(a*)*'}]}\n"
                    "    reply: x\n"
                    "    delay_ms: soon\n")
    result = cli("check", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == f"{path}:5:15: `delay_ms` must be a number of milliseconds, 0 or more"
    assert result.stderr.splitlines()[1].startswith(f"{path}:3:61: warning: regex '(a*)*'")


def test_serve_prints_the_warnings_at_start_and_on_a_reload(fresh_server, tmp_path):
    path = tmp_path / "rules.yaml"
    rule = "responses:\n  - id: r\n    matcher: {{type: regex, messages: [{{role: user, content: '{}'}}]}}\n    reply: x\n"
    path.write_text(rule.format("(a+)+"))
    server = fresh_server(path, "--watch")
    assert f"{path}:3:61: warning: regex '(a+)+' repeats a group" in server.log()
    path.write_text(rule.format("(b*)*"))
    wait_until(lambda: "reloaded" in server.log())
    wait_until(lambda: "warning: regex '(b*)*'" in server.log())


# --- loading a configuration runs off the loop ---------------------------------------------------


def big_configuration(rules: int = 8000) -> bytes:
    """About 15 MB of JSON (which is YAML): `rules` rules with long replies."""
    reply = "word " * 370
    return json.dumps({"responses": [
        {"id": f"rule-{i}", "matcher": {"type": "exact", "messages": [{"role": "user", "content": f"question {i}"}]},
         "reply": f"answer {i} {reply}"} for i in range(rules)]}).encode()


def read_answer(sock: socket.socket) -> bytes:
    """One HTTP/1.1 answer with a Content-Length (the connection may stay open after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin1").lower()
    length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n") if line.startswith("content-length:"))
    while len(data) < len(head) + 4 + length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def probe_health(server, busy: threading.Event, done: threading.Event) -> list[float]:
    """How long /health takes, probed again and again from when `busy` is set until `done`
    is: each probe that started in between counts, however late it ends."""
    times: list[float] = []
    busy.wait(30)
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=30) as http:
        while not done.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            response = http.get(f"{server.root}/health")
            times.append(time.monotonic() - started)
            assert response.status_code == 200
            time.sleep(0.02)
    return times


def test_a_big_put_does_not_block_the_loop(fresh_server):
    server = fresh_server(CONFIG)
    body = big_configuration()
    assert len(body) > 15_000_000
    host, port = server.root.removeprefix("http://").rsplit(":", 1)
    streams = Streams(server, 5)
    wait_until(streams.started)
    sent, answered = threading.Event(), threading.Event()
    result: dict[str, bytes] = {}

    def put() -> None:
        with socket.create_connection((host, int(port)), timeout=60) as sock:
            sock.sendall(f"PUT /_mock/scenarios HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            sent.set()
            result["answer"] = read_answer(sock)
        answered.set()

    putter = threading.Thread(target=put, daemon=True)
    started = time.monotonic()
    putter.start()
    times = probe_health(server, sent, answered)
    putter.join(60)
    streams.join()

    assert result["answer"].startswith(b"HTTP/1.1 200"), result["answer"][:300]
    assert time.monotonic() - started > 1.0  # the load took a while: the probes below ran during it
    assert len(times) >= 5
    # loading on the loop held every probe for the whole load (over a second, asserted above);
    # off it, a probe takes 10-60 ms here, and a loaded 2-core machine has added 0.1 s
    assert max(times) < 0.4, times
    assert streams.complete()
    listed = httpx.get(f"{server.root}/_mock/scenarios", timeout=10).json()["data"]
    assert len(listed) == 8000 and listed[-1]["id"] == "rule-7999"
    response = httpx.post(f"{server.base_url}/chat/completions", timeout=10, json={
        "model": "m", "messages": [{"role": "user", "content": "question 4321"}]})
    assert response.json()["choices"][0]["message"]["content"].startswith("answer 4321 word")


def test_a_big_reload_does_not_block_the_loop(fresh_server, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(CONFIG)
    server = fresh_server(path, "--watch")
    staged = tmp_path / "staged.json"
    staged.write_bytes(big_configuration())
    written, reloaded = threading.Event(), threading.Event()

    def watch_log() -> None:
        wait_until(lambda: "reloaded" in server.log(), timeout=60)
        reloaded.set()

    watcher = threading.Thread(target=watch_log, daemon=True)
    watcher.start()
    started = time.monotonic()
    os.replace(staged, path)  # whole at once: the reload sees the big file, not half of it
    written.set()
    times = probe_health(server, written, reloaded)
    watcher.join(60)
    assert "reloaded" in server.log() and "8000 rules" in server.log()
    assert time.monotonic() - started > 1.0
    assert len(times) >= 5
    # loading on the loop held every probe for the whole load (over a second, asserted above);
    # off it, a probe takes 10-60 ms here, and a loaded 2-core machine has added 0.1 s
    assert max(times) < 0.4, times


def raw_put(server, head: str, body: bytes = b"") -> bytes:
    host, port = server.root.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"PUT /_mock/scenarios HTTP/1.1\r\nHost: {host}:{port}\r\n{head}\r\n".encode() + body)
        try:
            return read_answer(sock)
        except ConnectionResetError:
            return b""


def test_a_put_over_the_body_limit_is_refused_before_it_is_read(fresh_server):
    server = fresh_server(CONFIG, "--max-body-size", "1000")
    # announced: refused without the body being sent at all
    answer = raw_put(server, "Content-Type: application/json\r\nContent-Length: 50000\r\n")
    assert answer.startswith(b"HTTP/1.1 413") and b"request_too_large" in answer
    # chunked, with no length: refused once the limit is passed
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in [b"#" * 600] * 5) + b"0\r\n\r\n"
    answer = raw_put(server, "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", chunks)
    assert answer.startswith(b"HTTP/1.1 413") and b"request_too_large" in answer
    # the configuration was not touched
    assert [r["id"] for r in httpx.get(f"{server.root}/_mock/scenarios", timeout=10).json()["data"]] == [
        "paced", "runaway"]


# --- what check and serve refuse to read ----------------------------------------------------------


@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_device_is_refused(command):
    args = ("check", "/dev/zero") if command == "check" else ("serve", "--port", "0", "--config", "/dev/zero")
    result = cli(*args, timeout=20)
    assert result.returncode == 2
    assert result.stderr == ("/dev/zero:1:1: a character device, not a scenario file: give a regular "
                             "*.yaml file or a folder of them\n")
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_fifo_is_refused_without_hanging(tmp_path, command):
    fifo = tmp_path / "rules.yaml"
    os.mkfifo(fifo)
    args = ("check", str(fifo)) if command == "check" else ("serve", "--port", "0", "--config", str(fifo))
    result = cli(*args, timeout=20)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{fifo}:1:1: a FIFO (named pipe), not a scenario file")


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as file:
        file.truncate(64 * 1024 * 1024 + 1)  # sparse: nothing written
    result = cli("check", str(big), timeout=20)
    assert result.returncode == 2
    assert result.stderr == (f"{big}:1:1: the file is larger than 64 MB, the limit for a scenario file "
                             f"(67,108,865 bytes)\n")


def test_a_folder_reports_what_it_cannot_read_and_skips_sub_folders(tmp_path):
    (tmp_path / "a.yaml").write_text("responses:\n  - {id: a, matcher: {type: any}, reply: x}\n")
    (tmp_path / "sub.yaml").mkdir()
    (tmp_path / "sub.yaml" / "b.yaml").write_text("not: [valid\n")
    os.mkfifo(tmp_path / "c.yaml")
    with open(tmp_path / "d.yml", "wb") as file:
        file.truncate(65 * 1024 * 1024)
    result = cli("check", str(tmp_path), timeout=20)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'c.yaml'}:1:1: a FIFO (named pipe), not a scenario file: give a regular *.yaml file or a folder of them",
        f"{tmp_path / 'd.yml'}:1:1: the file is larger than 64 MB, the limit for a scenario file (68,157,440 bytes)",
    ]
    os.remove(tmp_path / "c.yaml")
    os.remove(tmp_path / "d.yml")
    assert cli("check", str(tmp_path)).stdout == f"{tmp_path}: ok, 1 rule\n"


@pytest.mark.parametrize("command", ["check", "serve"])
def test_standard_input_is_read_up_to_the_limit(command):
    args = ("check", "-") if command == "check" else ("serve", "--port", "0", "--config", "-")
    with open("/dev/zero", "rb") as endless:
        result = cli(*args, stdin=endless, timeout=30)
    assert result.returncode == 2
    assert result.stderr == "<stdin>:1:1: standard input is larger than 64 MB, the limit for a configuration\n"
