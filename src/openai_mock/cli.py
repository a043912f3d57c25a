"""`openai-mock serve | check | schema`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .scenario import ConfigError, Problem, load
from .scenario.schema import json_schema

EXIT_BAD_CONFIG = 2
STATE_ENV = "OPENAI_MOCK_STATE"
DEFAULT_PREFIX = "openai-mock:"


DOCS = "Documentation: docs/cli.md in openai-mock's source tree (its README.md lists every page)."

TOP_EPILOG = f"""\
examples:
  openai-mock serve                          the bundled scenarios on http://127.0.0.1:3000/v1
  openai-mock serve -c scenarios.yaml -w     your rules, reloaded when the file changes
  openai-mock check scenarios.yaml           FILE:LINE:COLUMN for every problem, exit 2 if any
  openai-mock schema > scenario.schema.json  for your editor's YAML language server

Then point the SDK at it: OpenAI(base_url="http://127.0.0.1:3000/v1", api_key="any-key").
`openai-mock COMMAND --help` says more about each command.
{DOCS}"""

SERVE_EPILOG = f"""\
examples:
  openai-mock serve                                    the bundled scenarios, port 3000
  openai-mock serve --config scenarios.yaml --port 8080 -v
  openai-mock serve --config scenarios/ --watch        a folder, reloaded on every change
  openai-mock serve --port 0                           a free port: the first line printed says which

Standard output gets one line, the base URL (http://HOST:PORT/v1), once the server listens;
standard error says which files and how many rules it serves (and, for the bundled scenarios, the
words that reach each rule: "slow", "drop", "flaky", ...).
{DOCS}"""

CHECK_EPILOG = f"""\
examples:
  openai-mock check scenarios.yaml           prints `scenarios.yaml: ok, 3 rules`
  openai-mock check scenarios/ extra.yaml    a folder is one configuration, each path checked alone

Every problem is printed on standard error as FILE:LINE:COLUMN: message; the exit code is 2 when
any path has a problem, else 0.
{DOCS}"""

RECORD_EPILOG = f"""\
example:
  openai-mock record --upstream https://api.openai.com/v1 --out recorded.yaml --redact 'sk-[A-Za-z0-9]+'
  then: openai-mock serve --config recorded.yaml
{DOCS.replace("cli.md", "record-and-replay.md")}"""

SCHEMA_EPILOG = f"""\
example:
  openai-mock schema > scenario.schema.json
  then, on the first line of a scenario file:  # yaml-language-server: $schema=./scenario.schema.json

Editors using the YAML language server (VS Code, Neovim, Helix, Zed, JetBrains) then complete keys,
show their descriptions and flag mistakes as you type.
{DOCS}"""


def _parser(name: str, commands: Any, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openai-mock", description="A mock server of the OpenAI HTTP API, for "
                                     "testing code that uses the OpenAI SDKs.", epilog=TOP_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"openai-mock {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = _parser("serve", commands, "serve a configuration (the bundled scenarios by default)",
                    "Serve the OpenAI HTTP API from scenario files: which request gets which reply, how\n"
                    "fast it streams and where it breaks.", SERVE_EPILOG)
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

    record = _parser("record", commands, "serve, forward what no rule answers to an upstream, and record it",
                     "Serve the --config rules; forward every other request to --upstream, pass its answer\n"
                     "back as it arrives, and write it to --out as a rule that replays it.", RECORD_EPILOG)
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

    check = _parser("check", commands, "validate scenario files; exit 2 when any is invalid",
                    "Load each path as `serve --config` would, without serving, and report every problem.",
                    CHECK_EPILOG)
    check.add_argument("paths", nargs="+", metavar="PATH",
                       help="a scenario file (.yaml/.yml), a folder of them (one configuration), or - for "
                            "standard input")

    _parser("schema", commands, "print the JSON Schema of scenario files (for editors)",
            "Print the JSON Schema (draft 2020-12) of scenario files on standard output, made from\n"
            "the same table of keys as the loader.", SCHEMA_EPILOG)

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
