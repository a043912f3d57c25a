"""The request log (`serve -v`): one line per request, in columns that are easy to scan."""

from __future__ import annotations

import logging
import time
from typing import TextIO

from .journal import COMPLETED, ERROR, Entry


class RequestLog:
    def __init__(self, stream: TextIO | None, verbose: bool = False, name: str = ""):
        self.stream = stream
        self.verbose = verbose
        self.name = f"{name} " if name else ""  # which process writes (`serve --workers`: w0, w1, ...)
        # errors of the server itself (hypercorn's and the app's): always written
        self.errors = logging.getLogger(f"openai_mock.errors.{id(self)}")
        self.errors.propagate = False
        self.errors.setLevel(logging.WARNING)
        if stream is not None:
            handler = logging.StreamHandler(stream)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
            self.errors.addHandler(handler)

    def _write(self, line: str) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe or file must not take the server down
            pass

    def message(self, text: str) -> None:
        """Always written (not only with -v): reloads, configuration errors."""
        for line in text.splitlines():
            self._write(f"{_now()} {self.name}{line}")

    def request(self, method: str, path: str, status: int, duration_ms: float, detail: str = "") -> None:
        if self.verbose:
            self._write(f"{_now()} {self.name}{method:<6} {path:<28} {status:>3} {duration_ms:>8.1f}ms{detail}")

    def entry(self, entry: Entry) -> None:
        if not self.verbose:
            return
        detail = f"  rule={entry.rule_id or '-'}"
        if entry.step is not None:
            detail += f" step={entry.step}"
        if entry.session != "default":
            detail += f" session={entry.session}"
        if entry.stream:
            detail += f" stream chunks={entry.chunks_sent}"
        if entry.outcome not in (COMPLETED, ERROR):
            detail += f" {entry.outcome}"
        if entry.error and entry.rule_id is None:
            detail += f"  {entry.error}"
        self.request(entry.method, entry.path, entry.status or 0, entry.duration_ms or 0.0, detail)


def _now() -> str:
    return time.strftime("%H:%M:%S")
