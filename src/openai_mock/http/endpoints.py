"""Every path the mock serves outside the admin API, as one table: (method, path) to an
`Endpoint`. An endpoint is either answered by rules (a reader of its JSON body, which makes
the `Request` that rules match, and the encoder of its wire shapes: the executor carries the
plan out, with every timing key and every failure), or answered directly from the state
(models, stored responses, embeddings, health). `router.py` serves the table.

A new endpoint is one row here, plus its reader in `requests/` and its encoder in `wire/`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

from ..engine import Request
from ..requests import chat, completions, embeddings, moderations, responses
from ..wire import chat as chat_wire
from ..wire import completions as completions_wire
from ..wire import embeddings as embeddings_wire
from ..wire import models as models_wire
from ..wire import moderations as moderations_wire
from ..wire import responses as responses_wire
from ..wire.errors import invalid
from . import executor
from .common import Exchange, error_reply, health

if TYPE_CHECKING:
    from .state import MockState

Reader = Callable[[dict[str, Any], str], Request]  # (JSON body, session) -> what rules answer
# (state, the request so far, its JSON body or None, the path's parameter) -> the reply
Answer = Callable[["MockState", Exchange, Any, str], Awaitable[executor.HTTPReply]]


@attrs.frozen
class Endpoint:
    """What one method on one path does: `read` and `encoder` when rules answer it, else `answer`.
    `body`: whether it takes a JSON body (always, when rules answer it)."""

    name: str
    read: Reader | None = None
    encoder: executor.Encoder | None = None
    answer: Answer | None = None
    body: bool = False

    def __attrs_post_init__(self) -> None:
        assert (self.read is not None and self.encoder is not None) != (self.answer is not None), self.name


# --- answered directly ------------------------------------------------------------------------


async def _models(state: MockState, exchange: Exchange, body: Any, param: str) -> executor.HTTPReply:
    return executor.json_response(models_wire.model_list(state.models))


async def _model(state: MockState, exchange: Exchange, body: Any, model_id: str) -> executor.HTTPReply:
    if model_id not in state.models:
        return error_reply(exchange, invalid(f"The model '{model_id}' does not exist or you do not have access to it.",
                                             code="model_not_found", status=404))
    return executor.json_response(state.models[model_id])


def _no_response(exchange: Exchange, response_id: str) -> executor.HTTPReply:
    return error_reply(exchange, invalid(f"No response found with id '{response_id}'.", param="response_id",
                                         code="response_not_found", status=404))


async def _get_response(state: MockState, exchange: Exchange, body: Any, response_id: str) -> executor.HTTPReply:
    stored = await state.engine.stored(exchange.session, response_id)
    if stored is None:
        return _no_response(exchange, response_id)
    return executor.json_response(stored.body)


async def _delete_response(state: MockState, exchange: Exchange, body: Any, response_id: str) -> executor.HTTPReply:
    if not await state.engine.delete_stored(exchange.session, response_id):
        return _no_response(exchange, response_id)
    return executor.json_response(responses_wire.deleted(response_id))


async def _health(state: MockState, exchange: Exchange, body: Any, param: str) -> executor.HTTPReply:
    return health()


# --- the table ----------------------------------------------------------------------------------

CHAT = Endpoint("chat", read=chat.parse, body=True,
                encoder=executor.Encoder(body=chat_wire.completion, stream=chat_wire.stream))
RESPONSES = Endpoint("responses", read=responses.parse, body=True,
                     encoder=executor.Encoder(body=responses_wire.body, stream=responses_wire.stream))
COMPLETIONS = Endpoint("completions", read=completions.parse, body=True,
                       encoder=executor.Encoder(body=completions_wire.completion, stream=completions_wire.stream))
MODERATIONS = Endpoint("moderations", read=moderations.parse, body=True,
                       encoder=executor.Encoder(body=moderations_wire.body))
EMBEDDINGS = Endpoint("embeddings", read=embeddings.parse, body=True,  # (recorded answers, else made-up vectors)
                      encoder=executor.Encoder(body=embeddings_wire.answer, raw=embeddings_wire.encoded,
                                               large=embeddings_wire.large))
HEALTH = Endpoint("health", answer=_health)

# path -> method -> endpoint
PATHS: dict[str, dict[str, Endpoint]] = {
    "/v1/chat/completions": {"POST": CHAT},
    "/v1/responses": {"POST": RESPONSES},
    "/v1/completions": {"POST": COMPLETIONS},
    "/v1/moderations": {"POST": MODERATIONS},
    "/v1/embeddings": {"POST": EMBEDDINGS},
    "/v1/models": {"GET": Endpoint("models", answer=_models)},
    "/health": {"GET": HEALTH, "HEAD": HEALTH},
}
# path prefix -> (method -> endpoint, whether the rest of the path may hold a "/"): the rest is
# the endpoint's parameter
PREFIXES: dict[str, tuple[dict[str, Endpoint], bool]] = {
    "/v1/models/": ({"GET": Endpoint("model", answer=_model)}, True),  # (fine-tuned ids may hold "/")
    "/v1/responses/": ({"GET": Endpoint("retrieve response", answer=_get_response),
                        "DELETE": Endpoint("delete response", answer=_delete_response)}, False),
}


def route(path: str) -> tuple[dict[str, Endpoint], str] | None:
    """The endpoints of `path` by method, and the path's parameter ("" for none); None when
    nothing is served there."""
    methods = PATHS.get(path)
    if methods is not None:
        return methods, ""
    for prefix, (methods, slashes) in PREFIXES.items():
        if path.startswith(prefix):
            rest = path[len(prefix):]
            if rest and (slashes or "/" not in rest):
                return methods, rest
    return None
