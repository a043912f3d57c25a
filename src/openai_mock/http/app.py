"""The quart-trio application: the API's other routes (models, stored responses, unknown
paths), health and the admin API, with auth, CORS, the journal and OpenAI-shaped errors.

The generation endpoints (and `GET /health`) are served in front of it by
`hotpath.GenerationEndpoints`; both take what every request goes through from `common.py`.
This module is imported after the server has started (`deferred.DeferredApp`).
"""

from __future__ import annotations

from typing import Any

import trio
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from ..scenario import load_bytes
from ..scenario.load import ConfigError
from ..scenario.model import Config, ErrorSpec
from ..wire import models, responses
from ..wire.errors import invalid
from . import common, executor
from .state import MockState


def quart_response(reply: executor.HTTPReply) -> Response:
    assert reply.stream is None  # (streams are the generation endpoints': see hotpath.py)
    return Response(reply.body, status=reply.status, headers=reply.headers)


def create_app(state: MockState) -> QuartTrio:
    app = QuartTrio("openai_mock")
    app.config.update(MAX_CONTENT_LENGTH=state.max_body, RESPONSE_TIMEOUT=None, BODY_TIMEOUT=60,
                      PROVIDE_AUTOMATIC_OPTIONS=False)
    app.extensions["openai_mock"] = state

    def fail(spec: ErrorSpec, headers: Any = ()) -> Response:
        return quart_response(common.error_reply(g.exchange, spec, headers))

    # --- before and after every request -----------------------------------------------------

    @app.before_request
    async def begin() -> Response | None:
        g.exchange, refusal = common.open_exchange(state, request.method, request.path, request.headers.get)
        if request.method == "OPTIONS":
            return quart_response(common.preflight(request.headers.get("access-control-request-headers")))
        return fail(refusal) if refusal is not None else None

    @app.after_request
    async def finish(response: Response) -> Response:
        if "exchange" not in g:  # refused before `begin` ran
            g.exchange = common.Exchange(method=request.method, path=request.path, session="default")
        common.close(state, g.exchange, response.status_code)
        for name, value in common.response_headers(state.config, g.exchange, request.headers.get("origin")):
            response.headers[name] = value
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        if "exchange" not in g:
            g.exchange = common.Exchange(method=request.method, path=request.path, session="default")
        if isinstance(error, NotFound):
            return fail(invalid(f"Invalid URL ({request.method} {request.path})", status=404))
        if isinstance(error, MethodNotAllowed):
            allowed = ", ".join(sorted(error.valid_methods or ()))
            return fail(invalid(f"Invalid method for URL ({request.method} {request.path}): use {allowed}",
                                status=405), headers=[("Allow", allowed)])
        if isinstance(error, RequestEntityTooLarge):
            return fail(invalid(f"Request body too large: the limit is {state.max_body} bytes.",
                                code="request_too_large", status=413))
        return fail(ErrorSpec(status=error.code or 400, message=error.description or error.name))

    @app.errorhandler(Exception)
    async def crash(error: Exception) -> Response:  # a bug in the mock: still an OpenAI-shaped error
        state.log.errors.exception("internal error", exc_info=error)
        if "exchange" not in g:
            g.exchange = common.Exchange(method=request.method, path=request.path, session="default")
        return fail(ErrorSpec(status=500, message=f"openai-mock internal error: {error!r}"))

    # --- the API (the generation endpoints are in hotpath.py) ----------------------------------

    def response_not_found(response_id: str) -> Response:
        return fail(invalid(f"No response found with id '{response_id}'.", param="response_id",
                            code="response_not_found", status=404))

    @app.get("/v1/responses/<response_id>")
    async def get_response(response_id: str) -> Response:
        stored = state.engine.stored(g.exchange.session, response_id)
        if stored is None:
            return response_not_found(response_id)
        return quart_response(executor.json_response(responses.retrieve(stored.plan)))

    @app.delete("/v1/responses/<response_id>")
    async def delete_response(response_id: str) -> Response:
        if not state.engine.delete_stored(g.exchange.session, response_id):
            return response_not_found(response_id)
        return quart_response(executor.json_response(responses.deleted(response_id)))

    @app.get("/v1/models")
    async def list_models() -> Response:
        return quart_response(executor.json_response(models.model_list(state.models)))

    @app.get("/v1/models/<path:model_id>")
    async def get_model(model_id: str) -> Response:
        if model_id not in state.models:
            return fail(invalid(f"The model '{model_id}' does not exist or you do not have access to it.",
                                code="model_not_found", status=404))
        return quart_response(executor.json_response(state.models[model_id]))

    # --- health and admin ----------------------------------------------------------------------

    def ok(value: Any, status: int = 200) -> Response:
        return quart_response(executor.json_response(value, status))

    @app.get("/health")
    async def health() -> Response:
        return quart_response(common.health())  # (GET is answered in hotpath.py; this is HEAD)

    @app.post("/_mock/reset")
    async def reset() -> Response:
        session = request.args.get("session")
        state.engine.reset(session)
        state.journal.clear(session)
        return ok({"status": "ok", "session": session})

    @app.get("/_mock/requests")
    async def journal() -> Response:
        return ok({"object": "list", "data": state.journal.entries(request.args.get("session"))})

    @app.get("/_mock/scenarios")
    async def scenarios() -> Response:
        return ok(scenario_list(state.config))

    @app.put("/_mock/scenarios")
    async def replace_scenarios() -> Response:
        raw = await request.get_data(cache=False)  # (a body over `max_body` is a 413 before this)

        def load() -> tuple[Config | None, executor.HTTPReply]:
            try:
                config = load_bytes(raw, "<PUT /_mock/scenarios>")
            except ConfigError as error:
                return None, executor.json_response({"error": {
                    "message": str(error), "type": "invalid_request_error", "param": None,
                    "code": "invalid_scenarios", "problems": [str(p) for p in error.problems]}}, 400)
            return config, executor.json_response(scenario_list(config))

        # a worker thread loads (a big configuration takes seconds) while the streams go on
        config, reply = await trio.to_thread.run_sync(load)
        if config is not None:
            state.replace(config)
            for warning in config.warnings:
                state.log.message(str(warning))
        return quart_response(reply)

    return app


def scenario_list(config: Config) -> dict[str, Any]:
    return {"object": "list", "data": [
        {"id": r.id, "form": r.form, "file": r.file, "line": r.line} for r in config.rules
    ]}
