"""The framework floor: the least a quart-trio app on hypercorn can do for our workload.

`python bench/floor_app.py --port N` serves
- `POST /v1/chat/completions`: reads the body, returns a fixed chat.completion JSON;
- `POST /stream/<chunks>/<delay_ms>`: reads the body, streams `chunks` fixed SSE frames with
  `delay_ms` before each one after the first, then `data: [DONE]`.

No parsing, no matching, no encoding per request: what openai-mock costs above these figures
is its own work. It gets the same process-level settings as openai-mock (listen backlog, gc
tuning), so that the comparison is about per-request work, not about configuration.
"""

from __future__ import annotations

import argparse
import gc

import trio
from floor_payloads import COMPLETION, DONE, FRAME  # (bench/ is on sys.path: run as a script)
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio

app = QuartTrio("floor")


@app.post("/v1/chat/completions")
async def completion() -> Response:
    await request.get_data()
    return Response(COMPLETION, content_type="application/json")


@app.post("/stream/<int:chunks>/<int:delay_ms>")
async def stream(chunks: int, delay_ms: int) -> Response:
    await request.get_data()

    async def frames():
        for n in range(chunks):
            if n and delay_ms:
                await trio.sleep(delay_ms / 1000)
            yield FRAME
        yield DONE

    response = Response(frames(), content_type="text/event-stream")
    response.timeout = None
    return response


async def main(port: int) -> None:
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.backlog = 4096  # as openai-mock: hypercorn's 100 drops bursts of connections
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, app, config)
        gc.collect()  # as openai-mock's server.tune_gc
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    try:
        trio.run(main, parser.parse_args().port)
    except KeyboardInterrupt:
        pass
