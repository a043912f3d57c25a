"""`serve --workers N` and `--state redis://...`: real processes and a real Redis. Several
workers (or several servers sharing one Redis) mean what one process means: steps, cycles,
seeded ids, stored Responses, the journal, the configuration and reset."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import httpx
import openai
import pytest
from conftest import chat_body, raw_request

STEPS = """
seed: 42
responses:
  - id: five
    matcher: {type: contains, messages: [{role: user, content: five}]}
    reply: made it
    steps:
      - error: {status: 429}
      - error: {status: 503}
      - {}
      - error: {status: 500}
      - {}
  - id: round
    matcher: {type: contains, messages: [{role: user, content: round}]}
    reply: around
    cycle: true
    steps:
      - {}
      - error: {status: 502}
  - id: plain
    matcher: {type: any}
    reply: hello
"""

STREAMS = """
responses:
  - id: slow
    matcher: {type: contains, messages: [{role: user, content: slow}]}
    reply: "one two three four five six seven eight nine ten eleven twelve"
    delay_ms: 100
  - id: flow
    messages:
      - {role: user, content: hello, matcher: contains}
      - {role: assistant, content: first}
      - {role: user, content: again, matcher: contains}
      - {role: assistant, content: second}
      - {role: user, content: more, matcher: contains}
      - {role: assistant, content: third}
  - id: plain
    matcher: {type: any}
    reply: hello
"""


@pytest.fixture
def state(redis_server) -> list[str]:
    """The options that put a server's state in the test session's Redis, under a prefix of this
    test's own."""
    return ["--state", redis_server.url, "--state-prefix", f"t{uuid.uuid4().hex[:10]}:"]


def one_request(server, text: str, session: str = "s") -> tuple[int, str, str | None]:
    """(status, x-request-id, completion id) over a connection of its own, so that any worker may
    take it."""
    response = httpx.post(f"{server.base_url}/chat/completions", json=chat_body(text, stream=False), timeout=10,
                          headers={"Connection": "close", "X-Mock-Session": session,
                                   "Authorization": "Bearer k"})
    body = response.json()
    return response.status_code, response.headers["x-request-id"], body.get("id")


def workers_that_answered(server) -> set[str]:
    return set(re.findall(r"^\d\d:\d\d:\d\d (w\d+) POST", server.log(), re.M))


def test_several_workers_without_a_shared_state_refuse_to_start(tmp_path):
    result = subprocess.run([sys.executable, "-m", "openai_mock", "serve", "--workers", "2", "--port", "0"],
                            capture_output=True, text=True, timeout=30, env={**os.environ, "OPENAI_MOCK_STATE": ""})
    assert result.returncode == 2
    assert "--workers 2 needs a state that the workers share" in result.stderr
    assert "--state redis://127.0.0.1:6379/0" in result.stderr
    assert "Traceback" not in result.stderr


def test_four_workers_count_steps_cycles_and_seeded_ids_as_one_process(fresh_server, state):
    one = fresh_server(STEPS)
    four = fresh_server(STEPS, "--workers", "4", *state, "-v")
    texts = ["five"] * 7 + ["round"] * 5 + ["plain"] * 3
    seen = {name: [one_request(server, text) for text in texts] for name, server in (("one", one), ("four", four))}
    assert [status for status, _, _ in seen["one"]] == [429, 503, 200, 500, 200, 200, 200,
                                                        200, 502, 200, 502, 200, 200, 200, 200]
    assert seen["four"] == seen["one"]  # statuses, and every seeded id, alike
    assert len(workers_that_answered(four)) >= 2  # (connections went to several workers)


def test_three_servers_on_one_redis_are_one_mock(fresh_server, state, session_id):
    servers = [fresh_server(STREAMS, *state) for _ in range(3)]
    clients = [server.client(session_id) for server in servers]
    # a Responses conversation whose every turn goes to another server
    first = clients[0].responses.create(model="gpt-5", input="hello")
    second = clients[1].responses.create(model="gpt-5", input="again", previous_response_id=first.id)
    third = clients[2].responses.create(model="gpt-5", input="more", previous_response_id=second.id)
    assert [first.output_text, second.output_text, third.output_text] == ["first", "second", "third"]
    assert clients[0].responses.retrieve(third.id).output_text == "third"
    # every server lists every request, in order
    journals = [server.journal(session_id) for server in servers]
    assert journals[0] == journals[1] == journals[2]
    assert [(e["method"], e["rule_id"], e["status"]) for e in journals[0]] == [
        ("POST", "flow", 200), ("POST", "flow", 200), ("POST", "flow", 200), ("GET", None, 200)]
    assert [e["body"]["input"] for e in journals[0][:3]] == ["hello", "again", "more"]
    # a configuration PUT on one is served by the others when it returns (a server takes at
    # most 100 ms to see a new version, then loads it; the PUT waits for them, up to a second)
    new = b"responses:\n  - id: new\n    matcher: {type: any}\n    reply: brand new\n"
    sent = time.monotonic()
    put = httpx.put(f"{servers[0].root}/_mock/scenarios", content=new, timeout=10,
                    headers={"Content-Type": "application/yaml"})
    took = time.monotonic() - sent
    assert put.status_code == 200
    for server in servers[1:]:
        answer = server.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert answer.choices[0].message.content == "brand new"
    assert took < 0.2 + 0.3  # 200 ms, and what a loaded machine adds
    # a reset on one resets all
    servers[2].reset()
    assert all(server.journal() == [] for server in servers)
    with pytest.raises(openai.NotFoundError):
        clients[1].responses.retrieve(first.id)


# seconds after which a server behind a SlowLink has written what its journal held: its next
# write (ten a second) and the link's delay, with room for a loaded machine
JOURNAL_WRITTEN = 0.1 + 0.2 + 0.5


class SlowLink:
    """A TCP relay to Redis that holds what a server sends for DELAY seconds before passing it
    on (Redis's answers come back at once): a server behind it is as far from Redis as a server
    across a slow network. Threads and plain sockets, order kept."""

    DELAY = 0.2

    def __init__(self, redis_port: int):
        self.redis_port = redis_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.redis_port))
            held: queue.Queue[tuple[float, bytes]] = queue.Queue()
            threading.Thread(target=self._read, args=(client, held), daemon=True).start()
            threading.Thread(target=self._release, args=(held, upstream), daemon=True).start()
            threading.Thread(target=self._pass, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _read(source: socket.socket, held: queue.Queue[tuple[float, bytes]]) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            held.put((time.monotonic() + SlowLink.DELAY, data))
            if not data:
                return

    @staticmethod
    def _release(held: queue.Queue[tuple[float, bytes]], target: socket.socket) -> None:
        while True:
            due, data = held.get()
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                if not data:
                    target.shutdown(socket.SHUT_WR)
                    return
                target.sendall(data)
            except OSError:
                return

    @staticmethod
    def _pass(source: socket.socket, target: socket.socket) -> None:
        with source, target:
            while data := source.recv(65536):
                target.sendall(data)

    def close(self) -> None:
        self.closed = True
        self.listener.close()


def test_answers_do_not_wait_on_the_journal_and_every_server_lists_them(fresh_server, state, redis_server,
                                                                          session_id):
    """With a shared store, an answer does not wait for its journal entry to reach Redis (it is
    written behind); a server that reads the journal first asks every other to write theirs, so a
    request that a client has seen end is listed by any server at once."""
    link = SlowLink(redis_server.port)
    try:
        near = fresh_server(STREAMS, *state)
        slow_state = [state[0], f"redis://127.0.0.1:{link.port}/0", *state[2:]]
        far = fresh_server(STREAMS, *slow_state)
        client = far.client(session_id)
        far.journal(session_id)  # (its connections to Redis are open)
        for stream in (False, True):
            sent = time.monotonic()
            if stream:
                chunks = list(client.chat.completions.create(
                    model="m", stream=True, messages=[{"role": "user", "content": "hello"}]))
                assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "first"
            else:
                answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}])
                assert answer.choices[0].message.content == "first"
            took = time.monotonic() - sent
            assert took < SlowLink.DELAY * 0.75, f"the answer waited {took:.3f} s: on its journal write?"
            sent = time.monotonic()
            listed = near.journal(session_id)
            read_in = time.monotonic() - sent
            assert [(e["stream"], e["outcome"]) for e in listed][-1] == (stream, "completed"), listed
            assert len(listed) == 1 + stream
            assert read_in < 0.9, f"the far server did not answer the request to write ({read_in:.3f} s)"
    finally:
        link.close()


def test_a_reset_forgets_what_other_servers_had_not_written_yet(fresh_server, state, redis_server, session_id):
    """Answers that ended before a reset, on a server that had not written their entries yet,
    are forgotten with the rest: they do not come back when that server writes."""
    link = SlowLink(redis_server.port)
    try:
        near = fresh_server(STREAMS, *state)
        far = fresh_server(STREAMS, state[0], f"redis://127.0.0.1:{link.port}/0", *state[2:])
        far.journal(session_id)  # (its connections to Redis are open)
        for _ in range(3):
            far.client(session_id).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        near.reset(session_id)
        time.sleep(JOURNAL_WRITTEN)  # (what the far server held is written by now, or never)
        assert near.journal(session_id) == []
        assert far.journal(session_id) == []
    finally:
        link.close()


def test_a_server_that_stops_writes_what_its_journal_held(fresh_server, state, session_id):
    near = fresh_server(STREAMS, *state)
    leaving = fresh_server(STREAMS, *state)
    answer = leaving.client(session_id).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hello"}])
    leaving.stop()  # SIGTERM, at once: before its next write
    assert answer.choices[0].message.content == "first"
    assert [(e["rule_id"], e["outcome"]) for e in near.journal(session_id)] == [("flow", "completed")]


def child_pids(pid: int) -> list[int]:
    """The children of process `pid`, whichever of its threads started them."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found += [int(p) for p in children.read().split()]
        except OSError:
            continue
    return sorted(found)


def client_ports_of(pid: int) -> set[int]:
    """The client ports of the TCP connections process `pid` holds (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[2].split(":")[1], 16))  # (the remote end: the client)
    return ports


def test_a_killed_worker_is_restarted_and_the_other_streams_complete(fresh_server, state):
    server = fresh_server(STREAMS, "--workers", "3", *state)
    results: dict[int, str] = {}
    socks: list[socket.socket] = []
    lock = threading.Lock()

    def stream(index: int) -> None:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        with lock:
            socks.append(sock)
        payload = json.dumps(chat_body("slow")).encode()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        received = b""
        try:
            while b"0\r\n\r\n" not in received:
                data = sock.recv(65536)
                if not data:
                    break
                received += data
        except OSError:
            pass
        results[sock.getsockname()[1]] = "complete" if received.endswith(b"0\r\n\r\n") else "cut"
        sock.close()

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # every stream under way (12 chunks, 100 ms apart)
    workers = child_pids(server.process.pid)
    assert len(workers) == 3
    victim = workers[0]
    on_victim = client_ports_of(victim) & {sock.getsockname()[1] for sock in socks}
    os.kill(victim, signal.SIGKILL)
    for thread in threads:
        thread.join(30)
    assert len(results) == 30
    cut = {port for port, how in results.items() if how == "cut"}
    assert cut == on_victim  # the victim's streams, and no other
    print(f"{len(on_victim)} of 30 streams were on the killed worker")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the parent starts it again
        now = child_pids(server.process.pid)
        if len(now) == 3 and victim not in now:
            break
        time.sleep(0.1)
    assert len(child_pids(server.process.pid)) == 3 and victim not in child_pids(server.process.pid)
    assert "exited with signal SIGKILL; starting it again" in server.log()
    assert [one_request(server, "plain")[0] for _ in range(6)] == [200] * 6


def test_a_redis_that_goes_away_gives_503s_then_service_again(fresh_server, state, redis_server):
    server = fresh_server(STEPS, "--workers", "2", *state)
    assert one_request(server, "five")[0] == 429
    redis_server.stop()
    try:
        down = httpx.post(f"{server.base_url}/chat/completions", json=chat_body("five", stream=False), timeout=10,
                          headers={"Connection": "close"})
        assert down.status_code == 503
        assert down.headers["x-should-retry"] == "true"
        error = down.json()["error"]
        assert error["code"] == "store_unavailable" and redis_server.url in error["message"]
        admin = httpx.get(f"{server.root}/_mock/requests", timeout=10)
        assert admin.status_code == 503
    finally:
        redis_server.start()
    deadline = time.monotonic() + 15
    while one_request(server, "five")[0] == 503:
        assert time.monotonic() < deadline, "the mock never came back"
        time.sleep(0.2)
    # the restarted Redis lost everything (no persistence here): the workers publish their
    # configuration again, for a worker or a server that starts later
    prefix = state[state.index("--state-prefix") + 1]
    deadline = time.monotonic() + 5
    while not redis_cli(redis_server, "HGET", f"{prefix}config", "version"):
        assert time.monotonic() < deadline, "the configuration was not published again"
        time.sleep(0.1)
    assert "Traceback" not in server.log()


def redis_cli(redis_server, *command: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(redis_server.port), *command], capture_output=True, text=True,
                          timeout=10).stdout.strip()


def test_stateless_rules_answer_while_redis_is_down(fresh_server, state, redis_server):
    server = fresh_server("responses:\n  - id: plain\n    matcher: {type: any}\n    reply: hello\n", "--workers", "2",
                          *state)
    redis_server.stop()
    try:
        assert [one_request(server, "anything")[0] for _ in range(5)] == [200] * 5
        streamed = raw_request("127.0.0.1", server.port, "POST", "/v1/chat/completions", chat_body("hi"))
        assert streamed.status == 200 and streamed.events[-1] == "[DONE]"
    finally:
        redis_server.start()
    assert "Traceback" not in server.log()


def test_ctrl_c_and_sigterm_stop_every_worker_within_a_second(fresh_server, state):
    for stop in (signal.SIGINT, signal.SIGTERM):
        server = fresh_server(STREAMS, "--workers", "3", *state)
        workers = child_pids(server.process.pid)
        assert len(workers) == 3
        stopped = time.monotonic()
        server.process.send_signal(stop)
        server.process.wait(10)
        assert time.monotonic() - stopped < 1.0 + 1.0  # 1 s, and a loaded machine's scheduling
        assert server.process.returncode == 0
        for pid in workers:
            assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
        assert "Traceback" not in server.log()


def test_watch_reaches_every_worker(fresh_server, state, tmp_path):
    config = tmp_path / "scenarios.yaml"
    config.write_text("responses:\n  - id: old\n    matcher: {type: any}\n    reply: old\n")
    server = fresh_server(str(config), "--workers", "3", "--watch", *state)
    assert {server.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            .choices[0].message.content for _ in range(6)} == {"old"}
    config.write_text("responses:\n  - id: new\n    matcher: {type: any}\n    reply: new\n")
    deadline = time.monotonic() + 10
    while True:
        answers = [one_request(server, "x") for _ in range(9)]
        if all(status == 200 for status, _, _ in answers):
            texts = {httpx.post(f"{server.base_url}/chat/completions", json=chat_body("x", stream=False),
                                headers={"Connection": "close"}, timeout=10).json()["choices"][0]["message"]["content"]
                     for _ in range(9)}
            if texts == {"new"}:
                break
        assert time.monotonic() < deadline, "the reload never reached every worker"
        time.sleep(0.2)


def test_mockserver_with_workers(redis_server):
    from openai_mock import MockServer

    with pytest.raises(ValueError, match="needs a state that the workers share"):
        MockServer(STEPS, workers=2)
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    with MockServer(STEPS, workers=3, state=redis_server.url, state_prefix=prefix) as mock:
        client = mock.client(max_retries=0)
        statuses = []
        for _ in range(5):
            try:
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": "five"}],
                                               extra_headers={"Connection": "close"})
                statuses.append(200)
            except openai.APIStatusError as error:
                statuses.append(error.status_code)
        assert statuses == [429, 503, 200, 500, 200]
        assert [e["status"] for e in mock.requests("default")] == statuses
        mock.replace({"responses": [{"id": "new", "matcher": {"type": "any"}, "reply": "replaced"}]})
        assert client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]).choices[0].message.content == "replaced"
        mock.reset()
        assert mock.requests() == []
        process = mock._process
    assert process is not None and process.poll() is not None  # stopped, workers with it


def test_the_pytest_plugin_serves_with_workers(tmp_path, redis_server):
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n"
        "@pytest.fixture(scope='session')\n"
        "def openai_mock_options():\n"
        f"    return {{'workers': 2, 'state': {redis_server.url!r}, 'state_prefix': 't{uuid.uuid4().hex[:8]}:'}}\n")
    (tmp_path / "test_steps.py").write_text(
        "import openai, pytest\n\n"
        "@pytest.mark.parametrize('n', range(3))\n"
        "def test_steps_per_test(openai_mock, n):\n"
        "    client = openai_mock.client(max_retries=0)\n"
        "    with pytest.raises(openai.RateLimitError):\n"
        "        client.chat.completions.create(model='m', messages=[{'role': 'user', 'content': 'five'}])\n"
        "    assert [e['status'] for e in openai_mock.requests()] == [429]\n")
    (tmp_path / "conftest.py").write_text((tmp_path / "conftest.py").read_text() + (
        "\n@pytest.fixture(scope='session')\ndef openai_mock_config():\n    return " + repr(STEPS) + "\n"))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert "3 passed" in result.stdout, result.stdout + result.stderr
