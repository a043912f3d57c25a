"""`openai-mock serve | check | schema`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .scenario import ConfigError, Problem, load
from .scenario.schema import json_schema

EXIT_BAD_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openai-mock", description="A mock server of the OpenAI HTTP API.")
    parser.add_argument("--version", action="version", version=f"openai-mock {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve a configuration")
    serve.add_argument("--config", "-c", help="a scenario file, a folder of them, or - for standard input "
                                               "(default: the bundled scenarios)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="also answer requests addressed (Host header) to NAME, as the configuration's "
                            "allowed_hosts does; repeatable")
    serve.add_argument("--port", "-p", type=int, help="port (default: the file's `port`, else 3000; 0 picks a free one)")
    serve.add_argument("--watch", "-w", action="store_true", help="reload when the configuration changes")
    serve.add_argument("--verbose", "-v", action="store_true", help="log one line per request")
    serve.add_argument("--log-file", help="write the log here instead of standard error")
    serve.add_argument("--max-body-size", type=int, default=None, metavar="BYTES",
                       help="refuse request bodies larger than this with 413 (default 32 MiB)")
    serve.add_argument("--body-timeout", type=float, default=None, metavar="SECONDS",
                       help="answer 408 when a request body takes longer than this to arrive (default 60)")

    check = commands.add_parser("check", help="validate scenario files; exit 2 when any is invalid")
    check.add_argument("paths", nargs="+", help="files or folders")

    commands.add_parser("schema", help="print the JSON Schema of scenario files")

    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(args.paths)
    if args.command == "schema":
        print(json.dumps(json_schema(), indent=2))
        return 0
    return _serve(args)


def _check(paths: list[str]) -> int:
    """Problems and warnings go to stderr (one `FILE:LINE:COLUMN: message` a line), the good
    news to stdout. Warnings alone do not fail the check."""
    status = 0
    for path in paths:
        try:
            config = load(Path(path) if path != "-" else path)
        except ConfigError as error:
            print(error, file=sys.stderr, flush=True)
            _warn(error.warnings)
            status = EXIT_BAD_CONFIG
        else:
            _warn(config.warnings)
            count = len(config.rules)
            print(f"{path}: ok, {count} rule{'' if count == 1 else 's'}", flush=True)
    return status


def _warn(warnings: Sequence[Problem]) -> None:
    for warning in warnings:
        print(warning, file=sys.stderr, flush=True)


def _serve(args: argparse.Namespace) -> int:
    import trio  # the server's modules load only for `serve`: `check` and `schema` start faster

    from .http.access import is_loopback
    from .http.state import Settings
    from .http.transport import describe_bind_error
    from .log import RequestLog
    from .scenario.keys import valid_host_name
    from .server import DEFAULT_PORT, Server, bundled_scenarios, listen, stamp, tune_gc

    source = args.config if args.config is not None else bundled_scenarios()
    seen = stamp(Path(source)) if args.watch and source != "-" else None
    try:
        config = load(Path(source) if source != "-" else "-")
    except ConfigError as error:
        print(error, file=sys.stderr)
        _warn(error.warnings)
        return EXIT_BAD_CONFIG
    _warn(config.warnings)
    if args.watch and source == "-":
        print("--watch needs a file or folder, not standard input", file=sys.stderr)
        return EXIT_BAD_CONFIG
    port = args.port if args.port is not None else config.port if config.port is not None else DEFAULT_PORT
    try:
        sock = listen(args.host, port)
    except OSError as error:
        print(f"openai-mock: {describe_bind_error(error, args.host, port)}", file=sys.stderr)
        return 1
    log_stream = open(args.log_file, "a", encoding="utf-8") if args.log_file else sys.stderr  # noqa: SIM115
    bad_hosts = [name for name in args.allowed_host if not valid_host_name(name)]
    if bad_hosts:
        print(f"--allowed-host {bad_hosts[0]!r}: write a host name or address alone, with no scheme, port "
              "or path", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if not is_loopback(args.host) and config.api_key is None:
        print(f"openai-mock: warning: serving on {args.host} without an apiKey: anyone who can reach this "
              "port can read every prompt sent (GET /_mock/requests) and replace every rule "
              "(PUT /_mock/scenarios). Set apiKey in the configuration to require a key.",
              file=sys.stderr, flush=True)
    defaults = Settings()
    settings = Settings(max_body=args.max_body_size or defaults.max_body,
                        body_timeout=args.body_timeout or defaults.body_timeout,
                        bound_host=args.host, allowed_hosts=tuple(args.allowed_host))
    server = Server(config, log=RequestLog(log_stream, verbose=args.verbose), settings=settings)
    host, bound = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve, sock)
            if args.watch:
                await nursery.start(server.watch, Path(source), seen)
            tune_gc()
            nursery.start_soon(server.freeze_when_loaded)
            print(f"http://{shown}:{bound}/v1", flush=True)

    try:
        trio.run(run)
    except* KeyboardInterrupt:  # Ctrl-C: trio raises it from inside the nursery, in a group
        pass
    finally:
        if log_stream is not sys.stderr:
            log_stream.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
