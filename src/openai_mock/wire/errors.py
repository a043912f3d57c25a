"""OpenAI's error bodies: {"error": {"message", "type", "param", "code"}}, with the real API's
defaults per status."""

from __future__ import annotations

from typing import Any

from ..scenario.model import ErrorSpec

# status -> (type, code, message); {model} is the request's model
_DEFAULTS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request."),
    401: ("invalid_request_error", "invalid_api_key",
          "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."),
    403: ("invalid_request_error", "unsupported_country_region_territory",
          "Country, region, or territory not supported"),
    404: ("invalid_request_error", None, "The requested resource does not exist."),
    408: ("invalid_request_error", None, "Request timed out."),
    409: ("invalid_request_error", None, "The request conflicts with the current state of the resource."),
    413: ("invalid_request_error", None, "Request body too large."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: ("tokens", "rate_limit_exceeded",
          "Rate limit reached for {model} in organization org-mock on tokens per min (TPM): Limit 30000, "
          "Used 30000, Requested 1000. Please try again in 2s. Visit "
          "https://platform.openai.com/account/rate-limits to learn more."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The server is overloaded or not ready yet."),
    504: ("server_error", None, "Gateway timeout."),
}


def error_object(spec: ErrorSpec, model: str | None = None) -> dict[str, Any]:
    """The inner error object, the configured values over the defaults for the status."""
    default_type, default_code, default_message = _DEFAULTS.get(
        spec.status,
        ("server_error", None, "The server had an error while processing your request. Sorry about that!")
        if spec.status >= 500 else ("invalid_request_error", None, "Bad request."),
    )
    message = spec.message if spec.message is not None else default_message.format(model=model or "gpt-4o")
    return {
        "message": message,
        "type": spec.type if spec.type is not None else default_type,
        "param": spec.param,
        "code": spec.code if spec.code is not None else default_code,
    }


def error_body(spec: ErrorSpec, model: str | None = None) -> dict[str, Any]:
    return {"error": error_object(spec, model)}


def invalid(message: str, param: str | None = None, code: str | None = None, status: int = 400) -> ErrorSpec:
    """A request the real API would refuse."""
    return ErrorSpec(status=status, message=message, type="invalid_request_error", param=param, code=code)
