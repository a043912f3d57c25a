"""Big answers: a long reply is streamed a frame at a time (its frames are never all in memory,
and nothing of it stays once the client has gone), and an embeddings answer at the real API's
bounds is written once, off the event loop, while other clients are answered."""

from __future__ import annotations

import contextlib
import json
import math
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import attrs
import httpx
import pytest

WORDS = ["lorem", "ipsum", "dolor", "sit", "amet,", "consectetur", "adipiscing", "elit."]


def long_text(characters: int, seed: int = 1) -> str:
    """About `characters` of words (a 1 MB text is some 150,000 words: as many frames by word)."""
    rng = random.Random(seed)
    words, size = [], 0
    while size < characters:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def rules(text: str) -> str:
    """A short reply to "warm up", the long one to anything else."""
    return ("responses:\n"
            "  - id: short\n    matcher: {type: contains, messages: [{role: user, content: warm up}]}\n    reply: ok\n"
            f"  - id: long\n    matcher: {{type: any}}\n    reply: {json.dumps(text)}\n")


def status_mb(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no {key}")


class Peak:
    """The process's peak resident memory since it was made: the kernel's own (VmHWM, reset by
    writing 5 to clear_refs) where it may be reset, and VmRSS sampled every few milliseconds."""

    def __init__(self, pid: int):
        self.pid = pid
        self.before = status_mb(pid, "VmRSS")
        self.sampled = self.before
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as clear:
                clear.write("5")
            self.kernel = True
        except OSError:
            self.kernel = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.sampled = max(self.sampled, status_mb(self.pid, "VmRSS"))

    def growth(self) -> float:
        """MB above the resident memory at the start, at the peak so far."""
        peak = self.sampled
        if self.kernel:
            peak = max(peak, status_mb(self.pid, "VmHWM"))
        return peak - self.before

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.growth()


PATHS = {"chat": "/chat/completions", "responses": "/responses", "completions": "/completions"}


def request_body(endpoint: str, stream: bool, say: str = "hi") -> tuple[str, dict]:
    asked = {"chat": {"messages": [{"role": "user", "content": say}]}, "responses": {"input": say, "store": False},
             "completions": {"prompt": say}}[endpoint]
    model = "gpt-3.5-turbo-instruct" if endpoint == "completions" else "gpt-4o"
    return PATHS[endpoint], {"model": model, "stream": stream, **asked}


def warm_up(client: httpx.Client, server) -> None:
    """A short request of each kind, streamed and not, so that what is loaded at the first is not counted."""
    for endpoint in PATHS:
        for stream in (True, False):
            path, body = request_body(endpoint, stream, say="warm up")
            response = client.post(server.base_url + path, json=body)
            assert response.status_code == 200 and "ok" in response.text
    time.sleep(0.2)


@attrs.frozen
class LongReply:
    text: str
    server: Any
    client: httpx.Client
    url: str
    path: str
    body: dict
    peak: Peak


@contextlib.contextmanager
def long_reply(fresh_server, size: int, endpoint: str, stream: bool) -> Iterator[LongReply]:
    """A server whose rule answers `size` characters, a client that has warmed it up, and the
    server's memory measured from then on."""
    text = long_text(size)
    server = fresh_server(rules(text))
    path, body = request_body(endpoint, stream)
    with httpx.Client(timeout=120) as client:
        warm_up(client, server)
        yield LongReply(text, server, client, server.base_url + path, path, body, Peak(server.process.pid))


def text_of(endpoint: str, events: Iterator[dict]) -> tuple[str, int]:
    """The streamed text put back together, and how many events carried some of it."""
    pieces = []
    for event in events:
        if endpoint == "chat":
            pieces.extend(choice["delta"].get("content") or "" for choice in event["choices"])
        elif endpoint == "completions":
            pieces.extend(choice["text"] for choice in event["choices"])
        elif event["type"] == "response.output_text.delta":
            pieces.append(event["delta"])
    return "".join(pieces), sum(1 for piece in pieces if piece)


def sse_data(lines: Iterator[str]) -> Iterator[dict]:
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[6:])


@pytest.mark.parametrize("endpoint", list(PATHS))
def test_a_long_streamed_reply_is_made_as_it_is_sent(fresh_server, endpoint):
    # 1 MB by word: some 150,000 frames, which the server once made all before sending the first
    # (and some 800 bytes of memory each: 120 MB and more at the peak)
    with long_reply(fresh_server, 1_000_000, endpoint, stream=True) as run:
        with run.client.stream("POST", run.url, json=run.body) as response:
            assert response.status_code == 200
            lines = list(response.iter_lines())
        grown = run.peak.stop()
    text = run.text
    got, pieces = text_of(endpoint, sse_data(iter(lines)))
    assert got == text and pieces == len(text.split())  # every word, one frame each
    last = [line for line in lines if line.startswith("data: ")][-1]
    if endpoint == "responses":
        assert json.loads(last[6:])["type"] == "response.completed"
    else:
        assert last == "data: [DONE]"
    assert grown < 40, f"the server grew by {grown:.0f} MB to stream a 1 MB reply"


@pytest.mark.parametrize("endpoint", list(PATHS))
def test_a_client_that_leaves_a_long_stream_leaves_nothing_behind(fresh_server, endpoint):
    # 10 MB: some 1.5 million frames (the server once made them all first, 1.2 GB and more, and
    # kept tens of MB after the client had gone); the client reads a few and leaves
    with long_reply(fresh_server, 10_000_000, endpoint, stream=True) as run:
        server, path, peak = run.server, run.path, run.peak
        with run.client.stream("POST", run.url, json=run.body) as response:
            read = 0
            for chunk in response.iter_raw():
                read += len(chunk)
                if read > 200_000:
                    break
        deadline = time.monotonic() + 60
        while True:
            entries = [e for e in server.journal() if e["path"] == "/v1" + path and e["stream"]]
            if entries and entries[-1]["outcome"] == "client_disconnected":
                break
            assert time.monotonic() < deadline, entries[-1:]
            time.sleep(0.1)
        time.sleep(0.3)
        grown = peak.stop()
        after = status_mb(server.process.pid, "VmRSS") - peak.before
    assert grown < 40, f"the server grew by {grown:.0f} MB for a client that read 200 KB of a 10 MB reply"
    assert after < 20, f"{after:.0f} MB stayed after the client left"


def test_a_long_plain_reply_is_not_held_several_times(fresh_server):
    with long_reply(fresh_server, 20_000_000, "chat", stream=False) as run:  # some 20 MB of JSON
        response = run.client.post(run.url, json=run.body)
        grown = run.peak.stop()
    assert response.json()["choices"][0]["message"]["content"] == run.text
    # the JSON is made as text, then as bytes (json.dumps makes a str), and sent: about twice its
    # size, briefly (it was six times)
    assert grown < 4 * 21, f"the server grew by {grown:.0f} MB to answer 20 MB"


def unit(vector: list[float]) -> bool:
    return abs(math.fsum(v * v for v in vector) - 1.0) < 1e-5


def test_embeddings_at_the_bounds_are_written_once_while_others_are_answered(fresh_server):
    server = fresh_server(rules("ok"))
    inputs = [f"input number {n}" for n in range(2048)]  # the real API's most: 2,048 inputs
    body = {"model": "text-embedding-3-large", "input": inputs, "encoding_format": "float"}  # 3,072 each
    slowest = 0.0
    done = threading.Event()

    def health() -> None:
        nonlocal slowest
        with httpx.Client(base_url=server.root, timeout=120) as client:
            while not done.is_set():
                started = time.perf_counter()
                assert client.get("/health").status_code == 200
                slowest = max(slowest, time.perf_counter() - started)
                time.sleep(0.02)

    with httpx.Client(base_url=server.base_url, timeout=300) as client:
        alone = client.post("/embeddings", json={**body, "input": inputs[7]}).json()["data"][0]["embedding"]
        time.sleep(0.2)
        peak = Peak(server.process.pid)
        poller = threading.Thread(target=health)
        poller.start()
        try:
            time.sleep(0.1)
            response = client.post("/embeddings", json=body)
        finally:
            done.set()
            poller.join()
        grown = peak.stop()
    size = len(response.content) / 2**20  # some 128 MB of JSON
    answer = response.json()
    assert response.status_code == 200 and int(response.headers["content-length"]) == len(response.content)
    data = answer["data"]
    assert [item["index"] for item in data] == list(range(2048))
    assert all(len(item["embedding"]) == 3072 for item in data)
    assert data[7]["embedding"] == alone and unit(data[0]["embedding"]) and unit(data[2047]["embedding"])
    assert answer["usage"]["prompt_tokens"] == 3 * 2048
    assert slowest < 1.0, f"/health waited {slowest:.2f} s while the answer was made"
    assert grown < 1.5 * size, f"the server grew by {grown:.0f} MB to answer {size:.0f} MB"
