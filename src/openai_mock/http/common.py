"""What every request goes through, whichever layer serves it: its session, the seed of its
ids, its journal entry, who may reach it (`access.py`), and the headers every response carries
(the real API's and CORS), and the errors of the HTTP layer itself. The router (`router.py`)
and the admin API's Quart hooks (`admin.py`) both call these, so the two can never differ."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ..engine import request_id
from ..journal import Entry
from ..plan import Plan
from ..scenario.model import Config, ErrorSpec
from ..store import StoreUnavailable
from ..wire.errors import invalid
from . import executor
from .access import cors_headers, is_admin

if TYPE_CHECKING:
    from .state import MockState

SESSION_HEADER = "X-Mock-Session"  # the client's session: its own steps, stored responses and journal
_SESSION = SESSION_HEADER.lower()  # (`header` takes lower-case names)
BODY_TIMEOUT = 60.0  # seconds a request body may take to arrive (Quart's default)
EXPOSED_HEADERS = ", ".join((
    "x-request-id", "openai-processing-ms", "openai-version", "openai-organization", "retry-after",
    "retry-after-ms", "x-should-retry", "x-ratelimit-limit-requests", "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
))


@attrs.define
class Exchange:
    """One request on its way: who asks, the seed of its ids, its journal entry (API paths only)."""

    method: str
    path: str
    session: str
    started: float = attrs.field(factory=time.perf_counter)
    seed: int = 0
    request_id: str | None = None
    entry: Entry | None = None


def is_api(path: str) -> bool:
    return path.startswith("/v1/") or path == "/v1"


async def open_exchange(state: MockState, method: str, path: str, header: Callable[[str], str | None],
                  local: str | None) -> tuple[Exchange, ErrorSpec | None]:
    """Start a request: `header(name)` reads a request header (lower-case name), `local` is the
    address the connection arrived at. For the API, draws the request's seed and starts its
    journal entry. The second value is the refusal to send instead of an answer (`access.py`)."""
    exchange = Exchange(method=method, path=path, session=header(_SESSION) or "default")
    refusal = state.access.refusal(method, path, header, local)
    if not is_api(path) or method == "OPTIONS":
        return exchange, refusal
    exchange.seed = await state.engine.request_seed(exchange.session)
    exchange.request_id = request_id(exchange.seed)
    exchange.entry = state.journal.start(exchange.request_id, method, path, exchange.session)
    return exchange, refusal or state.access.key_refusal(header("authorization"))


def error_reply(exchange: Exchange, spec: ErrorSpec, headers: Any = ()) -> executor.HTTPReply:
    """An OpenAI error for this request; the journal entry keeps its message."""
    if exchange.entry is not None:
        exchange.entry.error = executor.error_message(spec)
    plan = Plan(request_id=exchange.request_id or "", seed=exchange.seed, stream=False, error=spec)
    return executor.error_response(plan, headers)


def close(state: MockState, exchange: Exchange, status: int) -> None:
    """The response is about to go out with `status`: settle the journal (or the log, for the
    paths the journal does not keep). A stream's entry is settled by the executor as it ends."""
    entry = exchange.entry
    if entry is None:
        state.log.request(exchange.method, exchange.path, status, (time.perf_counter() - exchange.started) * 1000)
    elif entry.outcome is None and not (entry.stream and status == 200):
        entry.status = status  # (a fault before the headers leaves it null)
        state.journal.finish(entry, "error" if status >= 400 else "completed")


def response_headers(config: Config, exchange: Exchange, origin: str | None,
                     given: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """The headers every response carries: CORS, and for the API the real API's own, unless the
    answer `given` sets them itself (a recorded answer's x-request-id)."""
    headers = cors_headers(config, exchange.path, origin)
    if headers:
        headers.append(("access-control-expose-headers", EXPOSED_HEADERS))
    if exchange.request_id is not None:
        took = int((time.perf_counter() - exchange.started) * 1000)
        own = [("x-request-id", exchange.request_id), ("openai-version", "2020-10-01"),
               ("openai-processing-ms", str(took))]
        if given:
            names = {name.lower() for name, _ in given}
            own = [header for header in own if header[0] not in names]
        headers += own
    return headers


def health() -> executor.HTTPReply:
    """`GET /health`: the server is up."""
    return executor.json_response({"status": "ok"})


# --- the errors of the HTTP layer itself, the same whichever part answers -----------------------


def not_found(method: str, path: str) -> ErrorSpec:
    """The real API's 404, with the fix when the path is an endpoint's without its `/v1` (a
    `base_url` that lacks it) or with it twice."""
    from .endpoints import route  # (endpoints.py imports this module)

    meant = None
    if path.startswith("/v1/v1/") and route(path[3:]) is not None:
        meant, fix = path[3:], 'ends with /v1 once (base_url="http://HOST:PORT/v1")'
    elif not is_api(path) and route("/v1" + path) is not None:
        meant, fix = "/v1" + path, 'ends with /v1: base_url="http://HOST:PORT/v1"'
    if meant is None:
        return invalid(f"Invalid URL ({method} {path})", status=404)
    return invalid(f"Invalid URL ({method} {path}): the API is served under /v1 ({method} {meant}); check that "
                   f"the client's base_url {fix}", status=404)


def no_websocket(path: str) -> ErrorSpec:
    """The answer to a WebSocket upgrade: a 404 where nothing is served, as for any request, and
    a 400 where something is, for the API has no WebSocket endpoint there."""
    from .endpoints import route  # (endpoints.py imports this module)

    if route(path) is None and not is_admin(path):
        return invalid(f"Invalid URL (GET {path}): openai-mock serves no WebSocket endpoint (the Realtime API "
                       "is not mocked)", status=404)
    return invalid(f"{path} takes no WebSocket connection: send the request over plain HTTP, without "
                   "`Upgrade: websocket` (openai-mock serves no WebSocket endpoint; the Realtime API is not "
                   "mocked)")


def wrong_method(method: str, path: str, allowed: list[str]) -> tuple[ErrorSpec, list[tuple[str, str]]]:
    """The 405 and its `Allow` header."""
    listed = ", ".join(sorted(allowed))
    return invalid(f"Invalid method for URL ({method} {path}): use {listed}", status=405), [("allow", listed)]


def too_large(limit: int) -> ErrorSpec:
    return invalid(f"Request body too large: the limit is {limit} bytes.", code="request_too_large", status=413)


def too_slow(seconds: float) -> ErrorSpec:
    return invalid(f"Request timed out: the request body did not arrive within {seconds:g} seconds.",
                   code="request_timeout", status=408)


def unavailable(error: StoreUnavailable) -> ErrorSpec:
    """A request that needs the state store while it cannot be reached: worth a retry."""
    return ErrorSpec(status=503, message=f"{error} Retry later.", type="server_error", code="store_unavailable",
                     headers=(("x-should-retry", "true"),))


def internal(error: BaseException) -> ErrorSpec:
    """A bug in the mock: still answered like the API (and logged by the caller)."""
    return ErrorSpec(status=500, message=f"openai-mock internal error: {error!r}")


def preflight(requested_headers: str | None) -> executor.HTTPReply:
    """A CORS preflight's answer: no API key needed."""
    return executor.HTTPReply(status=204, headers=[
        ("access-control-allow-methods", "GET, POST, PUT, DELETE, OPTIONS"),
        ("access-control-allow-headers", requested_headers or "*"),
        ("access-control-max-age", "86400"),
    ])
