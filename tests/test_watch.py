"""`serve --watch`: edits are served, broken edits are reported and ignored, nothing in flight drops."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

RULES = """
responses:
  - id: answer
    matcher: {{type: any}}
    reply: "{reply}"
    delay_ms: {delay}
"""


def reply_of(server, stream: bool = False) -> str:
    body = {"model": "m", "messages": [{"role": "user", "content": "q"}], "stream": stream}
    response = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=10)
    assert response.status_code == 200, response.text
    if not stream:
        return response.json()["choices"][0]["message"]["content"]
    import json
    chunks = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: {")]
    assert response.text.endswith("data: [DONE]\n\n")
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def watched(fresh_server, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(reply="version one", delay=0))
    return fresh_server(path, "--watch"), path


def test_an_edit_is_served(watched):
    server, path = watched
    assert reply_of(server) == "version one"
    edited = time.monotonic()
    path.write_text(RULES.format(reply="version two", delay=0))
    assert wait_for(lambda: reply_of(server) == "version two")
    assert time.monotonic() - edited < 2.5
    assert "reloaded" in server.log()


def test_a_broken_edit_keeps_the_old_rules(watched):
    server, path = watched
    path.write_text("responses:\n  - id: answer\n    matcher: {type: any}\n    reply: x\n    delay_ms: soon\n")
    assert wait_for(lambda: "reload of" in server.log())
    assert f"{path}:5:15: `delay_ms` must be a number" in server.log()
    assert reply_of(server) == "version one"
    path.write_text(RULES.format(reply="fixed", delay=0))
    assert wait_for(lambda: reply_of(server) == "fixed")


def test_reloads_under_load_drop_nothing(watched):
    server, path = watched
    path.write_text(RULES.format(reply="slow one two three four", delay=20))
    assert wait_for(lambda: reply_of(server) == "slow one two three four")
    results: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def hammer(stream: bool) -> None:
        while not stop.is_set():
            try:
                results.append(reply_of(server, stream))
            except BaseException as error:  # noqa: BLE001 - any failure is what the test looks for
                failures.append(error)

    workers = [threading.Thread(target=hammer, args=(n % 2 == 0,)) for n in range(6)]
    for worker in workers:
        worker.start()
    for version in range(6):
        time.sleep(0.4)
        path.write_text(RULES.format(reply=f"version {version} a b c", delay=20))
    time.sleep(0.5)
    stop.set()
    for worker in workers:
        worker.join(timeout=20)
    assert failures == []
    assert len(results) > 30
    assert {r for r in results} <= {"slow one two three four"} | {f"version {v} a b c" for v in range(6)}
    assert "version 5 a b c" in results


def test_a_file_caught_half_written_is_not_loaded(tmp_path):
    """Editors (and Path.write_text) truncate a file before writing it. The watcher waits for
    the files to settle, so the empty file in between is never served. Virtual time makes the
    interleaving exact: the watcher sees the empty file, then the full one before it loads."""
    import trio
    import trio.testing

    from openai_mock.log import RequestLog
    from openai_mock.scenario import load_path
    from openai_mock.server import Server

    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(reply="version one", delay=0))
    messages: list[str] = []
    server = Server(load_path(path), log=RequestLog(None))
    server.log.message = messages.append

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.watch, path)
            await trio.sleep(0.2)
            path.write_text("")  # seen by the watcher's look at t=0.25
            await trio.sleep(0.08)
            path.write_text(RULES.format(reply="version two", delay=0))
            await trio.sleep(1)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert messages == [f"reloaded {path}: 1 rule"]
    assert [rule.id for rule in server.state.config.rules] == ["answer"]
