"""`POST /v1/moderations` bodies to engine requests: each input is one message that moderation
rules match."""

from __future__ import annotations

from typing import Any

from ..conversation import Message
from ..engine import Request
from ..options import ModerationOptions
from .checks import Obj, Str, Tagged, missing, wrong_type
from .fields import Fields

DEFAULT_MODERATION_MODEL = "omni-moderation-latest"


# the parts of one multimodal moderation input
MODERATION_PARTS = Tagged({
    "text": Obj({"text": Str()}, required=("text",)),
    "image_url": Obj({"image_url": Obj({"url": Str()}, required=("url",))}, required=("image_url",)),
})


def parse(body: dict[str, Any], session: str) -> Request:
    fields = Fields(body)
    model: str = fields.get("model", Str(), DEFAULT_MODERATION_MODEL)
    value = body.get("input")
    if value is None:
        raise missing("input")
    inputs: list[tuple[str, tuple[str, ...]]]
    if isinstance(value, str):
        inputs = [(value, ("text",))]
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        inputs = [(v, ("text",)) for v in value]
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        inputs = [_multimodal(value)]
    else:
        raise wrong_type("input", "one of a string, array of strings, or array of objects", value)
    return Request(endpoint="moderations", model=model, session=session,
                   conversation=tuple(Message(role="user", content=text) for text, _ in inputs),
                   options=ModerationOptions(input_types=tuple(types for _, types in inputs)))


def _multimodal(parts: list[dict[str, Any]]) -> tuple[str, tuple[str, ...]]:
    """One input of text and image parts: its text (what rules match) and its kinds of content."""
    for i, part in enumerate(parts):
        MODERATION_PARTS(part, f"input[{i}]")
    texts = [part["text"] for part in parts if part["type"] == "text"]
    kinds = {"text" if part["type"] == "text" else "image" for part in parts}
    return "\n".join(texts), tuple(k for k in ("text", "image") if k in kinds)
