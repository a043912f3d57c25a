"""`openai-mock serve | check | schema`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .scenario import ConfigError, Problem, load
from .scenario.schema import json_schema

EXIT_BAD_CONFIG = 2
STATE_ENV = "OPENAI_MOCK_STATE"
DEFAULT_PREFIX = "openai-mock:"


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
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="serve with N processes (every core of the machine); needs --state (default 1)")
    serve.add_argument("--state", default=os.environ.get(STATE_ENV) or None, metavar="URL",
                       help="keep the state in Redis, shared by every worker and every server that names it: "
                            f"redis://HOST:PORT/DB (also ${STATE_ENV}; default: in this process's memory)")
    serve.add_argument("--state-prefix", default=DEFAULT_PREFIX, metavar="PREFIX",
                       help=f"the prefix of the store's keys, so that several mocks can share one Redis "
                            f"(default {DEFAULT_PREFIX})")
    serve.add_argument("--response-ttl", type=float, default=3600.0, metavar="SECONDS",
                       help="how long a stored Responses API response is kept (default 3600)")
    serve.add_argument("--response-memory", type=float, default=None, metavar="MB",
                       help="the memory stored Responses API responses may take; the oldest are forgotten first "
                            "(default 256; in memory only: Redis has its own limits)")
    serve.add_argument("--journal-memory", type=float, default=None, metavar="MB",
                       help="the memory the journal may take (default 64; also at most 10,000 entries)")
    serve.add_argument("--max-sessions", type=int, default=None, metavar="N",
                       help="the sessions whose state is kept; the one used least recently is forgotten first "
                            "(default 10,000; in memory only)")

    record = commands.add_parser("record", help="serve, forward what no rule answers to an upstream, and record it")
    record.add_argument("--upstream", required=True, metavar="URL",
                        help="the OpenAI-compatible API to forward to, like https://api.openai.com/v1")
    record.add_argument("--out", required=True, metavar="FILE", help="the scenario file to write the rules to "
                                                                      "(kept whole after every rule; added to)")
    record.add_argument("--config", "-c", help="rules answered here instead of forwarded (default: none)")
    record.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    record.add_argument("--port", "-p", type=int, default=None, help="port (default 3000; 0 picks a free one)")
    record.add_argument("--match", choices=("conversation", "last-user"), default="conversation",
                        help="what a recorded rule matches: the request's whole conversation (default), or its "
                             "last user message")
    record.add_argument("--upstream-key-env", metavar="NAME",
                        help="the environment variable holding the upstream's key (default: the client's own "
                             "Authorization)")
    record.add_argument("--redact", action="append", default=[], metavar="REGEX",
                        help="mask what this regular expression matches in the bodies written; repeatable")
    record.add_argument("--verbose", "-v", action="store_true", help="log one line per request")
    record.add_argument("--log-file", help="write the log here instead of standard error")

    check = commands.add_parser("check", help="validate scenario files; exit 2 when any is invalid")
    check.add_argument("paths", nargs="+", help="files or folders")

    commands.add_parser("schema", help="print the JSON Schema of scenario files")

    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(args.paths)
    if args.command == "record":
        from . import serving  # (as for serve: loaded only when asked)

        return serving.record(args)
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
            warn(error.warnings)
            status = EXIT_BAD_CONFIG
        else:
            warn(config.warnings)
            count = len(config.rules)
            print(f"{path}: ok, {count} rule{'' if count == 1 else 's'}", flush=True)
    return status


def warn(warnings: Sequence[Problem]) -> None:
    for warning in warnings:
        print(warning, file=sys.stderr, flush=True)


def _serve(args: argparse.Namespace) -> int:
    from .serving import (
        serve,  # the server's modules load only for `serve`: `check` and `schema` start faster
    )

    return serve(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
