"""The hypercorn floor: what hypercorn alone costs for our workload, with no framework above it.

`python bench/floor_hypercorn.py --port N` serves a plain ASGI app (no Quart, no routing) with
`hypercorn.trio.serve`:
- `POST /stream/<chunks>/<delay_ms>`: reads the body, streams `chunks` fixed SSE frames with
  `trio.sleep(delay)` before each one after the first, then `data: [DONE]`;
- any other request: reads the body, returns a fixed chat.completion JSON.

openai-mock serves every request but the admin API's with a plain ASGI app on hypercorn's
HTTP/1.1 protocol (its `TCPServer` subclassed, see docs/architecture.md). So this is the part of
a request's cost that the stack sets: accepting the connection, hypercorn's tasks and protocol
(h11 parsing and framing, its ASGI messages) and closing. Figure 6 reads it for streams of 3
events, where a stream's fixed cost shows apart from its chunks'. Same process-level settings as
openai-mock (listen backlog 4,096, gc frozen after start-up with raised thresholds).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
from floor_payloads import (  # (bench/ is on sys.path: run as a script)
    COMPLETION,
    DONE,
    FRAME,
    run_on_hypercorn,
)

STREAM_HEADERS = [(b"content-type", b"text/event-stream")]
JSON_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(COMPLETION))]


async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
              send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    path: str = scope["path"]
    if not path.startswith("/stream/"):
        await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
        await send({"type": "http.response.body", "body": COMPLETION})
        return
    _, _, chunks, delay_ms = path.split("/")
    delay = int(delay_ms) / 1000
    await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
    for n in range(int(chunks)):
        if n and delay:
            await trio.sleep(delay)
        await send({"type": "http.response.body", "body": FRAME, "more_body": True})
    await send({"type": "http.response.body", "body": DONE})


if __name__ == "__main__":
    run_on_hypercorn(app, __doc__.splitlines()[0])
