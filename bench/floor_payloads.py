"""What the floors (floor_app.py, floor_trio.py) send: a fixed chat.completion, one fixed SSE
chunk frame repeated, and the end of a stream; made once, so that no floor encodes anything per
request."""

from __future__ import annotations

import json

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
