"""`openai-mock serve`: one process, or a parent and `--workers N` (`workers.py`, `worker.py`),
with the state in memory or in a shared store (`--state redis://...`)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import trio

from .cli import DEFAULT_PREFIX, EXIT_BAD_CONFIG, warn
from .http import timers
from .http.access import is_loopback
from .http.state import Settings
from .http.transport import describe_bind_error
from .log import RequestLog
from .scenario import ConfigError, Source, load_path_sources, load_sources, stdin_source
from .scenario.keys import valid_host_name
from .scenario.model import Config
from .server import DEFAULT_PORT, Server, bundled_scenarios, listen, stamp, tune_gc, watch
from .store import (
    DEFAULT_RESPONSE_BUDGET,
    DEFAULT_RESPONSE_TTL,
    JOURNAL_BUDGET,
    MAX_SESSIONS,
    Store,
    StoreUnavailable,
)
from .store.memory import MemoryStore

STATE_SCHEMES = ("redis://", "rediss://", "unix://")


def options_of(args: argparse.Namespace) -> dict[str, Any]:
    """What every process of a server shares (a worker gets it as JSON)."""
    return {"max_body": args.max_body_size, "body_timeout": args.body_timeout, "host": args.host,
            "allowed_hosts": list(args.allowed_host), "log_file": args.log_file, "verbose": args.verbose,
            "response_ttl": args.response_ttl, "response_memory": args.response_memory,
            "journal_memory": args.journal_memory, "max_sessions": args.max_sessions}


def settings_from(options: dict[str, Any]) -> Settings:
    defaults = Settings()
    return Settings(max_body=options["max_body"] or defaults.max_body,
                    body_timeout=options["body_timeout"] or defaults.body_timeout,
                    bound_host=options["host"], allowed_hosts=tuple(options["allowed_hosts"]))


def open_log(options: dict[str, Any], name: str = "") -> RequestLog:
    stream: TextIO = open(options["log_file"], "a", encoding="utf-8") if options["log_file"] else sys.stderr  # noqa: SIM115
    return RequestLog(stream, verbose=options["verbose"], name=name)


@asynccontextmanager
async def open_store(url: str | None, prefix: str = DEFAULT_PREFIX, options: dict[str, Any] | None = None
                     ) -> AsyncIterator[Store]:
    """The store a server keeps its state in: `url`'s Redis, or this process's memory (with the
    serve options' limits, where given)."""
    given = options or {}
    response_ttl = given.get("response_ttl") or DEFAULT_RESPONSE_TTL
    if url is None:
        mb = 1024 * 1024
        yield MemoryStore(response_ttl=response_ttl,
                          response_budget=int((given.get("response_memory") or DEFAULT_RESPONSE_BUDGET / mb) * mb),
                          journal_budget=int((given.get("journal_memory") or JOURNAL_BUDGET / mb) * mb),
                          max_sessions=given.get("max_sessions") or MAX_SESSIONS)
        return
    from .store.redis import RedisStore

    async with RedisStore(url, prefix=prefix, response_ttl=response_ttl).open() as store:
        yield store


def serve(args: argparse.Namespace) -> int:
    source = args.config if args.config is not None else bundled_scenarios()
    refusal = _refuse(args, source)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return EXIT_BAD_CONFIG
    seen = stamp(Path(source)) if args.watch else None
    try:
        config, sources = _load(source)
    except ConfigError as error:
        print(error, file=sys.stderr)
        warn(error.warnings)
        return EXIT_BAD_CONFIG
    warn(config.warnings)
    port = args.port if args.port is not None else config.port if config.port is not None else DEFAULT_PORT
    try:
        sock = listen(args.host, port)
    except OSError as error:
        print(f"openai-mock: {describe_bind_error(error, args.host, port)}", file=sys.stderr)
        return 1
    if not is_loopback(args.host) and config.api_key is None:
        print(f"openai-mock: warning: serving on {args.host} without an apiKey: anyone who can reach this "
              "port can read every prompt sent (GET /_mock/requests) and replace every rule "
              "(PUT /_mock/scenarios). Set apiKey in the configuration to require a key.",
              file=sys.stderr, flush=True)
    options = options_of(args)
    log = open_log(options)
    host, bound = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound}/v1"

    async def run() -> None:
        async with open_store(args.state, args.state_prefix, options) as store, \
                trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signals, nursery.cancel_scope)
            version = await store.put_config(sources)  # (this server's --config, for every worker)
            if args.workers > 1:
                from .workers import Supervisor, WorkerSpec

                def spec(index: int) -> WorkerSpec:
                    return WorkerSpec(fd=sock.fileno(), index=index, state=args.state, prefix=args.state_prefix,
                                      options=options)

                await nursery.start(Supervisor(args.workers, sock, spec, log.message).run)
                if args.watch:
                    await nursery.start(watch, Path(source), _publisher(store), log, seen)
            else:
                server = Server(config, log=log, settings=settings_from(options), store=store, config_version=version,
                                sources=sources)
                await nursery.start(server.serve, sock)
                if args.watch:
                    await nursery.start(server.watch, Path(source), seen)
                tune_gc()
                nursery.start_soon(server.freeze_when_loaded)
            for line in started_lines(config, source, bundled=args.config is None):  # (written before the URL,
                print(line, file=sys.stderr, flush=True)  # so that whoever reads the URL finds them there)
            print(url, flush=True)

    status = 0
    try:
        trio.run(run, clock=timers.Clock())
    except* KeyboardInterrupt:  # Ctrl-C: trio raises it from inside the nursery, in a group
        pass
    except* StoreUnavailable as group:  # (at start: the configuration could not be published)
        print(f"openai-mock: {group.exceptions[0]}", file=sys.stderr)
        status = 1
    finally:
        if log.stream is not sys.stderr and log.stream is not None:
            log.stream.close()
    return status


def started_lines(config: Config, source: str | Path, bundled: bool) -> list[str]:
    """What serve says on standard error once it listens (the URL alone is on standard output)."""
    from .summary import loaded, triggers

    return loaded(config, "<stdin>" if source == "-" else source, bundled) + (triggers(config) if bundled else [])


def _refuse(args: argparse.Namespace, source: str | Path) -> str | None:
    """Why these options cannot be served, or None."""
    if args.watch and source == "-":
        return "--watch needs a file or folder, not standard input"
    bad_hosts = [name for name in args.allowed_host if not valid_host_name(name)]
    if bad_hosts:
        return f"--allowed-host {bad_hosts[0]!r}: write a host name or address alone, with no scheme, port or path"
    if args.workers < 1:
        return f"--workers {args.workers}: give 1 or more"
    if args.state is not None and not args.state.startswith(STATE_SCHEMES):
        return (f"--state {args.state!r}: give a Redis URL, like redis://127.0.0.1:6379/0 (or rediss:// for "
                "TLS, unix:// for a socket)")
    if args.workers > 1 and args.state is None:
        return (f"--workers {args.workers} needs a state that the workers share: each worker would keep its "
                "own step counters, stored responses and journal, and `steps` would count per worker. Add "
                "--state redis://127.0.0.1:6379/0 (a Redis server; pip install 'openai-mock[redis]').")
    return None


def _load(source: str | Path) -> tuple[Config, tuple[Source, ...]]:
    if source == "-":
        read = stdin_source()
        return load_sources([read]), (read,)
    return load_path_sources(Path(source))


def _publisher(store: Store) -> Any:
    """What a --watch reload does when the workers serve: publish, then start the state afresh."""
    async def publish(config: Config, sources: Sequence[Source]) -> None:
        await store.put_config(sources)
        await store.reset(journal=False)
    return publish


async def _stop_on_signals(scope: trio.CancelScope) -> None:
    """Ctrl-C (SIGINT) and SIGTERM stop the server quietly, its workers with it: taken as signals
    here rather than raised as KeyboardInterrupt wherever the server happens to be (in a request,
    in the middle of writing a recorded rule)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


def record(args: argparse.Namespace) -> int:
    """`openai-mock record`: serve the --config rules; forward the rest upstream, and record it."""
    import re

    from .recorder import Recorder
    from .recording import Recording
    from .scenario.model import Config

    for pattern in args.redact:
        try:
            re.compile(pattern)
        except re.error as error:
            print(f"--redact {pattern!r}: not a regular expression: {error}", file=sys.stderr)
            return EXIT_BAD_CONFIG
    try:
        config, sources = _load(args.config) if args.config is not None else (Config(), ())
    except ConfigError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_CONFIG
    out = Path(args.out)
    try:
        recording = Recording(out, match=args.match, redact=args.redact, source=args.upstream)
    except (OSError, ValueError) as error:
        print(f"openai-mock: cannot add to {out}: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    port = args.port if args.port is not None else DEFAULT_PORT
    try:
        sock = listen(args.host, port)
    except OSError as error:
        print(f"openai-mock: {describe_bind_error(error, args.host, port)}", file=sys.stderr)
        return 1
    options = {"max_body": None, "body_timeout": None, "host": args.host, "allowed_hosts": [],
               "log_file": args.log_file, "verbose": args.verbose}
    log = open_log(options)
    recorder = Recorder(args.upstream, recording, log, key_env=args.upstream_key_env)
    host, bound = sock.getsockname()[:2]

    async def run() -> None:
        async with recorder.open(), trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signals, nursery.cancel_scope)
            server = Server(config, log=log, settings=settings_from(options), sources=sources, forwarder=recorder)
            await nursery.start(server.serve, sock)
            print(f"http://{f'[{host}]' if ':' in host else host}:{bound}/v1", flush=True)

    try:
        trio.run(run, clock=timers.Clock())
    except* KeyboardInterrupt:  # Ctrl-C: every rule recorded is in the file already
        pass
    finally:
        if log.stream is not sys.stderr and log.stream is not None:
            log.stream.close()
    return 0
