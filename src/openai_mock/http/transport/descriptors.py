"""File descriptors: the soft limit raised at start, and idle connections closed when none is left.

Every client connection holds one descriptor. Many systems start processes with a soft limit
of 1,024 under a much higher hard limit; at the limit, accept() fails (EMFILE) and new clients
wait in the kernel's queue, unserved, until a connection closes: with SDKs that keep idle
connections in pools, until the keep-alive timeout (75 s). So `serve` raises its soft limit to
the hard one (`raise_limit`), as servers commonly do, and when accept() still finds none left,
the accept loop closes the connection idle the longest (`IdleConnections.shed`) and tries again.
The same list of idle connections closes each one idle past the keep-alive timeout
(`IdleConnections.run`, one task for all of them).

Its own module because it is the transport's policy for one scarce resource, apart from how a
connection is served (`tcpserver.py`) and how connections are accepted (`listener.py`).
"""

from __future__ import annotations

import collections
import math
import sys
import time
from collections.abc import Callable
from typing import Protocol

import trio

CAP = 1 << 20  # the highest soft limit set (a hard limit of "unlimited" or more than this)
NOTICE_EVERY = 10.0  # seconds between two -v lines about the same shortage


def raise_limit() -> str:
    """Raise this process's soft limit on open files (RLIMIT_NOFILE) to its hard limit, capped at
    `CAP` (and on Linux at fs.nr_open, above which the kernel refuses). Never raises: what was
    done, or why nothing was, is the line the -v log shows."""
    try:
        import resource
    except ImportError:  # (Windows)
        return "descriptors: no limit to raise on this platform"
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError) as error:
        return f"descriptors: the limit cannot be read ({error})"
    infinity = resource.RLIM_INFINITY
    target = min(CAP if hard == infinity else hard, CAP, _nr_open())
    if soft == infinity or soft >= target:
        return f"descriptors: soft limit {_figure(soft, infinity)} (hard limit {_figure(hard, infinity)})"
    refusal: Exception | None = None
    while target > soft:  # (macOS refuses more than kern.maxfilesperproc: try less)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as error:
            refusal = refusal or error
            target //= 2
            continue
        return f"descriptors: soft limit raised from {soft:,} to {target:,}"
    return f"descriptors: soft limit stays {soft:,}: raising it to the hard limit was refused ({refusal})"


def _nr_open() -> int:
    if not sys.platform.startswith("linux"):
        return CAP
    try:
        with open("/proc/sys/fs/nr_open") as file:
            return int(file.read())
    except (OSError, ValueError):
        return CAP


def _figure(limit: int, infinity: int) -> str:
    return "unlimited" if limit == infinity else f"{limit:,}"


def soft_limit() -> int | None:
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft


class Idle(Protocol):
    def shed(self) -> bool:
        """Close this connection now, if it is still idle: whether it was closed."""

    def expire(self) -> None:
        """This connection has been idle past the keep-alive timeout: close it."""


class IdleConnections:
    """The connections idle between requests (no request in flight, none begun), longest idle
    first, each with the time it is closed at if it stays idle (the keep-alive timeout). A
    connection is added when it turns idle and removed when a request comes or it ends: two
    operations on an ordered dict per request, which is all the hot path pays. One task
    (`run`) closes those idle too long: hypercorn's own timeout was a task per connection,
    started and cancelled again around every request."""

    def __init__(self, notice: Callable[[str], None] | None = None):
        self._idle: collections.OrderedDict[Idle, float] = collections.OrderedDict()
        self._notice = notice
        self._noticed = -math.inf
        self._added: trio.Event | None = None  # what `run` waits for while none is idle
        self.shed_count = 0

    def add(self, connection: Idle, deadline: float) -> None:
        """`connection` has turned idle: the most recently idle, last to be closed; closed at
        `deadline` (trio's clock) if it is still idle then. (Every connection gets the same
        timeout, so the list is in the order of the deadlines too.)"""
        self._idle.pop(connection, None)
        self._idle[connection] = deadline
        if self._added is not None:
            self._added.set()
            self._added = None

    def discard(self, connection: Idle) -> None:
        """`connection` has a request, or has ended."""
        self._idle.pop(connection, None)

    async def run(self) -> None:
        """Close each connection still idle at its deadline, until cancelled. It sleeps until
        the deadline of the connection idle the longest, whichever that is by then: with
        requests coming, about once per timeout."""
        while True:
            if not self._idle:
                self._added = trio.Event()
                await self._added.wait()
                continue
            connection, deadline = next(iter(self._idle.items()))
            if deadline > trio.current_time():
                await trio.sleep_until(deadline)
                continue
            del self._idle[connection]
            connection.expire()

    def shed(self) -> bool:
        """accept() found no descriptor left: close the connection idle the longest (one that
        has begun to receive a request is skipped, and stays listed: its keep-alive timeout
        still holds if that request never comes whole). Whether one was closed."""
        for connection in self._idle:  # (`shed` closes, but leaves the list to us)
            if connection.shed():
                del self._idle[connection]
                self.shed_count += 1
                self._tell(f"closing the longest-idle keep-alive connections to accept new ones "
                           f"({self.shed_count:,} so far)")
                return True
        self._tell("no connection is idle: new connections wait until one closes")
        return False

    def _tell(self, what: str) -> None:
        now = time.monotonic()
        if self._notice is None or now - self._noticed < NOTICE_EVERY:
            return
        self._noticed = now
        limit = soft_limit()
        self._notice(f"descriptors: none left{f' (soft limit {limit:,})' if limit else ''}: {what}")
