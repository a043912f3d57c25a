"""The engine: the only stateful part. Turns (rule, request, session state) into a `Plan`.

State lives per session (the `X-Mock-Session` header): step counters per rule, request
counters for seeded ids, and stored Responses API conversations. `plan()` never awaits,
so under trio every request sees and updates the state atomically.
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import attrs

from . import tokens
from .conversation import Conversation, Message, join_tool_calls
from .matching import Match, NoMatch, RegexBudget, RegexTimeout, match
from .plan import ALNUM, HEX, Plan, Timing, Usage, token
from .scenario.model import Behaviour, Config, ErrorSpec, GivenCompletion, Reply, Rule

ID_PREFIX = {"chat": "chatcmpl-", "responses": "resp_", "completions": "cmpl-", "moderations": "modr-"}
ID_LENGTH = {"chat": 29, "responses": 48, "completions": 29, "moderations": 32}


@attrs.frozen
class Request:
    """A request that rules answer, whatever endpoint it came from."""

    endpoint: str  # chat | responses | completions | moderations (each message is one input)
    model: str
    conversation: Conversation  # this request's own messages
    stream: bool = False
    session: str = "default"
    previous_response_id: str | None = None  # responses: continue a stored conversation
    instructions: str | None = None  # responses: a system message, never carried over
    store: bool = False  # responses: keep this one for previous_response_id
    options: Any = None  # the endpoint's own options, passed through to its encoder


@attrs.frozen
class Stored:
    """A stored Responses API response: its plan and the conversation it ends."""

    plan: Plan
    history: Conversation  # every turn so far, this reply included, without instructions
    instructions: str | None
    previous_response_id: str | None = None


class Engine:
    def __init__(self, config: Config, clock: Callable[[], float] = time.time):
        self.config = config
        self._sort_rules()
        self.clock = clock
        self._steps: dict[tuple[str, str], int] = defaultdict(int)
        self._requests: dict[str, int] = defaultdict(int)
        self._stored: dict[str, dict[str, Stored]] = defaultdict(dict)
        # per session: output item id -> (the stored response it belongs to, the item as a message)
        self._items: dict[str, dict[str, tuple[str, Message]]] = defaultdict(dict)

    # state ---------------------------------------------------------------------------------

    def replace(self, config: Config) -> None:
        """Serve another configuration from now on; all state starts afresh."""
        self.config = config
        self._sort_rules()
        self.reset()

    def _sort_rules(self) -> None:
        """Moderation rules answer /v1/moderations only; the others answer the generation endpoints."""
        self._generation_rules = tuple(r for r in self.config.rules if r.moderation is None)
        self._moderation_rules = tuple(r for r in self.config.rules if r.moderation is not None)

    def reset(self, session: str | None = None) -> None:
        if session is None:
            self._steps.clear()
            self._requests.clear()
            self._stored.clear()
            self._items.clear()
            return
        for key in [k for k in self._steps if k[0] == session]:
            del self._steps[key]
        self._requests.pop(session, None)
        self._stored.pop(session, None)
        self._items.pop(session, None)

    def stored(self, session: str, response_id: str) -> Stored | None:
        return self._stored.get(session, {}).get(response_id)

    def delete_stored(self, session: str, response_id: str) -> bool:
        return self._stored.get(session, {}).pop(response_id, None) is not None

    def request_seed(self, session: str) -> int:
        """The seed of this session's next request: reproducible when the config has a `seed`."""
        if self.config.seed is None:
            return random.getrandbits(63)
        self._requests[session] += 1
        digest = hashlib.sha256(f"{self.config.seed}:{session}:{self._requests[session]}".encode()).digest()
        return int.from_bytes(digest[:8], "big") >> 1

    # planning ------------------------------------------------------------------------------

    def plan(self, request: Request, seed: int) -> Plan:
        """What happens to `request`; `seed` is this request's (see `request_seed`)."""
        base = dict(request_id=request_id(seed), seed=seed, stream=request.stream,
                    created=int(self.clock()), model=request.model, options=request.options)
        if request.endpoint == "moderations":
            return self._moderate(request, base)
        conversation, history, error = self._conversation(request)
        if error is not None:
            return Plan(error=error, **base)
        found = match(self._generation_rules, conversation)
        if isinstance(found, NoMatch):
            return Plan(error=ErrorSpec(status=400, message=found.explain(), type="invalid_request_error",
                                        code="no_matching_rule"), **base)
        if isinstance(found, RegexTimeout):
            return Plan(error=_regex_timeout(found), **base)
        plan = self._plan_reply(found, request, conversation, base)
        if request.endpoint == "responses" and request.store and plan.error is None:
            self._store(request, plan, history)
        return plan

    def _conversation(self, request: Request) -> tuple[Conversation, Conversation, ErrorSpec | None]:
        """(what is matched, the stored history this request continues, an error)."""
        if request.endpoint != "responses":
            return request.conversation, (), None
        history: Conversation = ()
        if request.previous_response_id is not None:
            previous = self.stored(request.session, request.previous_response_id)
            if previous is None:
                return (), (), ErrorSpec(
                    status=400, type="invalid_request_error", param="previous_response_id",
                    code="previous_response_not_found",
                    message=f"Previous response with id '{request.previous_response_id}' not found.")
            history = previous.history
        own = request.conversation
        if any(message.reference is not None for message in own):
            own, error = self._resolve(request.session, own)
            if error is not None:
                return (), (), error
        history += own
        error = _unanswerable_output(history, len(history) - len(own))
        if error is not None:
            return (), (), error
        if request.instructions is None:
            return history, history, None
        return (Message(role="system", content=request.instructions),) + history, history, None

    def _resolve(self, session: str, messages: Conversation) -> tuple[Conversation, ErrorSpec | None]:
        """The conversation with each `item_reference` replaced by the stored item it names."""
        resolved = []
        items = self._items.get(session, {})
        for message in messages:
            if message.reference is None:
                resolved.append(message)
                continue
            found = items.get(message.reference)
            if found is None or self.stored(session, found[0]) is None:
                return (), ErrorSpec(  # (the real API's words and status)
                    status=404, type="invalid_request_error", param="input",
                    message=f"Item with id '{message.reference}' not found. Items are not persisted when "
                            "`store` is set to false. Try again with `store` set to true, or remove this "
                            "item from your input.")
            resolved.append(found[1])
        return join_tool_calls(resolved), None

    def _step(self, rule: Rule, session: str) -> tuple[Behaviour, int | None]:
        """The behaviour of this request to `rule` (its step, if it has steps), counting it."""
        key = (session, rule.id)
        count = self._steps[key]
        self._steps[key] = count + 1
        if not rule.steps:
            return rule.behaviour, None
        step = count % len(rule.steps) if rule.cycle else min(count, len(rule.steps) - 1)
        return rule.steps[step].over(rule.behaviour), step

    def _plan_reply(self, found: Match, request: Request, conversation: Conversation, base: dict) -> Plan:
        rule = found.rule
        assert found.reply is not None
        behaviour, step = self._step(rule, request.session)
        fields = self._content(rule.response, found.reply, request, conversation, base)
        return Plan(rule_id=rule.id, step=step, **fields, **_behaviour_fields(behaviour, request.stream, base["seed"]))

    def _moderate(self, request: Request, base: dict) -> Plan:
        """Each input is matched on its own; `response` holds, per input, the moderation of the
        rule that matched it (None: not flagged). The first matching rule sets the behaviour."""
        verdicts, first = [], None
        budget = RegexBudget()  # one budget for all the inputs
        for number, message in enumerate(request.conversation, 1):
            found = match(self._moderation_rules, (message,), budget)
            if isinstance(found, RegexTimeout):
                return Plan(error=_regex_timeout(attrs.evolve(found, number=number)), **base)
            verdicts.append(found.rule.moderation if isinstance(found, Match) else None)
            if first is None and isinstance(found, Match):
                first = found.rule
        plan = Plan(id=ID_PREFIX["moderations"] + token(base["seed"], "id", ID_LENGTH["moderations"], HEX),
                    response=tuple(verdicts), **base)
        if first is None:
            return plan
        behaviour, step = self._step(first, request.session)
        return attrs.evolve(plan, rule_id=first.id, step=step,
                            **_behaviour_fields(behaviour, request.stream, base["seed"]))

    def _content(self, response: GivenCompletion | None, reply: Reply, request: Request, conversation: Conversation,
                 base: dict[str, Any]) -> dict[str, Any]:
        """The Plan's fields for the reply's content: its id, the usage, a `response:` given as is."""
        prefix, length = ID_PREFIX[request.endpoint], ID_LENGTH[request.endpoint]
        alphabet = HEX if request.endpoint == "responses" else ALNUM
        fields = dict(base, reply=reply, id=prefix + token(base["seed"], "id", length, alphabet))
        usage = Usage(tokens.prompt_tokens(conversation), tokens.completion_tokens(reply.content, reply.tool_calls))
        if response is not None:
            given = response.usage
            if given is not None:  # its counts, over the counted ones
                usage = Usage(usage.prompt_tokens if given.prompt_tokens is None else given.prompt_tokens,
                              usage.completion_tokens if given.completion_tokens is None else given.completion_tokens,
                              given=given)
            if request.endpoint == "chat":
                fields["response"] = response
                fields["id"] = response.id or fields["id"]
                fields["created"] = response.created or fields["created"]
                fields["model"] = response.model or fields["model"]
        fields["usage"] = usage
        return fields

    def _store(self, request: Request, plan: Plan, history: Conversation) -> None:
        assert plan.reply is not None
        reply = Message(role="assistant", content=plan.reply.content, tool_calls=plan.reply.tool_calls)
        message_id, call_ids = plan.output_item_ids()
        items = self._items[request.session]
        if message_id is not None:
            items[message_id] = (plan.id, Message(role="assistant", content=plan.reply.content))
        for call, call_id in zip(plan.reply.tool_calls, call_ids):
            items[call_id] = (plan.id, Message(role="assistant", tool_calls=(call,)))
        self._stored[request.session][plan.id] = Stored(
            plan=plan, history=history + (reply,), instructions=request.instructions,
            previous_response_id=request.previous_response_id,
        )


def _regex_timeout(found: RegexTimeout) -> ErrorSpec:
    return ErrorSpec(status=400, message=found.explain(), type="invalid_request_error", code="regex_timeout")


def _unanswerable_output(history: Conversation, start: int) -> ErrorSpec | None:
    """The real API refuses a function call output (from `start` on) that answers no call before it."""
    calls: set[str] = set()
    for index, message in enumerate(history):
        calls.update(call.id for call in message.tool_calls)
        if index >= start and message.role == "tool" and message.tool_call_id not in calls:
            return ErrorSpec(status=400, type="invalid_request_error", param="input",
                             message=f"No tool call found for function call output with call_id "
                                     f"{message.tool_call_id}.")
    return None


@functools.lru_cache(maxsize=256)  # the HTTP layer and the engine both ask, for each request
def request_id(seed: int) -> str:
    """The x-request-id of the request with this seed."""
    return "req_" + token(seed, "request", 32, HEX)


def _behaviour_fields(b: Behaviour, stream: bool, seed: int) -> dict[str, Any]:
    timing = Timing(latency_ms=b.latency_ms or 0.0, first_chunk_delay_ms=b.first_chunk_delay_ms or 0.0,
                    delay_ms=b.delay_ms or 0.0, jitter_ms=b.jitter_ms or 0.0, hang_ms=b.hang_ms, seed=seed)
    fields: dict[str, Any] = dict(timing=timing, headers=b.headers or (), chunking=b.chunking or "word")
    failure = b.failure
    if failure is None and b.fail_after_chunks is not None:
        failure = "disconnect"  # the documented default
    if failure == "error_event":
        if stream:
            fields.update(failure=failure, fail_after=b.fail_after_chunks,
                          stream_error=b.error or ErrorSpec(status=500))
        else:  # no stream to carry the event: the error arrives as an HTTP error
            fields["error"] = b.error or ErrorSpec(status=500)
    elif b.error is not None:
        fields["error"] = b.error
    elif failure is not None:
        fields.update(failure=failure, fail_after=b.fail_after_chunks if stream else None)
    return fields
