"""One worker of `serve --workers N` (`python -m openai_mock.worker`, started by `workers.py`).

It serves the listening socket it inherited, with the configuration the parent published in the
store, and says `ready` on its standard output once it serves. SIGTERM (the parent stopping it)
and SIGINT end it quietly.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

import trio

from .http import timers
from .scenario import ConfigError, load_sources
from .server import Server, tune_gc
from .serving import open_log, open_store, settings_from
from .store import StoreUnavailable
from .workers import WORKER_ENV, WorkerSpec


def main() -> int:
    spec = WorkerSpec.from_env(os.environ[WORKER_ENV])
    sock = socket.socket(fileno=spec.fd)
    sock.setblocking(False)
    log = open_log(spec.options, name=f"w{spec.index}")

    async def run() -> None:
        async with open_store(spec.state, spec.prefix, spec.options) as store:
            shared = None
            with trio.move_on_after(30):
                while shared is None:  # (the parent published it before starting us)
                    try:
                        shared = await store.config()
                    except StoreUnavailable:
                        pass  # (Redis restarting: a worker that starts meanwhile waits for it)
                    if shared is None:
                        await trio.sleep(0.1)
            if shared is None:
                log.message(f"worker {spec.index}: no configuration in the store {store.where}")
                return
            try:
                config = await trio.to_thread.run_sync(load_sources, shared.sources)
            except ConfigError as error:
                log.message(f"worker {spec.index}: the published configuration does not load:\n{error}")
                return
            server = Server(config, log=log, settings=settings_from(spec.options), store=store,
                            config_version=shared.version, shared_socket=True, sources=shared.sources)
            async with trio.open_nursery() as nursery:
                await nursery.start(server.serve, sock)
                tune_gc()
                nursery.start_soon(server.freeze_when_loaded)
                nursery.start_soon(_stop_on_sigterm, nursery.cancel_scope)
                nursery.start_soon(_stop_without_parent, nursery.cancel_scope)
                sys.stdout.write("ready\n")
                sys.stdout.flush()

    try:
        trio.run(run, clock=timers.Clock())
    except* KeyboardInterrupt:
        pass
    return 0


async def _stop_on_sigterm(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return


async def _stop_without_parent(scope: trio.CancelScope) -> None:
    """A worker whose parent is gone (killed with SIGKILL) stops too, rather than serve alone."""
    parent = os.getppid()
    while os.getppid() == parent:  # noqa: ASYNC110 - polling the kernel's answer; no event to wait on
        await trio.sleep(1)
    scope.cancel()


if __name__ == "__main__":
    sys.exit(main())
