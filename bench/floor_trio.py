"""The trio floors: what one trio process can reach for our workload, below any framework.

`python bench/floor_trio.py --port N [--h11]` serves, on keep-alive HTTP/1.1 connections,
- `POST /stream/<chunks>/<delay_ms>`: `chunks` pre-encoded SSE frames with `trio.sleep(delay)`
  before each one after the first, then `data: [DONE]` (chunked transfer encoding);
- any other request: a fixed chat.completion JSON.

Without `--h11` it parses nothing it need not: it reads up to the end of the head, skips
`Content-Length` bytes of body, and writes pre-framed bytes itself. With `--h11` it parses the
requests and frames the answers with h11, as hypercorn does. Neither matches, encodes or
validates anything: they show how far a trio process can go before an HTTP framework's layers
(bench/floor_app.py) and openai-mock's own work. Same process-level settings as openai-mock
(listen backlog 4,096, gc frozen after start-up with raised thresholds).
"""

from __future__ import annotations

import argparse
import gc
from typing import Any

import trio
from floor_payloads import COMPLETION, DONE, FRAME  # (bench/ is on sys.path: run as a script)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


RAW_COMPLETION = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                  % len(COMPLETION)) + COMPLETION
RAW_STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
RAW_FRAME = _chunk(FRAME)
RAW_END = _chunk(DONE) + b"0\r\n\r\n"


def _stream_of(target: bytes) -> tuple[int, float] | None:
    if not target.startswith(b"/stream/"):
        return None
    _, _, chunks, delay_ms = target.split(b"/")
    return int(chunks), int(delay_ms) / 1000


async def raw(stream: trio.SocketStream) -> None:
    buf = b""
    while True:
        while (end := buf.find(b"\r\n\r\n")) < 0:
            data = await stream.receive_some(65536)
            if not data:
                return
            buf += data
        head, buf = buf[:end], buf[end + 4:]
        length = 0
        lines = head.split(b"\r\n")
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(buf) < length:
            data = await stream.receive_some(65536)
            if not data:
                return
            buf += data
        buf = buf[length:]
        streamed = _stream_of(lines[0].split(b" ", 2)[1])
        if streamed is None:
            await stream.send_all(RAW_COMPLETION)
            continue
        chunks, delay = streamed
        await stream.send_all(RAW_STREAM_HEAD)
        for n in range(chunks):
            if n and delay:
                await trio.sleep(delay)
            await stream.send_all(RAW_FRAME)
        await stream.send_all(RAW_END)


async def with_h11(stream: trio.SocketStream) -> None:
    import h11

    conn = h11.Connection(h11.SERVER)
    target = b""
    while True:
        event: Any = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Request):
            target = event.target
        elif isinstance(event, h11.EndOfMessage):
            streamed = _stream_of(target)
            if streamed is None:
                await stream.send_all(conn.send(h11.Response(status_code=200, headers=[
                    ("content-type", "application/json"), ("content-length", str(len(COMPLETION)))])))
                await stream.send_all(conn.send(h11.Data(data=COMPLETION)) + conn.send(h11.EndOfMessage()))
            else:
                chunks, delay = streamed
                await stream.send_all(conn.send(h11.Response(status_code=200, headers=[
                    ("content-type", "text/event-stream"), ("transfer-encoding", "chunked")])))
                for n in range(chunks):
                    if n and delay:
                        await trio.sleep(delay)
                    await stream.send_all(conn.send(h11.Data(data=FRAME)))
                await stream.send_all(conn.send(h11.Data(data=DONE)) + conn.send(h11.EndOfMessage()))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return


def serve_one(handler: Any) -> Any:
    async def handle(stream: trio.SocketStream) -> None:
        try:
            await handler(stream)
        except Exception:  # noqa: BLE001 - a client that hangs up, or a request the floor cannot parse
            pass
        finally:
            await stream.aclose()
    return handle


async def main(port: int, use_h11: bool) -> None:
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1", backlog=4096)
    gc.collect()  # as openai-mock's server.tune_gc
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    await trio.serve_listeners(serve_one(with_h11 if use_h11 else raw), listeners)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--h11", action="store_true", help="parse and frame with h11, as hypercorn does")
    args = parser.parse_args()
    try:
        trio.run(main, args.port, args.h11)
    except KeyboardInterrupt:
        pass
