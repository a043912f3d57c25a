"""The quart-trio application: routes, auth, CORS, the journal and OpenAI-shaped errors.

Each generation route reads its body, lets `parse` turn it into an engine `Request`, asks the
engine for a `Plan`, and hands the plan to the executor with the endpoint's encoders.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

import attrs
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from .. import parse, parse_endpoints, parse_responses
from ..engine import Engine, Request, request_id
from ..journal import Journal
from ..log import RequestLog
from ..plan import Plan
from ..scenario import load_bytes
from ..scenario.load import ConfigError
from ..scenario.model import Config, ErrorSpec
from ..wire import chat, completions, embeddings, models, moderations, responses
from ..wire.errors import invalid
from . import executor
from .transport import CONNECTION

SESSION_HEADER = "X-Mock-Session"
DEFAULT_MAX_BODY = 32 * 1024 * 1024
EXPOSED_HEADERS = ", ".join((
    "x-request-id", "openai-processing-ms", "openai-version", "openai-organization", "retry-after",
    "retry-after-ms", "x-should-retry", "x-ratelimit-limit-requests", "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
))

CHAT = executor.Encoder(body=chat.completion, stream=chat.stream)
RESPONSES = executor.Encoder(body=responses.body, stream=responses.stream)
COMPLETIONS = executor.Encoder(body=completions.completion, stream=completions.stream)
MODERATIONS = executor.Encoder(body=moderations.body)


class MockState:
    """What the routes share: the engine (configuration and state), the journal, the log."""

    def __init__(self, config: Config, log: RequestLog | None = None, max_body: int = DEFAULT_MAX_BODY):
        self.engine = Engine(config)
        self.log = log or RequestLog(None)
        self.journal = Journal(on_finish=self.log.entry)
        self.max_body = max_body
        self.models = self._models(config)

    @property
    def config(self) -> Config:
        return self.engine.config

    def replace(self, config: Config) -> None:
        """Serve `config` from the next request on; requests in flight keep their plans."""
        self.engine.replace(config)
        self.models = self._models(config)

    @staticmethod
    def _models(config: Config) -> dict[str, dict[str, Any]]:
        named = [r.response["model"] for r in config.rules
                 if isinstance(r.response, dict) and isinstance(r.response.get("model"), str)]
        return models.catalogue(tuple(config.models) + tuple(named))


@attrs.define
class _Context:
    """Per request: who asks, the seed of its ids, its journal entry."""

    started: float
    session: str
    seed: int | None = None
    request_id: str | None = None
    entry: Any = None


def create_app(state: MockState) -> QuartTrio:
    app = QuartTrio("openai_mock")
    app.config.update(MAX_CONTENT_LENGTH=state.max_body, RESPONSE_TIMEOUT=None, BODY_TIMEOUT=60,
                      PROVIDE_AUTOMATIC_OPTIONS=False)
    app.extensions["openai_mock"] = state

    def fail(spec: ErrorSpec, headers: Any = ()) -> Response:
        ctx: _Context = g.ctx
        if ctx.entry is not None:
            ctx.entry.error = executor.error_message(spec)
        plan = Plan(request_id=ctx.request_id or "", seed=ctx.seed or 0, stream=False, error=spec)
        return executor.error_response(plan, headers)

    async def read_json() -> dict[str, Any]:
        raw = await request.get_data(cache=False)
        body = parse.json_body(raw)
        if g.ctx.entry is not None:
            g.ctx.entry.body = body
        return body

    async def generate(parser: Callable[[dict[str, Any], str], Request], encoder: executor.Encoder) -> Response:
        ctx: _Context = g.ctx
        try:
            body = await read_json()
            generation = parser(body, ctx.session)
        except parse.Invalid as refused:
            return fail(refused.spec)
        plan = state.engine.plan(generation, ctx.seed or 0)
        connection = request.scope["state"].get(CONNECTION) if "state" in request.scope else None
        chunked = request.scope.get("http_version") == "1.1"  # (HTTP/1.0 bodies end by closing)
        return await executor.respond(plan, encoder, connection, ctx.entry, state.journal, direct=chunked)

    # --- before and after every request -----------------------------------------------------

    @app.before_request
    async def begin() -> Response | None:
        session = request.headers.get(SESSION_HEADER) or "default"
        ctx = g.ctx = _Context(started=time.perf_counter(), session=session)
        path = request.path
        if request.method == "OPTIONS":
            return Response(b"", status=204, headers=_preflight_headers())
        if not path.startswith("/v1/") and path != "/v1":
            return None
        ctx.seed = state.engine.request_seed(session)
        ctx.request_id = request_id(ctx.seed)
        ctx.entry = state.journal.start(ctx.request_id, request.method, path, session)
        api_key = state.config.api_key
        if api_key is not None:
            given = request.headers.get("Authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return fail(invalid(
                    "You didn't provide an API key. You need to provide your API key in an Authorization "
                    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
                    "field (with blank username) if you're accessing the API from your browser and are "
                    "prompted for a username. You can obtain an API key from "
                    "https://platform.openai.com/account/api-keys.", code="invalid_api_key", status=401))
            if not hmac.compare_digest(token.strip().encode(), api_key.encode()):
                return fail(invalid(
                    f"Incorrect API key provided: {_mask(token.strip())}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.", code="invalid_api_key", status=401))
        return None

    @app.after_request
    async def finish(response: Response) -> Response:
        ctx: _Context | None = g.get("ctx")
        headers = response.headers
        headers.update(_cors_headers(state.config))
        if ctx is None:
            return response
        if ctx.request_id is not None:
            headers["x-request-id"] = ctx.request_id
            headers["openai-version"] = "2020-10-01"
            headers["openai-processing-ms"] = str(int((time.perf_counter() - ctx.started) * 1000))
        entry = ctx.entry
        if entry is not None:
            if entry.outcome is None and not (entry.stream and response.status_code == 200):
                entry.status = response.status_code  # (a fault before the headers leaves it null)
                state.journal.finish(entry, "error" if response.status_code >= 400 else "completed")
        else:
            state.log.request(request.method, request.path, response.status_code,
                              (time.perf_counter() - ctx.started) * 1000)
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        if "ctx" not in g:
            g.ctx = _Context(started=time.perf_counter(), session="default")
        if isinstance(error, NotFound):
            return fail(invalid(f"Invalid URL ({request.method} {request.path})", status=404))
        if isinstance(error, MethodNotAllowed):
            allowed = ", ".join(sorted(error.valid_methods or ()))
            return fail(invalid(f"Invalid method for URL ({request.method} {request.path}): use {allowed}",
                                status=405), headers=[("Allow", allowed)])
        if isinstance(error, RequestEntityTooLarge):
            return fail(invalid(f"Request body too large: the limit is {state.max_body} bytes.",
                                code="request_too_large", status=413))
        status = error.code or 400
        return fail(ErrorSpec(status=status, message=error.description or error.name))

    @app.errorhandler(Exception)
    async def crash(error: Exception) -> Response:  # a bug in the mock: still an OpenAI-shaped error
        state.log.errors.exception("internal error", exc_info=error)
        if "ctx" not in g:
            g.ctx = _Context(started=time.perf_counter(), session="default")
        return fail(ErrorSpec(status=500, message=f"openai-mock internal error: {error!r}"))

    # --- the API -------------------------------------------------------------------------------

    @app.post("/v1/chat/completions")
    async def chat_completions() -> Response:
        return await generate(parse.chat, CHAT)

    @app.post("/v1/responses")
    async def create_response() -> Response:
        return await generate(parse_responses.responses, RESPONSES)

    def response_not_found(response_id: str) -> Response:
        return fail(invalid(f"No response found with id '{response_id}'.", param="response_id",
                            code="response_not_found", status=404))

    @app.get("/v1/responses/<response_id>")
    async def get_response(response_id: str) -> Response:
        stored = state.engine.stored(g.ctx.session, response_id)
        if stored is None:
            return response_not_found(response_id)
        return executor.json_response(responses.retrieve(stored.plan))

    @app.delete("/v1/responses/<response_id>")
    async def delete_response(response_id: str) -> Response:
        if not state.engine.delete_stored(g.ctx.session, response_id):
            return response_not_found(response_id)
        return executor.json_response({"id": response_id, "object": "response.deleted", "deleted": True})

    @app.post("/v1/completions")
    async def legacy_completions() -> Response:
        return await generate(parse_endpoints.completions, COMPLETIONS)

    @app.post("/v1/moderations")
    async def create_moderation() -> Response:
        return await generate(parse_endpoints.moderations, MODERATIONS)

    @app.post("/v1/embeddings")
    async def create_embeddings() -> Response:  # no rule answers embeddings: no plan, no faults
        try:
            asked = parse_endpoints.embeddings(await read_json())
        except parse.Invalid as refused:
            return fail(refused.spec)
        return executor.json_response(embeddings.body(asked))

    @app.get("/v1/models")
    async def list_models() -> Response:
        return executor.json_response(models.model_list(state.models))

    @app.get("/v1/models/<path:model_id>")
    async def get_model(model_id: str) -> Response:
        if model_id not in state.models:
            return fail(invalid(f"The model '{model_id}' does not exist or you do not have access to it.",
                                code="model_not_found", status=404))
        return executor.json_response(state.models[model_id])

    # --- health and admin ----------------------------------------------------------------------

    @app.get("/health")
    async def health() -> Response:
        return executor.json_response({"status": "ok"})

    @app.post("/_mock/reset")
    async def reset() -> Response:
        session = request.args.get("session")
        state.engine.reset(session)
        state.journal.clear(session)
        return executor.json_response({"status": "ok", "session": session})

    @app.get("/_mock/requests")
    async def journal() -> Response:
        entries = state.journal.entries(request.args.get("session"))
        return executor.json_response({"object": "list", "data": entries})

    @app.get("/_mock/scenarios")
    async def scenarios() -> Response:
        return executor.json_response(scenario_list(state.config))

    @app.put("/_mock/scenarios")
    async def replace_scenarios() -> Response:
        raw = await request.get_data(cache=False)
        try:
            config = load_bytes(raw, "<PUT /_mock/scenarios>")
        except ConfigError as error:
            return executor.json_response(
                {"error": {"message": str(error), "type": "invalid_request_error", "param": None,
                           "code": "invalid_scenarios", "problems": [str(p) for p in error.problems]}},
                status=400)
        state.replace(config)
        return executor.json_response(scenario_list(config))

    return app


def scenario_list(config: Config) -> dict[str, Any]:
    return {"object": "list", "data": [
        {"id": r.id, "form": r.form, "file": r.file, "line": r.line} for r in config.rules
    ]}


def _mask(key: str) -> str:
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


def _preflight_headers() -> dict[str, str]:
    return {
        "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
        "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers") or "*",
        "Access-Control-Max-Age": "86400",
    }


def _cors_headers(config: Config) -> dict[str, str]:
    origin = request.headers.get("Origin")
    headers = {"Access-Control-Expose-Headers": EXPOSED_HEADERS}
    if config.cors_origins is None:
        headers["Access-Control-Allow-Origin"] = "*"
    else:
        headers["Vary"] = "Origin"
        if origin is not None and origin in config.cors_origins:
            headers["Access-Control-Allow-Origin"] = origin
    return headers

