"""A running mock: the app on a listening socket, the --watch reloader (`watcher.py`), and,
when the state is shared (`--state`), what keeps this process in step with the others: the
configuration published anywhere, and the journal written out."""

from __future__ import annotations

import contextlib
import gc
import socket
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import trio

from .http import timers
from .http.deferred import DeferredApp
from .http.router import Forwarder, Router
from .http.state import ANNOUNCE_TTL, MockState, Settings
from .http.transport import listen, serve
from .log import RequestLog
from .scenario import ConfigError, Source, load_sources
from .scenario.model import Config
from .store import Store, StoreUnavailable
from .store.memory import MemoryStore
from .watcher import Stamp, stamp, watch

DEFAULT_PORT = 3000


def bundled_scenarios() -> Path:
    """The default scenarios: packaged in the wheel, or the project's `scenarios/` folder."""
    packaged = Path(__file__).parent / "_bundled_scenarios"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "scenarios"


FOLLOW_INTERVAL = 0.1  # seconds between looks at the shared configuration's version
JOURNAL_EVERY = 0.1  # seconds between writes of the journal to a shared store
JOURNAL_LAST_WRITE = 0.3  # seconds the last write may take when the server stops


class Server:
    """`store` is where the state lives (default: in memory, this process alone); with a shared
    one, `config_version` is the version of `config` in it."""

    def __init__(self, config: Config, log: RequestLog | None = None, settings: Settings | None = None,
                 store: Store | None = None, config_version: int = 0, shared_socket: bool = False,
                 sources: Sequence[Source] = (), forwarder: Forwarder | None = None):
        self.state = MockState(config, log=log, settings=settings, store=store, config_version=config_version,
                               sources=sources)
        self._rest = DeferredApp(self.state)  # the Quart app, for the admin API
        self.app = Router(self.state, self._rest, forwarder)
        self.log = self.state.log
        self.shared_socket = shared_socket  # other processes accept on the same socket

    @property
    def shared(self) -> bool:
        """Whether other processes may use the same state (a store other than this process's memory)."""
        return not isinstance(self.state.store, MemoryStore)

    async def serve(self, sock: socket.socket, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            if self.shared:  # (known to the readers of the journal before it serves: see `Journal`)
                with contextlib.suppress(StoreUnavailable):
                    await self.state.store.announce(self.state.member, self.state.config_version, ANNOUNCE_TTL)
            await nursery.start(partial(serve, self.app, sock, errors=self.log.errors, shared=self.shared_socket,
                                        notice=self.log.message if self.log.verbose else None))
            nursery.start_soon(self._rest.load)
            if self.shared:
                nursery.start_soon(self._follow)
                nursery.start_soon(self._write_journal)
                nursery.start_soon(self.state.answer_flushes)
            task_status.started()

    async def _follow(self) -> None:
        """Serve the configuration published by any process that shares the store (a PUT, a
        --watch reload), within FOLLOW_INTERVAL of its publication."""
        state = self.state
        while True:
            await trio.sleep(FOLLOW_INTERVAL)
            try:
                await state.store.announce(state.member, state.config_version, ANNOUNCE_TTL)
                version = await state.store.config_version()
                if version == 0 and state.config_version > 0 and state.sources:
                    # the store lost it (a Redis restarted without persistence): publish it again
                    state.config_version = await state.store.put_config(state.sources)
                    continue
                if version <= state.config_version:
                    continue
                shared = await state.store.config()
            except StoreUnavailable:
                continue  # (the requests that need the store say so; this looks again)
            if shared is None or shared.version <= state.config_version:
                continue
            try:
                config = await trio.to_thread.run_sync(load_sources, shared.sources)
            except ConfigError as error:  # (it loaded where it was published: a different version here?)
                self.log.message(f"the configuration published as version {shared.version} does not load "
                                 f"here; still serving the previous one:\n{error}")
                state.config_version = shared.version
                continue
            state.replace(config, shared.version, shared.sources)

    async def _write_journal(self) -> None:
        """Write what the journal holds, ten times a second: answers do not wait for their
        entries to be written (`Journal`), and requests in flight are listed too. What is left
        when the server stops is written then, if the store answers in time."""
        try:
            while True:
                await trio.sleep(JOURNAL_EVERY)
                await self.state.journal.settle()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(JOURNAL_LAST_WRITE):
                await self.state.journal.settle()

    async def freeze_when_loaded(self) -> None:
        """`tune_gc` again once the Quart app, imported after start-up, is loaded; then keep the
        collector's passes short (`young_collections`)."""
        await self._rest.loaded()
        gc.freeze()
        await young_collections(lambda: len(timers.shared()) == 0)

    async def watch(self, path: Path, seen: Stamp | None = None, interval: float = 0.25, *,
                    settle: float = 0.1, notify: bool = True,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reload when a file of the configuration changes (see `watcher.watch`); the state starts afresh."""
        await watch(path, self.state.publish, self.log, seen, interval, settle=settle, notify=notify,
                    task_status=task_status)


# The collector sees only what survived less than FREEZE_EVERY seconds (`young_collections`).
FREEZE_EVERY = 0.5
FULL_COLLECTION_AFTER = 60.0  # seconds; then a full collection at the first quiet moment...
FULL_COLLECTION_AT_LATEST = 3600.0  # ...or after this long, quiet or not (a pass over every stream: a stall)


async def young_collections(quiet: Callable[[], bool], every: float = FREEZE_EVERY) -> None:
    """Keep the garbage collector's passes short in a server that holds thousands of streams.
    A stream's objects live for as long as it does (seconds), and the collector's youngest
    generation kept them all: its passes walked every object of every stream started since the
    last one, and when old objects had died meanwhile (each death lowers the count that starts
    a pass) a pass found 250,000 of them and stalled every stream for about 200 ms. So every
    `every` seconds what has survived is set aside (`gc.freeze()`, which costs nothing), and a
    pass walks only what the last half second made. Objects set aside are still freed when
    their last reference goes (which is how a request's objects go: nothing it makes is left
    in a reference loop, see docs/architecture.md); loops set aside are freed by a full
    collection, at the first quiet moment (`quiet()`: no stream in flight) a minute after the
    last one, and after an hour whatever the load. (Nothing here counts the objects set
    aside: `gc.get_freeze_count()` walks them all, 30 ms at 10,000 streams.)"""
    last_full = trio.current_time()
    while True:
        await trio.sleep(every)
        since = trio.current_time() - last_full
        if since >= FULL_COLLECTION_AT_LATEST or (since >= FULL_COLLECTION_AFTER and quiet()):
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            last_full = trio.current_time()
        else:
            gc.freeze()


def tune_gc() -> None:
    """Long-lived server: move start-up objects out of the collector's way and collect young
    objects less often (PERFORMANCE.md: full collections stalled thousands of open streams)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


__all__ = ["DEFAULT_PORT", "Server", "bundled_scenarios", "listen", "stamp", "tune_gc", "watch"]
