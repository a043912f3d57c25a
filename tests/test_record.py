"""`openai-mock record` and replay, with no internet: the upstream is a second openai-mock on
loopback. Each case is recorded through the official SDK, the file is replayed with `serve`,
and the SDK must see the same thing: content, tool calls, ids, finish reasons, usage, the
chunks, the same exception at the same chunk, the same status and retry headers, the same
pacing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from conftest import _readline, chat_body, raw_request

UPSTREAM = """
seed: 7
responses:
  - id: tools
    matcher: {type: contains, messages: [{role: user, content: weather}]}
    reply:
      content: Looking it up.
      tool_calls:
        - {id: call_w1, type: function, function: {name: get_weather, arguments: '{"city": "Oslo"}'}}
  - id: paced
    matcher: {type: contains, messages: [{role: user, content: paced}]}
    reply: "one two three four five six seven eight"
    first_chunk_delay_ms: 80
    delay_ms: 30
    jitter_ms: 15
  - id: cut
    matcher: {type: contains, messages: [{role: user, content: cut}]}
    reply: "this stream will break after four chunks"
    fail_after_chunks: 4
    failure: disconnect
  - id: limited
    matcher: {type: contains, messages: [{role: user, content: limited}]}
    reply: Finally through.
    steps:
      - error: {status: 429, headers: {retry-after-ms: "10", x-ratelimit-remaining-requests: "0"}}
      - {}
  - id: gateway
    matcher: {type: contains, messages: [{role: user, content: gateway}]}
    reply: never
    error: {status: 502, body: "<html><body><h1>502 Bad Gateway</h1></body></html>", content_type: text/html}
  - id: chain
    messages:
      - {role: user, content: first turn}
      - {role: assistant, content: First answer.}
      - {role: user, content: second turn}
      - {role: assistant, content: Second answer.}
  - id: plain
    matcher: {type: any}
    reply: A plain answer.
"""


class Recorder:
    """`openai-mock record` in a subprocess."""

    def __init__(self, upstream: str, out: Path, *args: str, env: dict[str, str] | None = None):
        self.out = out
        self.log_path = out.parent / "record.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "openai_mock", "record", "--upstream", upstream, "--out", str(out), "--port", "0",
             *args], stdout=subprocess.PIPE, stderr=self._log, text=True, env={**os.environ, **(env or {})})
        line = _readline(self.process, timeout=20)
        assert line.startswith("http://"), line + self.log_path.read_text()
        self.base_url = line.strip()

    def client(self, **options) -> openai.OpenAI:
        options.setdefault("api_key", "sk-upstream-secret-key")
        return openai.OpenAI(base_url=self.base_url, **options)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)
        self._log.close()


@pytest.fixture
def upstream(fresh_server):
    return fresh_server(UPSTREAM)


@pytest.fixture
def record(upstream, tmp_path):
    started: list[Recorder] = []

    def start(*args: str, **kwargs) -> Recorder:
        recorder = Recorder(upstream.base_url, tmp_path / "recorded.yaml", *args, **kwargs)
        started.append(recorder)
        return recorder

    yield start
    for recorder in started:
        recorder.stop()


def chunks_of(client: openai.OpenAI, text: str) -> tuple[list[dict], type | None]:
    """Every chunk of a streamed chat completion, and the exception that ended it (if any)."""
    seen = []
    try:
        for chunk in client.chat.completions.create(model="gpt-4o", stream=True,
                                                    messages=[{"role": "user", "content": text}]):
            seen.append(chunk.model_dump())
    except openai.APIError as error:
        return seen, type(error)
    return seen, None


def gaps_of(base_url: str, text: str) -> list[float]:
    """The time between the data events of a stream, as a client reads them (in seconds)."""
    arrivals = []
    with httpx.stream("POST", base_url + "/chat/completions", json=chat_body(text), timeout=10,
                      headers={"Authorization": "Bearer k"}) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.perf_counter())
    return [b - a for a, b in zip(arrivals, arrivals[1:])]


def test_record_then_replay_every_case(record, fresh_server, tmp_path):
    recorder = record()
    live = recorder.client(max_retries=2)
    # a plain answer with tool calls, and streams: paced, and cut after four chunks
    asked = live.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "weather?"}])
    streamed, _ = chunks_of(live, "weather?")
    paced, _ = chunks_of(live, "paced please")
    cut, cut_error = chunks_of(live, "cut now")
    # a 429, retried by the SDK, then the answer; a raw HTML 502
    limited = live.chat.completions.with_raw_response.create(model="gpt-4o", messages=[
        {"role": "user", "content": "limited"}])
    with pytest.raises(openai.APIStatusError) as gateway:
        recorder.client(max_retries=0).chat.completions.create(model="gpt-4o", messages=[
            {"role": "user", "content": "gateway"}])
    # a Responses conversation, an embedding, a legacy completion streamed, a moderation
    first = live.responses.create(model="gpt-5", input="first turn")
    second = live.responses.create(model="gpt-5", input="second turn", previous_response_id=first.id)
    vector = live.embeddings.create(model="text-embedding-3-small", input="hello")
    legacy = [c.model_dump() for c in live.completions.create(model="gpt-3.5-turbo-instruct", prompt="legacy",
                                                              stream=True)]
    moderated = live.moderations.create(input="is this fine?")
    recorder.stop()

    check = subprocess.run([sys.executable, "-m", "openai_mock", "check", str(recorder.out)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr
    replay = fresh_server(str(recorder.out))
    again = replay.client(max_retries=2)
    assert again.chat.completions.create(model="gpt-4o", messages=[
        {"role": "user", "content": "weather?"}]).model_dump() == asked.model_dump()
    assert chunks_of(again, "weather?") == (streamed, None)
    assert chunks_of(again, "paced please") == (paced, None)
    assert chunks_of(again, "cut now") == (cut, cut_error)
    assert cut_error is openai.APIConnectionError and len(cut) == 4
    replayed = again.chat.completions.with_raw_response.create(model="gpt-4o", messages=[
        {"role": "user", "content": "limited"}])
    assert replayed.parse().model_dump() == limited.parse().model_dump()
    assert replayed.retries_taken == limited.retries_taken == 1
    assert replayed.headers["x-request-id"] == limited.headers["x-request-id"]
    with pytest.raises(openai.RateLimitError) as first_try:  # (a session of its own: its first step again)
        replay.client("again", max_retries=0).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "limited"}])
    assert first_try.value.response.headers["retry-after-ms"] == "10"
    assert first_try.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.APIStatusError) as replayed_gateway:
        replay.client(max_retries=0).chat.completions.create(model="gpt-4o", messages=[
            {"role": "user", "content": "gateway"}])
    assert replayed_gateway.value.status_code == gateway.value.status_code == 502
    assert replayed_gateway.value.response.text == gateway.value.response.text
    assert replayed_gateway.value.response.headers["content-type"].startswith("text/html")
    first_again = again.responses.create(model="gpt-5", input="first turn")
    second_again = again.responses.create(model="gpt-5", input="second turn", previous_response_id=first_again.id)
    assert (first_again.id, first_again.output_text) == (first.id, first.output_text)
    assert second_again.model_dump() == second.model_dump()
    assert again.embeddings.create(model="text-embedding-3-small", input="hello").model_dump() == vector.model_dump()
    assert [c.model_dump() for c in again.completions.create(model="gpt-3.5-turbo-instruct", prompt="legacy",
                                                             stream=True)] == legacy
    assert again.moderations.create(input="is this fine?").model_dump() == moderated.model_dump()
    # (vectors made up here would be the same: the journal says which rule answered)
    answered = {e["path"]: e["rule_id"] for e in replay.journal()}
    assert answered["/v1/embeddings"].startswith("embeddings-")
    assert answered["/v1/moderations"].startswith("moderations-")


def test_a_replayed_stream_keeps_its_pacing(record, fresh_server, upstream):
    recorder = record()
    recorded = gaps_of(recorder.base_url, "paced please")
    recorder.stop()
    written = yaml.safe_load(recorder.out.read_text())["responses"][0]["recorded"]["events"]
    replay = fresh_server(str(recorder.out))
    replayed = gaps_of(replay.base_url, "paced please")
    assert len(replayed) == len(recorded) == len(written) - 1
    # each gap as recorded (the waits written), within 5 ms: the recorder measured them as the
    # upstream sent them, and a replay waits them out again. (The median within 5 ms; each
    # within 25 ms, since a loaded 2-core machine may read one event late, then the next early.)
    differences = sorted(abs(gap * 1000 - event["wait_ms"]) for gap, event in zip(replayed, written[1:]))
    assert differences[len(differences) // 2] < 5, differences
    assert differences[-1] < 25, differences


def test_no_key_reaches_the_file(record):
    recorder = record("--redact", r"secret-\w+")
    client = recorder.client(api_key="sk-upstream-secret-key", organization="org-secret-org", project="proj_secret",
                             default_headers={"api-key": "sk-azure-secret", "Cookie": "session=secret-cookie"})
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "the code is secret-7412"}])
    recorder.stop()
    text = recorder.out.read_text()
    for secret in ("sk-upstream-secret-key", "org-secret-org", "proj_secret", "sk-azure-secret", "secret-cookie",
                   "secret-7412", "Authorization", "authorization"):
        assert secret not in text
    rule = yaml.safe_load(text)["responses"][0]
    assert rule["matcher"]["messages"][0]["matcher"] == "regex"  # the masked prompt still matches


def test_ctrl_c_leaves_a_valid_file(record):
    recorder = record()
    client = recorder.client()
    done = threading.Event()

    def keep_asking() -> None:
        number = 0
        while not done.is_set():
            number += 1
            try:
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"q {number}"}])
            except openai.APIConnectionError:
                return

    asking = threading.Thread(target=keep_asking)
    asking.start()
    time.sleep(1.0)
    recorder.stop(signal.SIGINT)
    done.set()
    asking.join(10)
    check = subprocess.run([sys.executable, "-m", "openai_mock", "check", str(recorder.out)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr
    assert len(yaml.safe_load(recorder.out.read_text())["responses"]) >= 2


def test_last_user_matching(record, fresh_server):
    recorder = record("--match", "last-user")
    client = recorder.client()
    asked = client.chat.completions.create(model="gpt-4o", messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}])
    recorder.stop()
    rule = yaml.safe_load(recorder.out.read_text())["responses"][0]
    assert rule["matcher"]["messages"] == [{"role": "user", "content": "hello there"}]
    replay = fresh_server(str(recorder.out))
    other = replay.client().chat.completions.create(model="gpt-4o", messages=[
        {"role": "system", "content": "A different system prompt."}, {"role": "user", "content": "hello there"}])
    assert other.choices[0].message.content == asked.choices[0].message.content


REAL = Path(__file__).parent / "data" / "recorded_chat"


@pytest.fixture
def real_streams(tmp_path):
    """A small server that sends the recorded real streams byte for byte, one per request, in
    the order of their files."""
    import socket

    files = sorted(REAL.glob("*.bin"))
    assert files
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]

    def serve() -> None:
        for file in files:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with client:
                received = b""
                while b"\r\n\r\n" not in received:
                    received += client.recv(65536)
                head, _, rest = received.partition(b"\r\n\r\n")
                length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")][0])
                while len(rest) < length:
                    rest += client.recv(65536)
                client.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                               b"connection: close\r\n\r\n" + file.read_bytes())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/v1", files
    listener.close()


def test_real_openai_streams_replay_byte_for_byte(real_streams, tmp_path, fresh_server):
    url, files = real_streams
    recorder = Recorder(url, tmp_path / "real.yaml")
    try:
        for number, _ in enumerate(files):
            raw_request("127.0.0.1", int(recorder.base_url.rsplit(":", 1)[1].split("/")[0]), "POST",
                        "/v1/chat/completions", chat_body(f"real {number}"))
    finally:
        recorder.stop()
    replay = fresh_server(str(tmp_path / "real.yaml"))
    for number, file in enumerate(files):
        expected = [block[len("data: "):] for block in file.read_text().split("\n\n") if block.startswith("data: ")]
        got = raw_request("127.0.0.1", replay.port, "POST", "/v1/chat/completions", chat_body(f"real {number}"))
        assert got.events == expected, file.name
