"""`serve --workers N`: N processes serving one port, and the parent that keeps them running.

The parent binds the listening socket and hands it to each worker (a socket shared before the
workers start, rather than one socket per worker with SO_REUSEPORT): connections wait in one
queue, so none is lost when a worker dies (with SO_REUSEPORT the kernel resets the ones queued on
the dead worker's socket), port 0 needs no reservation trick, and an idle worker takes the next
connection first. Workers share their state through the store (`--state redis://...`), which is
also how a configuration published anywhere reaches every worker.

The parent restarts a worker that dies (the others' streams go on), and stops them all on
Ctrl-C or SIGTERM within a second, quietly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio

WORKER_ENV = "OPENAI_MOCK_WORKER"
STOP_SECONDS = 1.0  # how long workers get to stop before they are killed
RESTART_BACKOFF = 1.0  # a worker that dies within this of starting waits this before its restart


@attrs.frozen
class WorkerSpec:
    """What a worker needs to know, passed in its environment as JSON."""

    fd: int  # the listening socket, inherited
    index: int
    state: str  # the store's URL
    prefix: str
    options: dict[str, Any]  # the serve options every worker shares (Settings, logging)

    def to_env(self) -> str:
        return json.dumps(attrs.asdict(self))

    @classmethod
    def from_env(cls, text: str) -> WorkerSpec:
        return cls(**json.loads(text))


class Supervisor:
    """Starts `count` workers on `sock`, restarts those that die, stops them all when cancelled."""

    def __init__(self, count: int, sock: socket.socket, spec: Callable[[int], WorkerSpec],
                 say: Callable[[str], None]):
        self.count = count
        self.sock = sock
        self.spec = spec
        self.say = say
        self.processes: dict[int, trio.Process] = {}
        self.restarts = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                for index in range(self.count):
                    await nursery.start(self._keep, index)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                await self._stop_all()

    async def _keep(self, index: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run worker `index`, and again whenever it dies."""
        first = True
        while True:
            started = time.monotonic()
            process = await self._start(index)
            if first:
                task_status.started()
                first = False
            code = await process.wait()
            self.processes.pop(index, None)
            self.say(f"worker {index} (pid {process.pid}) exited with {_describe(code)}; starting it again")
            self.restarts += 1
            if time.monotonic() - started < RESTART_BACKOFF:
                await trio.sleep(RESTART_BACKOFF)

    async def _start(self, index: int) -> trio.Process:
        env = {**os.environ, WORKER_ENV: self.spec(index).to_env()}
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "openai_mock.worker"], env=env, pass_fds=(self.sock.fileno(),),
            stdout=subprocess.PIPE, start_new_session=True)  # (Ctrl-C reaches the parent only)
        self.processes[index] = process
        assert process.stdout is not None
        ready = b""
        with trio.move_on_after(30):
            while not ready.endswith(b"\n"):
                data = await process.stdout.receive_some(64)
                if not data:
                    break
                ready += data
        await process.stdout.aclose()
        return process

    async def _stop_all(self) -> None:
        processes = list(self.processes.values())
        for process in processes:
            _signal(process, signal.SIGTERM)
        with trio.move_on_after(STOP_SECONDS):
            for process in processes:
                await process.wait()
        for process in processes:
            if process.returncode is None:
                _signal(process, signal.SIGKILL)
                await process.wait()


def _signal(process: trio.Process, number: int) -> None:
    try:
        process.send_signal(number)
    except ProcessLookupError:
        pass


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
