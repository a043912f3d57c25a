"""Load generators: plain non-blocking sockets on one epoll loop per process.

They run in worker processes of their own (never in a server's process), so that what they
measure includes every delay between the server's write and the client's read. A bare epoll
loop costs a few microseconds per read; an async framework on the client side would add its
own scheduling delays to the gaps we measure.

- `stream_worker`: opens N streaming requests at a steady rate and records, per stream, the
  arrival time of every SSE `data:` event, whether `[DONE]` came, and how the body ended.
- `throughput_worker`: keep-alive connections that each send the next request as soon as the
  previous response is complete (the fallback when `wrk` is not installed).
- `run_workers`: starts worker processes, lines them up on a barrier, and collects results.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import queue
import resource
import select
import socket
import time
import traceback
from typing import Any

CONNECTING, SENDING, READING = 0, 1, 2
HEAD, LENGTH, CHUNKED, UNTIL_EOF = 0, 1, 2, 3


def http_request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                 host: str = "127.0.0.1") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Response:
    """An incremental HTTP/1.1 response parser (Content-Length, chunked, or until EOF).
    With `sse`, the body is split into server-sent events: `data:` events are counted (and their
    arrival times kept in `times`), `data: [DONE]` sets `done`."""

    __slots__ = ("sse", "times", "buf", "status", "mode", "left", "need_crlf", "complete",
                 "events", "done", "sse_buf", "first_byte", "first_event", "body_bytes", "chunks", "close")

    def __init__(self, sse: bool = False, times: list[float] | None = None, keep_body: bool = False):
        self.sse = sse
        self.chunks: list[bytes] | None = [] if keep_body else None
        self.times = times
        self.buf = b""
        self.status = 0
        self.mode = HEAD
        self.left = 0  # bytes left in the body (LENGTH) or in the current chunk (CHUNKED)
        self.need_crlf = False
        self.complete = False
        self.events = 0
        self.done = False
        self.sse_buf = b""
        self.first_byte = 0.0
        self.first_event = 0.0  # when the first `data:` event arrived
        self.body_bytes = 0
        self.close = False  # the server said `Connection: close`: it ends the connection after this response

    def feed(self, data: bytes, now: float) -> bool:
        """Take bytes that arrived at `now`; True once the response is complete."""
        if self.mode == HEAD:
            if not self.first_byte:
                self.first_byte = now
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = self.buf[:end].decode("latin-1").split("\r\n")
            data, self.buf = self.buf[end + 4:], b""
            self.status = int(head[0].split(" ", 2)[1])
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.close = "close" in headers.get("connection", "").lower()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self.mode = CHUNKED
            elif "content-length" in headers:
                self.mode, self.left = LENGTH, int(headers["content-length"])
                if self.left == 0:
                    self.complete = True
                    return True
            else:
                self.mode = UNTIL_EOF
        if self.mode == LENGTH:
            piece = data[: self.left]
            self.left -= len(piece)
            self._body(piece, now)
            if self.left == 0:
                self.complete = True
        elif self.mode == CHUNKED:
            self._dechunk(data, now)
        else:
            self._body(data, now)
        return self.complete

    def _dechunk(self, data: bytes, now: float) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            if self.left:
                piece = buf[: self.left]
                self.left -= len(piece)
                buf = buf[len(piece):]
                self._body(piece, now)
                if self.left:
                    break
                self.need_crlf = True
            if self.need_crlf:
                if len(buf) < 2:
                    break
                buf = buf[2:]
                self.need_crlf = False
            end = buf.find(b"\r\n")
            if end < 0:
                break
            size = int(buf[:end].split(b";", 1)[0], 16)
            buf = buf[end + 2:]
            if size == 0:  # the last chunk (trailers, if any, are not waited for)
                self.complete = True
                break
            self.left = size
        self.buf = buf

    def _body(self, data: bytes, now: float) -> None:
        self.body_bytes += len(data)
        if self.chunks is not None:
            self.chunks.append(data)
        if not self.sse or not data:
            return
        buf = self.sse_buf + data if self.sse_buf else data
        while True:
            end = buf.find(b"\n\n")
            if end < 0:
                break
            event, buf = buf[:end], buf[end + 2:]
            if event.startswith(b"data: [DONE]"):
                self.done = True
            elif event.startswith(b"data:"):
                self.events += 1
                if self.events == 1:
                    self.first_event = now
                if self.times is not None:
                    self.times.append(now)
        self.sse_buf = buf

    def eof(self) -> None:
        """The peer closed: that completes only a body that runs until EOF."""
        if self.mode == UNTIL_EOF:
            self.complete = True


def raise_fd_limit() -> int:
    """As many file descriptors as the hard limit allows (10,000 streams need 10,000 sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1 << 20
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Stream:
    __slots__ = ("sock", "state", "sent", "response", "opened", "ended", "error", "times")

    def __init__(self, sock: socket.socket, opened: float, keep_times: bool):
        self.sock = sock
        self.state = CONNECTING
        self.sent = 0
        self.times: list[float] | None = [] if keep_times else None
        self.response = Response(sse=True, times=self.times)
        self.opened = opened
        self.ended = 0.0
        self.error = ""


def stream_worker(barrier: Any, host: str, port: int, request: bytes, count: int, rate: float,
                  deadline: float, keep_times: bool) -> dict[str, Any]:
    """Open `count` streams at `rate` per second (after the barrier) and read them to the end,
    giving up on those still open `deadline` seconds after the start."""
    raise_fd_limit()
    poller = select.epoll()
    streams: dict[int, _Stream] = {}
    finished: list[_Stream] = []
    barrier.wait()
    start = time.monotonic()
    cpu0 = _cpu()
    opened = 0

    def end(stream: _Stream, now: float, error: str = "") -> None:
        stream.ended = now
        stream.error = error
        fd = stream.sock.fileno()
        if fd in streams:
            del streams[fd]
            poller.unregister(fd)
        stream.sock.close()
        finished.append(stream)

    while opened < count or streams:
        now = time.monotonic()
        if now - start > deadline:
            for stream in list(streams.values()):
                end(stream, now, "timeout")
            break
        while opened < count and start + opened / rate <= now:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            stream = _Stream(sock, now, keep_times)
            opened += 1
            code = sock.connect_ex((host, port))
            if code not in (0, errno.EINPROGRESS):
                finished.append(stream)
                stream.ended, stream.error = now, f"connect:{errno.errorcode.get(code, code)}"
                sock.close()
                continue
            streams[sock.fileno()] = stream
            poller.register(sock.fileno(), select.EPOLLOUT)
        wait = (start + opened / rate - now) if opened < count else 0.05
        for fd, _ in poller.poll(min(max(wait, 0.0), 0.05)):
            stream = streams.get(fd)
            if stream is None:
                continue
            if stream.state != READING:
                if stream.state == CONNECTING:
                    code = stream.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        end(stream, time.monotonic(), f"connect:{errno.errorcode.get(code, code)}")
                        continue
                    stream.state = SENDING
                try:
                    stream.sent += stream.sock.send(request[stream.sent:])
                except BlockingIOError:
                    continue
                except OSError as error:
                    end(stream, time.monotonic(), f"send:{errno.errorcode.get(error.errno, error.errno)}")
                    continue
                if stream.sent == len(request):
                    stream.state = READING
                    poller.modify(fd, select.EPOLLIN)
                continue
            try:
                data = stream.sock.recv(262144)
            except BlockingIOError:
                continue
            except OSError as error:
                end(stream, time.monotonic(), f"recv:{errno.errorcode.get(error.errno, error.errno)}")
                continue
            now = time.monotonic()
            if not data:
                stream.response.eof()
                end(stream, now, "" if stream.response.complete else "closed_early")
            elif stream.response.feed(data, now):
                end(stream, now)
    cpu = _cpu() - cpu0
    poller.close()
    return {
        "start": start,
        "cpu": cpu,
        "streams": [
            {"opened": s.opened, "first_byte": s.response.first_byte, "first_event": s.response.first_event,
             "ended": s.ended,
             "status": s.response.status, "events": s.response.events, "done": s.response.done,
             "complete": s.response.complete, "error": s.error, "times": s.times}
            for s in finished
        ],
    }


def throughput_worker(barrier: Any, host: str, port: int, request: bytes, connections: int,
                      duration: float) -> dict[str, Any]:
    """Keep `connections` keep-alive connections busy for `duration` seconds; count responses."""
    raise_fd_limit()
    poller = select.epoll()
    socks: dict[int, socket.socket] = {}
    for _ in range(connections):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        socks[sock.fileno()] = sock
    parsers: dict[int, Response] = {}
    sent_at: dict[int, float] = {}
    ok = bad = errors = 0
    latencies: list[float] = []
    barrier.wait()
    start = time.monotonic()
    stop = start + duration
    cpu0 = _cpu()
    for fd, sock in socks.items():
        sock.send(request)  # small: fits the socket buffer
        parsers[fd], sent_at[fd] = Response(), start
        poller.register(fd, select.EPOLLIN)
    while socks:
        now = time.monotonic()
        if now >= stop:
            break
        for fd, _ in poller.poll(min(stop - now, 0.05)):
            sock = socks.get(fd)
            if sock is None:
                continue
            try:
                data = sock.recv(262144)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            now = time.monotonic()
            parser = parsers[fd]
            if not data:
                errors += 1
                poller.unregister(fd)
                sock.close()
                del socks[fd]
                continue
            if not parser.feed(data, now):
                continue
            if now < stop:
                if parser.status == 200:
                    ok += 1
                else:
                    bad += 1
                latencies.append(now - sent_at[fd])
            if parser.close:  # (hypercorn ends a connection after 1,000 requests, as wrk would see)
                poller.unregister(fd)
                sock.close()
                del socks[fd]
                sock = socket.create_connection((host, port))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setblocking(False)
                fd = sock.fileno()
                socks[fd] = sock
                poller.register(fd, select.EPOLLIN)
            try:
                sock.send(request)
            except OSError:
                errors += 1
                poller.unregister(fd)
                sock.close()
                del socks[fd]
                continue
            parsers[fd], sent_at[fd] = Response(), now
    elapsed = min(time.monotonic(), stop) - start
    cpu = _cpu() - cpu0
    for sock in socks.values():
        sock.close()
    poller.close()
    return {"ok": ok, "bad": bad, "errors": errors, "elapsed": elapsed, "cpu": cpu, "latencies": latencies}


def _entry(index: int, function: Any, kwargs: dict[str, Any], barrier: Any, results: Any) -> None:
    try:
        results.put((index, function(barrier, **kwargs)))
    except BaseException:
        barrier.abort()
        results.put((index, {"crash": traceback.format_exc()}))


def run_workers(function: Any, jobs: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    """Run `function(barrier, **job)` for each job in its own process; they start together once
    every process is ready. Fresh interpreters (spawn): the workers share nothing with us."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(jobs))
    results = context.Queue()
    processes = [context.Process(target=_entry, args=(i, function, job, barrier, results), daemon=True)
                 for i, job in enumerate(jobs)]
    for process in processes:
        process.start()
    collected: dict[int, dict[str, Any]] = {}
    give_up = time.monotonic() + timeout
    try:
        while len(collected) < len(jobs):
            try:
                index, result = results.get(timeout=1)
            except queue.Empty:
                dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                if dead:  # died before it could report (e.g. could not even start)
                    barrier.abort()
                    raise RuntimeError(f"a load generator process exited with {dead[0]}") from None
                if time.monotonic() > give_up:
                    raise RuntimeError(f"load generators still running after {timeout:.0f} s") from None
                continue
            if "crash" in result:
                raise RuntimeError(f"load generator {index} failed:\n{result['crash']}")
            collected[index] = result
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
    return [collected[i] for i in range(len(jobs))]


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
