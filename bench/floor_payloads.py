"""What the floors (floor_app.py, floor_hypercorn.py, floor_trio.py) send: a fixed
chat.completion, one fixed SSE chunk frame repeated, and the end of a stream; made once, so that
no floor encodes anything per request. And how the two floors on hypercorn are served."""

from __future__ import annotations

import argparse
import gc
import json
from typing import Any

COMPLETION = json.dumps({
    "id": "chatcmpl-floor", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8},
}, separators=(",", ":")).encode()
FRAME = b"data: " + json.dumps({
    "id": "chatcmpl-floor", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "delta": {"content": " word"}, "finish_reason": None}],
}, separators=(",", ":")).encode() + b"\n\n"
DONE = b"data: [DONE]\n\n"


async def serve_on_hypercorn(app: Any, port: int) -> None:
    """Serve the ASGI `app` with `hypercorn.trio.serve` on 127.0.0.1:`port`, with openai-mock's
    process-level settings: listen backlog 4,096 (hypercorn's 100 drops bursts of connections),
    no access log, gc frozen after start-up with raised thresholds (as `server.tune_gc`)."""
    import trio  # (here: floor_trio.py imports this module without hypercorn)
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.backlog = 4096
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, app, config)
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)


def run_on_hypercorn(app: Any, description: str) -> None:
    """The command line of a floor on hypercorn: `--port N`, then serve until Ctrl-C."""
    import trio

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    try:
        trio.run(serve_on_hypercorn, app, parser.parse_args().port)
    except KeyboardInterrupt:
        pass
