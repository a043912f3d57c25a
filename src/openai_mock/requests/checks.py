"""What a request's values must be, and the real API's 400 for anything else.

A check is a small value that validates one JSON value at a `param` path (`messages[0].content`)
and raises `Invalid` with the real API's words: "Invalid type for 'stop': expected one of a
string or array of strings, but got an integer instead." Checks nest (an object of fields, an
array of items, a union by JSON type, objects told apart by their `type`), so a request's
optional fields are one table from name to check, validated in the order the real API reports
them (`check_fields`). Nothing here looks a request's value up in a table before knowing it is
a string: a dict or a list where a string belongs is a 400, never a `TypeError`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from ..scenario.model import ErrorSpec
from ..wire.errors import invalid


class Invalid(Exception):
    """The request is refused; `spec` is the OpenAI error to send."""

    def __init__(self, spec: ErrorSpec):
        super().__init__(spec.message)
        self.spec = spec


# --- the real API's sentences -------------------------------------------------------------------


def kind(value: Any) -> str:
    """What a JSON value is, in the words of the real API's messages ("but got ... instead")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def is_tokens(value: Any) -> bool:
    """A non-empty list of token ids (integers)."""
    return isinstance(value, list) and bool(value) and all(isinstance(t, int) and not isinstance(t, bool) for t in value)


def wrong_type(param: str, expected: str, value: Any) -> Invalid:
    return Invalid(invalid(f"Invalid type for '{param}': expected {expected}, but got {kind(value)} instead.",
                           param=param, code="invalid_type"))


def missing(param: str) -> Invalid:
    return Invalid(invalid(f"Missing required parameter: '{param}'.", param=param,
                           code="missing_required_parameter"))


def listed(values: tuple[str, ...], last: str = "and") -> str:
    """'a', 'b', and 'c' (or 'a' and 'b'; with `last="or"`, 'a', 'b', or 'c')."""
    quoted = [f"'{v}'" for v in values]
    if len(quoted) > 2:
        return ", ".join(quoted[:-1]) + f", {last} {quoted[-1]}"
    return f" {last} ".join(quoted)


def unsupported(param: str, value: str, values: tuple[str, ...]) -> Invalid:
    return Invalid(invalid(f"Invalid value: '{value}'. Supported values are: {listed(values)}.", param=param,
                           code="invalid_value"))


def out_of_bounds(param: str, value: float, what: str, minimum: float | None, maximum: float | None) -> Invalid | None:
    """The refusal of a number outside [minimum, maximum], if it is; `what` is integer or decimal."""
    if minimum is not None and value < minimum:
        return Invalid(invalid(f"Invalid '{param}': {what} below minimum value. Expected a value >= {minimum}, "
                               f"but got {value} instead.", param=param, code=f"{what}_below_min_value"))
    if maximum is not None and value > maximum:
        return Invalid(invalid(f"Invalid '{param}': {what} above maximum value. Expected a value <= {maximum}, "
                               f"but got {value} instead.", param=param, code=f"{what}_above_max_value"))
    return None


def _too_long(param: str, what: str, limit: int, length: int) -> Invalid:
    code = {"array": "array_above_max_length", "string": "string_above_max_length"}[what]
    return Invalid(invalid(f"Invalid '{param}': {what} too long. Expected {'an' if what == 'array' else 'a'} "
                           f"{what} with maximum length {limit}, but got {'an' if what == 'array' else 'a'} {what} "
                           f"with length {length} instead.", param=param, code=code))


def _empty(param: str, what: str) -> Invalid:
    article = "an" if what == "array" else "a"
    return Invalid(invalid(f"Invalid '{param}': empty {what}. Expected {article} {what} with minimum length 1, "
                           f"but got an empty {what} instead.", param=param, code=f"empty_{what}"))


# --- the body -----------------------------------------------------------------------------------

UNPARSABLE = ("We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
              "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
              "valid JSON. If you have trouble figuring out how to fix this, please contact us through our "
              "help center at help.openai.com.)")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python reads them, JSON has no such thing


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400
        raise ValueError(f"{text} is out of range")
    return number


def json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, UnicodeDecodeError, RecursionError):  # (RecursionError: nesting too deep to read)
        raise Invalid(invalid(UNPARSABLE)) from None
    if not isinstance(body, dict):
        raise Invalid(invalid(f"Invalid body: expected a JSON object, but got {kind(body)} instead."))
    if _SURROGATE.search(raw) is not None and not _encodable(body):
        raise Invalid(invalid(UNPARSABLE))  # (a lone surrogate escape: JSON that is no Unicode text)
    return body


# `\uD800`-`\uDFFF` escapes: a pair of them is one character beyond the first plane; one alone
# is not text (the body cannot be written back, to the journal or anywhere). Rare enough that
# the body is checked only when the raw bytes hold one.
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


# --- checks -------------------------------------------------------------------------------------


class Check(Protocol):
    """Refuses `value` at `param` with the real API's 400, or lets it be."""

    @property
    def expected(self) -> str: ...  # "a string", for the message when a value is of another type

    def __call__(self, value: Any, param: str) -> None: ...


def check_fields(body: Mapping[str, Any], checks: Mapping[str, Check], prefix: str = "") -> None:
    """Each present, non-null field of `body` that `checks` names; of several faults, the first
    in the table's order is reported."""
    try:  # a body has a few of a table's fields: check those (the hot path), in any order
        for name in checks.keys() & body.keys():
            value = body[name]
            if value is not None:
                checks[name](value, prefix + name)
    except Invalid:
        for name, check in checks.items():  # refused: which fault comes first
            value = body.get(name)
            if value is not None:
                check(value, prefix + name)
        raise


@attrs.frozen
class Str:
    max_length: int | None = None
    non_empty: bool = False
    expected: str = "a string"

    def __call__(self, value: Any, param: str) -> None:
        if not isinstance(value, str):
            raise wrong_type(param, self.expected, value)
        if self.non_empty and not value:
            raise _empty(param, "string")
        if self.max_length is not None and len(value) > self.max_length:
            raise _too_long(param, "string", self.max_length, len(value))


@attrs.frozen
class Bool:
    expected: str = "a boolean"

    def __call__(self, value: Any, param: str) -> None:
        if not isinstance(value, bool):
            raise wrong_type(param, self.expected, value)


@attrs.frozen
class Int:
    minimum: int | None = None
    maximum: int | None = None
    expected: str = "an integer"

    def __call__(self, value: Any, param: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise wrong_type(param, self.expected, value)
        refused = out_of_bounds(param, value, "integer", self.minimum, self.maximum)
        if refused is not None:
            raise refused


@attrs.frozen
class Num:
    minimum: float | None = None
    maximum: float | None = None
    expected: str = "a decimal"

    def __call__(self, value: Any, param: str) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise wrong_type(param, self.expected, value)
        refused = out_of_bounds(param, value, "decimal", self.minimum, self.maximum)
        if refused is not None:
            raise refused


@attrs.frozen
class Enum:
    values: tuple[str, ...]

    @property
    def expected(self) -> str:
        return "one of " + listed(self.values, "or")

    def __call__(self, value: Any, param: str) -> None:
        if not isinstance(value, str):
            raise wrong_type(param, self.expected, value)
        if value not in self.values:
            raise unsupported(param, value, self.values)


@attrs.frozen
class Obj:
    """An object: its fields' checks (fields not named are let be) and the ones it requires."""

    fields: Mapping[str, Check] = attrs.field(factory=dict)
    required: tuple[str, ...] = ()
    expected: str = "an object"

    def __call__(self, value: Any, param: str) -> None:
        if not isinstance(value, dict):
            raise wrong_type(param, self.expected, value)
        for name in self.required:
            if value.get(name) is None:
                raise missing(f"{param}.{name}")
        check_fields(value, self.fields, f"{param}.")


@attrs.frozen
class Arr:
    items: Check | None = None
    min_items: int = 0
    max_items: int | None = None
    of: str | None = None  # what the message says it is an array of, when not the items' own words

    @property
    def expected(self) -> str:
        if self.of is not None:
            return f"an array of {self.of}"
        if isinstance(self.items, (Obj, Tagged)):
            return "an array of objects"
        if isinstance(self.items, Str):
            return "an array of strings"
        if isinstance(self.items, Enum):
            return f"an array of {self.items.expected}"
        return "an array"

    def __call__(self, value: Any, param: str) -> None:
        if not isinstance(value, list):
            raise wrong_type(param, self.expected, value)
        if len(value) < self.min_items:
            raise _empty(param, "array") if not value else Invalid(invalid(
                f"Invalid '{param}': array too short. Expected an array with minimum length {self.min_items}, "
                f"but got an array with length {len(value)} instead.", param=param, code="array_below_min_length"))
        if self.max_items is not None and len(value) > self.max_items:
            raise _too_long(param, "array", self.max_items, len(value))
        if self.items is not None:
            for i, item in enumerate(value):
                self.items(item, f"{param}[{i}]")


@attrs.frozen
class OneOf:
    """A value that may be of several JSON types: the check for its type, by Python type."""

    by_type: Mapping[type, Check]
    expected: str

    def __call__(self, value: Any, param: str) -> None:
        for python_type, check in self.by_type.items():
            if isinstance(value, python_type) and not (isinstance(value, bool) and python_type is not bool):
                check(value, param)
                return
        raise wrong_type(param, self.expected, value)


@attrs.frozen
class Tagged:
    """Objects told apart by their `type`: the check of each kind, in the order the real API lists
    them. With `open`, kinds not listed are let be."""

    kinds: Mapping[str, Check]
    open: bool = False
    expected: str = "an object"

    def tag(self, value: Any, param: str) -> str:
        """The kind of `value`, refused unless it is one of `kinds` (or any string, when open)."""
        if not isinstance(value, dict):
            raise wrong_type(param, self.expected, value)
        tag = value.get("type")
        if tag is None:
            raise missing(f"{param}.type")
        names = tuple(self.kinds)
        if not isinstance(tag, str):
            raise wrong_type(f"{param}.type", "one of " + listed(names, "or") if names else "a string", tag)
        if tag not in self.kinds and not self.open:
            raise unsupported(f"{param}.type", tag, names)
        return tag

    def __call__(self, value: Any, param: str) -> None:
        check = self.kinds.get(self.tag(value, param))
        if check is not None:
            check(value, param)


@attrs.frozen
class Metadata:
    """Up to 16 string values under keys of up to 64 characters, values of up to 512."""

    expected: str = "a metadata object"

    def __call__(self, value: Any, param: str) -> None:
        if not isinstance(value, dict):
            raise wrong_type(param, self.expected, value)
        if len(value) > 16:
            raise Invalid(invalid(f"Invalid '{param}': too many properties. Expected an object with at most 16 "
                                  f"properties, but got an object with {len(value)} properties instead.",
                                  param=param, code="object_above_max_properties"))
        for key, item in value.items():
            if len(key) > 64:
                shown = f"{key[:3]}...{key[-3:]}"
                raise Invalid(invalid(f"Invalid property name in '{param}': '{shown}' is too long. Expected a "
                                      f"string with maximum length 64, but got a string with length {len(key)} "
                                      "instead.", param=f"{param}.{key}", code="property_name_above_max_length"))
            Str(max_length=512)(item, f"{param}.{key}")


@attrs.frozen
class LogitBias:
    """Token ids (non-negative integers, written as strings) to a bias from -100 to 100."""

    expected: str = "an object"

    def __call__(self, value: Any, param: str) -> None:
        if not isinstance(value, dict):
            raise wrong_type(param, self.expected, value)
        for key, bias in value.items():
            if not key.isdigit() or not key.isascii():
                raise Invalid(invalid(f"Invalid key in '{param}': {key}. You should only be submitting "
                                      "non-negative integers.", param=param))
            Num(-100, 100, expected="an integer")(bias, f"{param}.{key}")


# --- shared by the generation endpoints ---------------------------------------------------------

# a string, or one to four strings
STOP = OneOf({str: Str(), list: Arr(Str(), min_items=1, max_items=4)}, "one of a string or array of strings")
SEED = Int(-(2**63), 2**63 - 1)
SERVICE_TIERS = Enum(("auto", "default", "flex", "scale", "priority", "fast"))
VERBOSITY = Enum(("low", "medium", "high"))
REASONING_EFFORTS = Enum(("none", "minimal", "low", "medium", "high", "xhigh", "max"))
MODERATION = Obj({"model": Str()}, required=("model",))
PROMPT_CACHE_OPTIONS = Obj({"ttl": Enum(("30m",)), "mode": Enum(("implicit", "explicit"))})
SAMPLING: dict[str, Check] = {
    "temperature": Num(0, 2), "top_p": Num(0, 1), "presence_penalty": Num(-2, 2), "frequency_penalty": Num(-2, 2),
}
