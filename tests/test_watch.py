"""`serve --watch`: edits are served, broken edits are reported and ignored, nothing in flight drops."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

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
    """Six clients ask without pause (half of them streams of some 150 ms) while the file changes
    six times: every request gets a whole answer of one version or another, and some stream
    that started before a reload finishes after the new version is served. Each edit waits for
    its version to be served, not for a fixed time, so a slow machine only makes it longer."""
    server, path = watched
    path.write_text(RULES.format(reply="slow one two three four", delay=20))
    assert wait_for(lambda: reply_of(server) == "slow one two three four")
    results: list[tuple[float, float, str]] = []  # (started, ended, reply)
    failures: list[BaseException] = []
    stop = threading.Event()

    def hammer(stream: bool) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                reply = reply_of(server, stream)
            except BaseException as error:  # noqa: BLE001 - any failure is what the test looks for
                failures.append(error)
            else:
                results.append((started, time.monotonic(), reply))

    versions = ["slow one two three four"] + [f"version {v} a b c" for v in range(6)]
    workers = [threading.Thread(target=hammer, args=(n % 2 == 0,)) for n in range(6)]
    for worker in workers:
        worker.start()
    try:
        for version in range(6):
            path.write_text(RULES.format(reply=f"version {version} a b c", delay=20))
            served = wait_for(lambda v=version: any(reply == f"version {v} a b c" for _, _, reply in results[:]),
                              timeout=60)
            assert served and not failures, (version, failures[:1])
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=60)
    assert failures == []
    assert {reply for _, _, reply in results} <= set(versions)
    # requests were in flight across reloads: one that got the version before finished after
    # the first request that got the new one had started
    crossed = 0
    for new in range(1, len(versions)):
        first_new = min(started for started, _, reply in results if reply == versions[new])
        crossed += any(reply in versions[:new] and started < first_new < ended for started, ended, reply in results)
    assert crossed >= 1


@pytest.mark.parametrize("notify", [True, False], ids=["inotify", "polling"])
def test_a_file_caught_half_written_is_not_loaded(tmp_path, notify):
    """Editors (and Path.write_text) truncate a file before writing it. The watcher waits for
    the files to settle, so the empty file in between is never served. Virtual time makes the
    interleaving exact: the watcher sees the empty file, then the full one before it loads."""
    from functools import partial

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
            await nursery.start(partial(server.watch, path, notify=notify))
            await trio.sleep(0.2)
            path.write_text("")  # seen by the watcher's look at t=0.25
            await trio.sleep(0.08)
            path.write_text(RULES.format(reply="version two", delay=0))
            await trio.sleep(1)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert messages == [f"reloaded {path}: 1 rule"]
    assert [rule.id for rule in server.state.config.rules] == ["answer"]


async def eventually(predicate: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Whether `predicate` comes true within `seconds` (in a trio test)."""
    import trio

    for _ in range(int(seconds / 0.02)):
        if predicate():
            return True
        await trio.sleep(0.02)
    return predicate()


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system, every thread) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def many_rules(folder: Path, count: int) -> None:
    folder.mkdir()
    for n in range(count):
        (folder / f"r{n:05d}.yaml").write_text(f"responses:\n  - {{id: r{n}, matcher: {{type: any}}, reply: v{n}}}\n")


def test_a_big_folder_costs_little_while_idle(fresh_server, tmp_path):
    """10,000 files watched: idle, the server uses a small share of a core (a third of one
    before: it read every file's modification time four times a second). An edit and a new file
    are still served; a sub-folder is not part of the configuration (docs/scenarios.md), and a
    file made in a new one is not loaded."""
    folder = tmp_path / "rules"
    many_rules(folder, 10_000)
    server = fresh_server(folder, "--watch")
    assert reply_of(server) == "v0"
    httpx.get(f"{server.root}/_mock/requests", headers=server.admin_headers, timeout=30).raise_for_status()
    time.sleep(1)  # (the admin API loads in the background after start)
    used = cpu_seconds(server.process.pid)
    time.sleep(5)
    used = cpu_seconds(server.process.pid) - used
    assert used < 0.6, f"{used:.2f} s of CPU in 5 s idle"

    (folder / "sub").mkdir()
    (folder / "sub" / "0.yaml").write_text("responses:\n  - {id: s, matcher: {type: any}, reply: sub}\n")
    (folder / "r00000.yaml").write_text("responses:\n  - {id: r0, matcher: {type: any}, reply: edited}\n")
    assert wait_for(lambda: reply_of(server) == "edited", timeout=30)
    (folder / "a.yaml").write_text("responses:\n  - {id: a, matcher: {type: any}, reply: added}\n")
    assert wait_for(lambda: reply_of(server) == "added", timeout=30)
    assert re.findall(r"reloaded .*: (\d+) rules", server.log()) == ["10000", "10001"]  # (no sub-folder's)


def test_polling_a_big_folder_costs_little_and_sees_changes(tmp_path):
    """Without inotify (other systems; `notify=False` here): a stat of the folder itself at each
    interval, and a full look at most 2% of the time. Idle, the watcher costs little (a third of a
    core before); a new file changes the folder's own modification time and is seen at the next
    interval; an edit inside the folder is seen at the next full look."""
    import trio

    from openai_mock.log import RequestLog
    from openai_mock.scenario import load_path
    from openai_mock.server import Server

    folder = tmp_path / "rules"
    many_rules(folder, 10_000)
    messages: list[str] = []
    server = Server(load_path(folder), log=RequestLog(None))
    server.log.message = messages.append
    measured: dict[str, float] = {}

    async def main() -> None:
        from functools import partial

        async with trio.open_nursery() as nursery:
            await nursery.start(partial(server.watch, folder, notify=False))
            await trio.sleep(1)  # (the first full look)
            started = time.process_time()
            await trio.sleep(4)
            measured["idle"] = time.process_time() - started
            (folder / "a.yaml").write_text("responses:\n  - {id: a, matcher: {type: any}, reply: added}\n")
            assert await eventually(lambda: len(messages) == 1, 30)
            (folder / "r00001.yaml").write_text("responses:\n  - {id: r1, matcher: {type: any}, reply: edited}\n")
            assert await eventually(lambda: len(messages) == 2, 60)
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert measured["idle"] < 0.5, f"{measured['idle']:.2f} s of CPU in 4 s idle"
    assert [m.rsplit(": ", 1)[1] for m in messages] == ["10001 rules", "10001 rules"]
    replies = {rule.id: rule.reply.content for rule in server.state.config.rules if rule.reply is not None}
    assert (replies["a"], replies["r0"], replies["r1"]) == ("added", "v0", "edited")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_inotify_sees_edits_through_links_and_a_folder_replaced(tmp_path, monkeypatch):
    """With inotify, and no look but on its word (the safety looks put off): an edit of a file
    that a link in the folder points to, in another folder; a file saved by renaming over it;
    the folder removed, then made again, empty at first."""
    import trio

    from openai_mock import watcher
    from openai_mock.log import RequestLog
    from openai_mock.scenario import load_path
    from openai_mock.server import Server

    monkeypatch.setattr(watcher, "SAFETY_EVERY", 3600.0)
    rule = "responses:\n  - {{id: {id}, matcher: {{type: any}}, reply: {reply}}}\n"
    folder, elsewhere = tmp_path / "rules", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "a.yaml").write_text(rule.format(id="a", reply="a1"))
    (elsewhere / "shared.yaml").write_text(rule.format(id="s", reply="s1"))
    (folder / "linked.yaml").symlink_to(elsewhere / "shared.yaml")
    messages: list[str] = []
    server = Server(load_path(folder), log=RequestLog(None))
    server.log.message = messages.append

    def replies() -> dict[str, str]:
        return {r.id: r.reply.content for r in server.state.config.rules if r.reply is not None}

    async def served(expected: dict[str, str]) -> None:
        assert await eventually(lambda: replies() == expected), (replies(), messages)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.watch, folder)
            await trio.sleep(0.3)
            (elsewhere / "shared.yaml").write_text(rule.format(id="s", reply="s2"))
            await served({"a": "a1", "s": "s2"})
            (folder / ".a.yaml.tmp").write_text(rule.format(id="a", reply="a2"))
            (folder / ".a.yaml.tmp").rename(folder / "a.yaml")
            await served({"a": "a2", "s": "s2"})
            for file in folder.iterdir():
                file.unlink()
            folder.rmdir()
            assert await eventually(lambda: any("no such file or folder" in m for m in messages))
            folder.mkdir()
            await trio.sleep(0.6)  # (the watcher looks at the empty folder: no change yet)
            (folder / "b.yaml").write_text(rule.format(id="b", reply="b1"))
            await served({"b": "b1"})
            (folder / "b.yaml").write_text(rule.format(id="b", reply="b2"))
            await served({"b": "b2"})
            nursery.cancel_scope.cancel()

    trio.run(main)
