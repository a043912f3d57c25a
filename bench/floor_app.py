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

import trio
from floor_payloads import (  # (bench/ is on sys.path: run as a script)
    COMPLETION,
    DONE,
    FRAME,
    run_on_hypercorn,
)
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


if __name__ == "__main__":
    run_on_hypercorn(app, __doc__.splitlines()[0])
