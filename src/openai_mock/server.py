"""A running mock: the app on a listening socket, and the --watch reloader."""

from __future__ import annotations

import gc
import os
import socket
from functools import partial
from pathlib import Path

import trio

from .http.deferred import DeferredApp
from .http.router import Router
from .http.state import MockState, Settings
from .http.transport import listen, serve
from .log import RequestLog
from .scenario import ConfigError, load_path, watched_files
from .scenario.model import Config

DEFAULT_PORT = 3000
Stamp = tuple[tuple[str, int, int], ...]  # what --watch compares: (file, mtime in ns, size) each


def bundled_scenarios() -> Path:
    """The default scenarios: packaged in the wheel, or the project's `scenarios/` folder."""
    packaged = Path(__file__).parent / "_bundled_scenarios"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "scenarios"


class Server:
    def __init__(self, config: Config, log: RequestLog | None = None, settings: Settings | None = None):
        self.state = MockState(config, log=log, settings=settings)
        self._rest = DeferredApp(self.state)  # the Quart app, for the admin API
        self.app = Router(self.state, self._rest)
        self.log = self.state.log

    async def serve(self, sock: socket.socket, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve, self.app, sock, errors=self.log.errors))
            nursery.start_soon(self._rest.load)
            task_status.started()

    async def freeze_when_loaded(self) -> None:
        """`tune_gc` again once the Quart app, imported after start-up, is loaded."""
        await self._rest.loaded()
        gc.freeze()

    async def watch(self, path: Path, seen: Stamp | None = None, interval: float = 0.25, *,
                    settle: float = 0.1,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reload when a file of the configuration changes; keep serving the old one if the new
        one is invalid. Requests in flight finish with the plan they already have. `seen` is
        the files' `stamp()` from before the configuration was loaded, so no edit slips by.

        A change is loaded only once the files have stopped changing for `settle` seconds:
        editors and `Path.write_text` truncate a file before they write it, and a file caught
        in between would load as an empty configuration."""
        if seen is None:
            seen = stamp(path)
        task_status.started()
        while True:
            await trio.sleep(interval)
            now = stamp(path)
            if now == seen:
                continue
            while True:
                await trio.sleep(settle)
                settled = stamp(path)
                if settled == now:
                    break
                now = settled
            seen = now
            try:  # off the event loop: a big file takes seconds to load, streams go on meanwhile
                config = await trio.to_thread.run_sync(load_path, path)
            except ConfigError as error:
                self.log.message(f"reload of {path} failed; still serving the previous configuration:\n{error}")
                continue
            self.state.replace(config)
            count = len(config.rules)
            self.log.message(f"reloaded {path}: {count} rule{'' if count == 1 else 's'}")
            for warning in config.warnings:
                self.log.message(str(warning))


def stamp(path: Path) -> Stamp:
    """What --watch compares: each file's name, modification time and size."""
    stamps = []
    for file in watched_files(path):
        try:
            info = os.stat(file)
        except OSError:
            continue
        stamps.append((str(file), info.st_mtime_ns, info.st_size))
    return tuple(stamps)


def tune_gc() -> None:
    """Long-lived server: move start-up objects out of the collector's way and collect young
    objects less often (PERFORMANCE.md: full collections stalled thousands of open streams)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


__all__ = ["DEFAULT_PORT", "Server", "bundled_scenarios", "listen", "stamp", "tune_gc"]
