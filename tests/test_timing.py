"""Waits: latency, first chunk delay, delay between chunks, jitter. Tolerances are wide enough
for a loaded 2-core machine: lower bounds are what the server must honour; upper bounds only
catch a wait that was not applied the way it should be."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

CONFIG = """
seed: 7
responses:
  - id: paced
    matcher: {type: contains, messages: [{role: user, content: paced}]}
    reply: a b c d e f g h
    delay_ms: 50
  - id: first-late
    matcher: {type: contains, messages: [{role: user, content: late start}]}
    reply: a b c
    first_chunk_delay_ms: 300
  - id: slow-headers
    matcher: {type: contains, messages: [{role: user, content: slow headers}]}
    reply: a b c
    latency_ms: 300
  - id: jittery
    matcher: {type: contains, messages: [{role: user, content: jitter}]}
    reply: a b c d e f g h i j k l
    delay_ms: 60
    jitter_ms: 30
"""


@pytest.fixture
def server(servers):
    return servers(CONFIG)


def arrivals(server, text: str) -> tuple[float, list[float]]:
    """(seconds until the headers, the arrival time of every data event after the headers)."""
    body = {"model": "m", "messages": [{"role": "user", "content": text}], "stream": True}
    started = time.monotonic()
    with httpx.Client(timeout=10) as http, http.stream("POST", f"{server.base_url}/chat/completions", json=body) as response:
        headers_at = time.monotonic()
        times = [time.monotonic() - headers_at for line in response.iter_lines() if line.startswith("data: {")]
    return headers_at - started, times


def test_delay_between_chunks(server):
    _, times = arrivals(server, "paced")
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(gaps) == 9  # role, 8 words, the closing chunk
    # the server waits at least 50 ms each time; one late read on the client side may shorten
    # the gap after it, which the sum does not see
    assert times[-1] - times[0] >= 9 * 0.05 - 0.005
    assert 0.045 <= statistics.median(gaps) < 0.12
    assert min(gaps) >= 0.025


def test_first_chunk_delay(server):
    headers_after, times = arrivals(server, "late start")
    assert headers_after < 0.25  # headers go out at once
    assert times[0] >= 0.29
    assert times[-1] - times[0] < 0.25  # then the rest without delay


@pytest.mark.parametrize("stream", [False, True])
def test_latency_delays_the_headers(server, stream):
    body = {"model": "m", "messages": [{"role": "user", "content": "slow headers"}], "stream": stream}
    started = time.monotonic()
    with httpx.Client(timeout=10) as http, http.stream("POST", f"{server.base_url}/chat/completions", json=body) as response:
        took = time.monotonic() - started
        assert response.status_code == 200
        response.read()
    assert took >= 0.29


def test_jitter_stays_within_its_bounds(server):
    _, times = arrivals(server, "jitter")
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(gaps) == 13
    assert times[-1] - times[0] >= 13 * 0.03 - 0.005  # never below 60 - 30 ms
    assert min(gaps) >= 0.015  # (less a late read on the client side)
    assert statistics.median(gaps) < 0.15
    assert max(gaps) - min(gaps) > 0.01  # the waits do vary
