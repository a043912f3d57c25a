"""`POST /v1/embeddings`: deterministic vectors, as floats or base64.

A vector depends only on the model and the input: the same text always gets the same vector,
different texts different ones. The numbers come from SHAKE-256 of the input, so they carry no
meaning (two different texts are about as similar as two random directions), and a shorter
`dimensions` is a prefix of the full vector, scaled back to unit length, as with the real
text-embedding-3 models. Values are float32, so the float and base64 forms agree exactly."""

from __future__ import annotations

import base64
import hashlib
import io
import math
import struct
from typing import Any

from ..options import EmbeddingsRequest, Input
from ..plan import Plan
from . import sse

LARGE = 64 * 1024  # numbers (inputs x dimensions) from which an answer is written off the event loop


def vector(model: str, item: Input, dimensions: int) -> tuple[float, ...]:
    """A unit vector of float32 values, the same for the same (model, input)."""
    key = f"{model}\0text:{item}" if isinstance(item, str) else f"{model}\0tokens:{','.join(map(str, item))}"
    raw = hashlib.shake_256(key.encode("utf-8", "surrogatepass")).digest(4 * dimensions)
    values = [n / 2**31 - 1.0 for n in struct.unpack(f"<{dimensions}I", raw)]
    norm = math.sqrt(math.fsum(v * v for v in values))
    return struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(v / norm for v in values)))


def encode(values: tuple[float, ...]) -> str:
    """Standard base64 of the packed little-endian float32 values, which the SDKs decode."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def answer(plan: Plan) -> dict[str, Any]:
    """The plan's answer: made-up vectors for what it asks (a recorded answer is sent as recorded)."""
    return body(plan.options_of(EmbeddingsRequest))


def encoded(plan: Plan) -> bytes:
    """`sse.dumps(answer(plan))`, written straight into one buffer, a vector at a time: an answer at
    the bounds (2,048 inputs of 3,072 numbers, 130 MB of JSON) is never held twice, nor as millions
    of Python floats."""
    request = plan.options_of(EmbeddingsRequest)
    out = io.BytesIO()  # (grows in place: its bytes are the answer, not a copy of it)
    out.write(b'{"object":"list","data":[')
    for index, item in enumerate(request.inputs):
        values = vector(request.model, item, request.dimensions)
        if request.encoding_format == "base64":
            embedding = b'"' + base64.b64encode(struct.pack(f"<{len(values)}f", *values)) + b'"'
        else:  # (json.dumps writes a float as its repr)
            embedding = b"[" + ",".join(map(float.__repr__, values)).encode() + b"]"
        out.write(b'%s{"object":"embedding","index":%d,"embedding":' % (b"," if index else b"", index))
        out.write(embedding)
        out.write(b"}")
    out.write(b'],"model":%s,"usage":{"prompt_tokens":%d,"total_tokens":%d}}' % (
        sse.dumps(request.model), request.prompt_tokens, request.prompt_tokens))
    return out.getvalue()


def large(plan: Plan) -> bool:
    """Whether writing the answer takes long enough to be done off the event loop."""
    request = plan.options_of(EmbeddingsRequest)
    return len(request.inputs) * request.dimensions >= LARGE


def body(request: EmbeddingsRequest) -> dict[str, Any]:
    data = []
    for index, item in enumerate(request.inputs):
        values = vector(request.model, item, request.dimensions)
        embedding: Any = encode(values) if request.encoding_format == "base64" else list(values)
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {"object": "list", "data": data, "model": request.model,
            "usage": {"prompt_tokens": request.prompt_tokens, "total_tokens": request.prompt_tokens}}
