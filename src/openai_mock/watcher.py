"""`serve --watch`: reload the configuration when one of its files changes, at an idle cost that
does not grow with the number of files.

What counts as a change is the files' `stamp` (each one's name, modification time and size). A
look at it costs a `stat` per file, 10,000 of them for a folder of 10,000 files: looking four
times a second kept a third of a core busy. So the watcher looks only when something may have
changed:

- On Linux it sleeps on inotify (`inotify.py`): the folder of the configuration (or of the
  file), and the folder of each file that is a symbolic link, with the names that matter in
  each; it looks when one of them changes. It also looks every `SAFETY_EVERY` seconds (or
  further apart, when a look takes long: looks take at most `LOOK_SHARE` of the time), for the
  filesystems that do not notify (NFS, WSL's /mnt/c, some container mounts).
- Elsewhere, or without inotify: a `stat` of the configuration's path every `interval` (a
  folder's own modification time changes when a file is added, removed or renamed) and a full
  look every `interval`, or further apart when a look takes long (at most `LOOK_SHARE` of the
  time again): an edit inside a big folder is then seen a little later.

A look that takes long (a big folder) runs in a worker thread: it does not hold up the requests
being served.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import trio

from .inotify import Inotify, Names
from .log import RequestLog
from .scenario import ConfigError, Source, load_path_sources
from .scenario.load import SCENARIO_SUFFIXES
from .scenario.model import Config
from .store import StoreUnavailable

Stamp = tuple[tuple[str, int, int], ...]  # what --watch compares: (file, mtime in ns, size) each
Publish = Callable[[Config, Sequence[Source]], Awaitable[None]]
SAFETY_EVERY = 2.0  # seconds between looks when inotify says nothing
LOOK_SHARE = 0.02  # the share of the time that looks may take, when they take long
THREAD_ABOVE = 0.002  # seconds: a look that took longer runs in a worker thread next time


async def watch(path: Path, publish: Publish, log: RequestLog, seen: Stamp | None = None, interval: float = 0.25,
                *, settle: float = 0.1, notify: bool = True,
                task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Publish the configuration at `path` again when one of its files changes; keep serving the
    old one if the new one is invalid. Requests in flight finish with the plan they already
    have. `seen` is the files' `stamp()` from before the configuration was loaded, so no edit
    slips by. `notify=False`: poll, even where inotify is available.

    A change is loaded only once the files have stopped changing for `settle` seconds: editors
    and `Path.write_text` truncate a file before they write it, and a file caught in between
    would load as an empty configuration."""
    if seen is None:
        seen = stamp(path)
    looks = _Looks(path, interval, Inotify.open() if notify else None)
    try:
        task_status.started()
        while True:
            await looks.due()
            now = await looks.look()
            if now == seen:
                continue
            while True:
                await trio.sleep(settle)
                settled = await looks.look()
                if settled == now:
                    break
                now = settled
            seen = now
            looks.aim()  # (a file that became a link, a folder that came back)
            await _reload(path, publish, log)
    finally:
        looks.close()


async def _reload(path: Path, publish: Publish, log: RequestLog) -> None:
    try:  # off the event loop: a big file takes seconds to load, streams go on meanwhile
        config, sources = await trio.to_thread.run_sync(load_path_sources, path)
    except ConfigError as error:
        log.message(f"reload of {path} failed; still serving the previous configuration:\n{error}")
        return
    try:
        await publish(config, sources)
    except StoreUnavailable as error:
        log.message(f"reload of {path} not published, still serving the previous configuration: {error}")
        return
    count = len(config.rules)
    log.message(f"reloaded {path}: {count} rule{'' if count == 1 else 's'}")
    for warning in config.warnings:
        log.message(str(warning))


class _Looks:
    """When to look at the files: on inotify's word (`notifier`), or by polling."""

    def __init__(self, path: Path, interval: float, notifier: Inotify | None):
        self.path = path
        self.interval = interval
        self.notifier = notifier
        self.cost = 0.0  # seconds the last look took
        self.last = -float("inf")  # when the last look started (trio's clock)
        self.outline = _outline(path)
        self.notified = False  # whether inotify watches every folder that matters
        self.aim()

    def aim(self) -> None:
        """Watch the folders where the configuration's files are. One that cannot be watched (a
        folder that does not exist, the limit of watches reached): poll until the next change."""
        if self.notifier is not None:
            self.notified = self.notifier.watch(_folders(self.path))

    async def due(self) -> None:
        """Until a look is due. With inotify, the first is due at once: edits made since `seen`
        was taken, before the folders were watched, are not notified."""
        if self.notifier is not None and self.notified:
            if self.last > -float("inf"):
                with trio.move_on_at(self.last + max(SAFETY_EVERY, self.cost / LOOK_SHARE)) as waited:
                    await self.notifier.wait()
                await trio.sleep_until(self.last + self.interval)  # (a folder written to without pause)
                if not waited.cancelled_caught:
                    self.aim()  # (a folder made again, a link changed: watched before the look)
                self.notifier.drain()  # (what came meanwhile: the look sees it)
            return
        while True:
            await trio.sleep(self.interval)
            if self.notifier is not None:
                self.notifier.drain()
            if trio.current_time() >= self.last + max(self.interval, self.cost / LOOK_SHARE):
                break
            if _outline(self.path) != self.outline:
                break
        if self.notifier is not None:
            self.aim()  # (the folder that could not be watched may be back)

    async def look(self) -> Stamp:
        self.last = trio.current_time()
        started = time.perf_counter()
        self.outline = _outline(self.path)  # (before the look: a change during it shows next time)
        if self.cost > THREAD_ABOVE:
            now = await trio.to_thread.run_sync(stamp, self.path)
        else:  # (a thread's round trip costs more than a few files' look)
            now = stamp(self.path)
        self.cost = time.perf_counter() - started
        return now

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close()


def stamp(path: Path) -> Stamp:
    """What --watch compares: the name, modification time and size of each file a configuration
    at `path` is read from (as `scenario.load` picks them: in a folder, the `*.yaml` and `*.yml`
    entries that are not hidden, sub-folders aside, through links)."""
    try:
        with os.scandir(path) as found:
            entries = sorted(entry.path for entry in found if _scenario_name(entry.name))
    except NotADirectoryError:
        entries = [str(path)]
    except OSError:  # no such folder or file (yet)
        entries = [str(path)] if not path.is_dir() else []
    stamps = []
    for file in entries:
        try:
            info = os.stat(file)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode):
            stamps.append((file, info.st_mtime_ns, info.st_size))
    return tuple(stamps)


def _scenario_name(name: str) -> bool:
    return name.endswith(SCENARIO_SUFFIXES) and not name.startswith(".")


def _outline(path: Path) -> tuple[int, int, int] | None:
    """What a `stat` of the path itself tells: a folder's changes when an entry is added,
    removed or renamed; a file's when it is written."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def _folders(path: Path) -> dict[str, Names]:
    """The folders to watch for a configuration at `path`, each with the names that matter in it."""
    folders: dict[str, Names] = {}

    def named(folder: str, name: str) -> None:
        given = folders.get(folder)
        folders[folder] = (lambda n: n == name) if given is None else (lambda n: n == name or given(n))

    if path.is_dir():
        folders[str(path)] = _scenario_name
        try:
            with os.scandir(path) as found:
                links = [entry.path for entry in found if _scenario_name(entry.name) and entry.is_symlink()]
        except OSError:
            links = []
    else:
        named(str(path.parent), path.name)
        links = [str(path)] if path.is_symlink() else []
    for link in links:  # an edit of a link's file shows in its own folder
        target = os.path.realpath(link)
        named(os.path.dirname(target), os.path.basename(target))
    return folders


__all__ = ["LOOK_SHARE", "SAFETY_EVERY", "Stamp", "stamp", "watch"]
