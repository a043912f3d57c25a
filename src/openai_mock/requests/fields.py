"""What every endpoint's reader uses: typed access to a body's fields (`Fields`), the sampling
parameters they share, and a message's text from its content parts."""

from __future__ import annotations

from typing import Any

from ..wire.errors import invalid
from .checks import (
    SAMPLING,
    Arr,
    Bool,
    Check,
    Int,
    Invalid,
    Num,
    Obj,
    Str,
    Tagged,
    check_fields,
    missing,
    wrong_type,
)


class Fields:
    """Typed access to a request body's fields, raising the real API's errors."""

    def __init__(self, body: dict[str, Any]):
        self.body = body

    def get(self, name: str, check: Check, default: Any = None) -> Any:
        value = self.body.get(name)
        if value is None:
            return default
        check(value, name)
        return value

    def string(self, name: str, default: str | None = None) -> str | None:
        value: str | None = self.get(name, Str(), default)
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value: bool = self.get(name, Bool(), default)
        return value

    def integer(self, name: str, minimum: int | None = None, maximum: int | None = None) -> int | None:
        value: int | None = self.get(name, Int(minimum, maximum))
        return value

    def number(self, name: str, minimum: float | None = None, maximum: float | None = None) -> float | None:
        value: float | None = self.get(name, Num(minimum, maximum))
        return value

    def mapping(self, name: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self.get(name, Obj())
        return value

    def array(self, name: str) -> list[Any] | None:
        value: list[Any] | None = self.get(name, Arr())
        return value

    def required(self, name: str) -> Any:
        value = self.body.get(name)
        if value is None:
            raise missing(name)
        return value

    def stream_options(self, stream: bool) -> Fields:
        """`stream_options`, which the real API refuses on a request that does not stream."""
        options = self.mapping("stream_options")
        if options is not None and not stream:
            raise Invalid(invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                                  param="stream_options"))
        return Fields(options or {})

    def model(self) -> str:
        model = self.body.get("model")
        if model is None or model == "":
            raise Invalid(invalid("you must provide a model parameter"))
        if not isinstance(model, str):
            raise wrong_type("model", "a string", model)
        return model


def sampling(fields: Fields) -> None:
    """The sampling parameters every generation endpoint shares."""
    check_fields(fields.body, SAMPLING)


# --- a message's text ---------------------------------------------------------------------------

# content part type -> the key that holds its text (images, audio and files take no part)
TEXT_PARTS = {"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal"}


def text_of(content: Any, param: str, parts: Tagged,
            expected: str = "one of a string or array of objects") -> str | None:
    """A message's text: a string, or the text parts of an array of content parts (each refused
    unless `parts` allows it), joined by newlines."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise wrong_type(param, expected, content)
    texts = []
    for i, part in enumerate(content):
        parts(part, f"{param}[{i}]")
        key = TEXT_PARTS.get(part["type"])  # (a string: `parts` refused anything else)
        if key is not None:
            texts.append(part[key])
    return "\n".join(texts)
