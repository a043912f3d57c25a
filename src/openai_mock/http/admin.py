"""The admin API (`/_mock/...`) as a quart-trio application, with who may reach it, CORS and
OpenAI-shaped errors from `common.py`, as the router (`router.py`) answers everything else.

This module is imported after the server has started (`deferred.DeferredApp`).
"""

from __future__ import annotations

from typing import Any

import trio
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import (
    HTTPException,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
    RequestTimeout,
)

from ..scenario import Source, load_sources, read_source
from ..scenario.load import ConfigError
from ..scenario.model import Config, ErrorSpec
from ..store import JOURNAL_LIMIT, StoreUnavailable
from ..wire.errors import invalid
from . import common, executor
from .state import MockState

PUT_NAME = "<PUT /_mock/scenarios>"  # how problems and the rules' files name a PUT's body


def quart_response(reply: executor.HTTPReply) -> Response:
    assert reply.stream is None  # (streams are the router's)
    response = Response(reply.body, status=reply.status)
    for name, value in reply.headers:
        response.headers.add(name, value)
    return response


def create_app(state: MockState) -> QuartTrio:
    app = QuartTrio("openai_mock")
    app.config.update(MAX_CONTENT_LENGTH=state.max_body, RESPONSE_TIMEOUT=None, BODY_TIMEOUT=state.settings.body_timeout,
                      PROVIDE_AUTOMATIC_OPTIONS=False)
    app.extensions["openai_mock"] = state

    def exchange() -> common.Exchange:
        """This request's exchange (made up when it was refused before `begin` ran)."""
        if "exchange" not in g:
            g.exchange = common.Exchange(method=request.method, path=request.path, session="default")
        made: common.Exchange = g.exchange
        return made

    def fail(spec: ErrorSpec, headers: Any = ()) -> Response:
        return quart_response(common.error_reply(exchange(), spec, headers))

    # --- before and after every request -----------------------------------------------------

    @app.before_request
    async def begin() -> Response | None:
        server = request.scope.get("server")
        g.exchange, refusal = await common.open_exchange(state, request.method, request.path,
                                                         request.headers.get, server[0] if server else None)
        # every body is read, even one refused or not needed: a body left unread would close the
        # connection under a client that goes on to reuse it (PUT /_mock/scenarios reads it again)
        await request.get_data()
        if refusal is not None:
            return fail(refusal)
        if request.method == "OPTIONS":
            return quart_response(common.preflight(request.headers.get("access-control-request-headers")))
        return None

    @app.after_request
    async def finish(response: Response) -> Response:
        common.close(state, exchange(), response.status_code)
        for name, value in common.response_headers(state.config, exchange(), request.headers.get("origin")):
            response.headers[name] = value
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        if isinstance(error, NotFound):
            return fail(common.not_found(request.method, request.path))
        if isinstance(error, MethodNotAllowed):
            spec, allow = common.wrong_method(request.method, request.path, list(error.valid_methods or ()))
            return fail(spec, allow)
        if isinstance(error, RequestEntityTooLarge):
            return fail(common.too_large(state.max_body))
        if isinstance(error, RequestTimeout):
            return fail(common.too_slow(state.settings.body_timeout))
        return fail(ErrorSpec(status=error.code or 400, message=error.description or error.name))

    @app.errorhandler(StoreUnavailable)
    async def store_down(error: StoreUnavailable) -> Response:
        return fail(common.unavailable(error))

    @app.errorhandler(Exception)
    async def crash(error: Exception) -> Response:  # a bug in the mock: still an OpenAI-shaped error
        state.log.errors.exception("internal error", exc_info=error)
        return fail(common.internal(error))

    # --- the admin API ---------------------------------------------------------------------------

    def ok(value: Any, status: int = 200) -> Response:
        return quart_response(executor.json_response(value, status))

    @app.post("/_mock/reset")
    async def reset() -> Response:
        session = request.args.get("session")
        await state.reset(session)
        return ok({"status": "ok", "session": session})

    @app.get("/_mock/requests")
    async def journal() -> Response:
        """The journal, oldest first; `?limit=N&after=ID` pages through it."""
        entries = await state.journal.entries(request.args.get("session"))
        after, limit = request.args.get("after"), request.args.get("limit")
        if after is not None:
            at = next((i for i in range(len(entries) - 1, -1, -1) if entries[i]["id"] == after), None)
            if at is None:
                return fail(invalid(f"No journal entry with id '{after}'.", param="after"))
            entries = entries[at + 1:]
        more = False
        if limit is not None:
            if not limit.isdigit() or not 1 <= int(limit) <= JOURNAL_LIMIT:
                return fail(invalid(f"Invalid 'limit': give a whole number from 1 to {JOURNAL_LIMIT}.", param="limit"))
            more, entries = len(entries) > int(limit), entries[:int(limit)]
        return ok({"object": "list", "data": entries, "has_more": more,
                   "first_id": entries[0]["id"] if entries else None, "last_id": entries[-1]["id"] if entries else None})

    @app.get("/_mock/scenarios")
    async def scenarios() -> Response:
        return ok(scenario_list(state.config))

    @app.put("/_mock/scenarios")
    async def replace_scenarios() -> Response:
        raw = await request.get_data(cache=False)  # (read by `begin`: this takes it from the cache)
        assert isinstance(raw, bytes)

        def load() -> tuple[Config | None, Source | None, executor.HTTPReply]:
            try:
                source = read_source(raw, PUT_NAME)
                config = load_sources([source])
            except ConfigError as error:
                return None, None, executor.json_response({"error": {
                    "message": str(error), "type": "invalid_request_error", "param": None,
                    "code": "invalid_scenarios", "problems": [str(p) for p in error.problems]}}, 400)
            return config, source, executor.json_response(scenario_list(config))

        # a worker thread loads (a big configuration takes seconds) while the streams go on
        config, source, reply = await trio.to_thread.run_sync(load)
        if config is not None and source is not None:
            await state.publish(config, [source])  # (every worker sharing the store serves it)
            for warning in config.warnings:
                state.log.message(str(warning))
        return quart_response(reply)

    return app


def scenario_list(config: Config) -> dict[str, Any]:
    return {"object": "list", "data": [
        {"id": r.id, "form": r.form, "file": r.file, "line": r.line} for r in config.rules
    ]}
