"""The engine: the only stateful part. Turns (rule, request, session state) into a `Plan`.

State lives per session (the `X-Mock-Session` header): step counters per rule, request
counters for seeded ids, and stored Responses API conversations. It is kept in a store
(`store/`: in memory, or in Redis for several processes), which the engine asks only for what a
request needs: a rule without `steps`, a configuration without `seed` and a request that stores
nothing ask it nothing.
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import attrs

from . import failures, heavy, tokens
from .conversation import Conversation, Message, join_tool_calls
from .failures import Failure
from .matching import Match, NoMatch, RegexBudget, RegexTimeout, match
from .options import Options
from .plan import ALNUM, HEX, Plan, Timing, Usage, merge_headers, text_size, token
from .scenario.model import Behaviour, Config, ErrorSpec, GivenCompletion, Recorded, Reply, Rule
from .store import Store, StoredResponse

GENERATION = ("chat", "responses", "completions")  # the endpoints that hand-written rules answer
# the store's counters of a session: its requests, and the requests each rule with steps got
REQUESTS = "requests"
STEP = "step:"
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
    options: Options | None = None  # the endpoint's own options, passed through to its encoder


class Engine:
    """`store` keeps the state; `render(plan)` is the object `GET /v1/responses/{id}` returns for a
    stored response (the Responses encoder's, given by the HTTP layer)."""

    def __init__(self, config: Config, store: Store, render: Callable[[Plan], Mapping[str, Any]],
                 clock: Callable[[], float] = time.time):
        self.config = config
        self._sort_rules()
        self.store = store
        self.render = render
        self.clock = clock

    # state ---------------------------------------------------------------------------------

    def replace(self, config: Config) -> None:
        """Serve another configuration from the next request on (the state is the caller's to reset)."""
        self.config = config
        self._sort_rules()

    def _sort_rules(self) -> None:
        """Moderation rules answer /v1/moderations only; a recorded answer, requests of its
        endpoint that stream as it did; the others answer the generation endpoints."""
        self._moderation_rules = tuple(r for r in self.config.rules if r.moderation is not None)
        self._by_endpoint: dict[tuple[str, bool], tuple[Rule, ...]] = {}

    def _rules(self, endpoint: str, stream: bool) -> tuple[Rule, ...]:
        """The rules that may answer a request of `endpoint` (streamed or not)."""
        found = self._by_endpoint.get((endpoint, stream))
        if found is None:
            found = self._by_endpoint[(endpoint, stream)] = tuple(
                rule for rule in self.config.rules if rule.moderation is None and (
                    endpoint in GENERATION if rule.recorded is None
                    else rule.recorded.endpoint == endpoint and (rule.recorded.events is not None) == stream))
        return found

    async def stored(self, session: str, response_id: str) -> StoredResponse | None:
        return await self.store.response(session, response_id)

    async def delete_stored(self, session: str, response_id: str) -> bool:
        return await self.store.delete_response(session, response_id)

    async def request_seed(self, session: str) -> int:
        """The seed of this session's next request: reproducible when the config has a `seed`."""
        if self.config.seed is None:
            return random.getrandbits(63)
        number = await self.store.count(session, REQUESTS) + 1
        digest = hashlib.sha256(f"{self.config.seed}:{session}:{number}".encode()).digest()
        return int.from_bytes(digest[:8], "big") >> 1

    # planning ------------------------------------------------------------------------------

    async def plan(self, request: Request, seed: int) -> Plan:
        """What happens to `request`; `seed` is this request's (see `request_seed`)."""
        head = _Head(request_id=request_id(seed), seed=seed, stream=request.stream, created=int(self.clock()),
                     model=request.model, options=request.options)
        if request.endpoint in ("moderations", "embeddings"):
            found = match(self._rules(request.endpoint, request.stream), request.conversation)
            if isinstance(found, Match):  # a recorded answer
                return await self._plan_reply(found, request, request.conversation, head)
            if request.endpoint == "embeddings":  # (none: the vectors are made up)
                return Plan(request_id=head.request_id, seed=head.seed, stream=False, created=head.created,
                            model=head.model, options=head.options, unmatched=True)
            return await self._moderate(request, head)
        asked = await self._conversation(request)
        if asked.error is not None:  # (what it continues is not here: no rule here answers it)
            return head.error(asked.error, unmatched=True)
        found = match(self._rules(request.endpoint, request.stream), asked.conversation)
        if isinstance(found, NoMatch):
            return head.error(ErrorSpec(status=400, message=found.explain(), type="invalid_request_error",
                                        code="no_matching_rule"), unmatched=True)
        if isinstance(found, RegexTimeout):
            return head.error(_regex_timeout(found))
        plan = await self._plan_reply(found, request, asked.conversation, head, asked.known_tokens)
        if request.endpoint == "responses" and request.store and plan.error is None:
            await self._store(request, plan, asked)
        return plan

    async def _conversation(self, request: Request) -> _Asked:
        """What is matched, with the stored conversation it continues (Responses API)."""
        if request.endpoint != "responses":
            return _Asked(request.conversation)
        previous = None
        if request.previous_response_id is not None:
            previous = await self.stored(request.session, request.previous_response_id)
            if previous is None:
                return _Asked((), error=ErrorSpec(
                    status=400, type="invalid_request_error", param="previous_response_id",
                    code="previous_response_not_found",
                    message=f"Previous response with id '{request.previous_response_id}' not found."))
        own = request.conversation
        if any(message.reference is not None for message in own):
            own, error = await self._resolve(request.session, own)
            if error is not None:
                return _Asked((), error=error)
        before = previous.history if previous is not None else ()
        calls = previous.calls if previous is not None else frozenset()
        error = _unanswerable_output(own, calls)
        if error is not None:
            return _Asked((), error=error)
        history = before + own
        known = previous.tokens if previous is not None else 0  # (counted once, as the chain grew)
        if request.instructions is None:
            return _Asked(history, history, own, None, known, calls, previous)
        system = Message(role="system", content=request.instructions)
        return _Asked((system,) + history, history, own, system, known, calls, previous)

    async def _resolve(self, session: str, messages: Conversation) -> tuple[Conversation, ErrorSpec | None]:
        """The conversation with each `item_reference` replaced by the stored item it names."""
        resolved = []
        for message in messages:
            if message.reference is None:
                resolved.append(message)
                continue
            found = await self.store.item(session, message.reference)
            if found is None:
                return (), ErrorSpec(  # (the real API's words and status)
                    status=404, type="invalid_request_error", param="input",
                    message=f"Item with id '{message.reference}' not found. Items are not persisted when "
                            "`store` is set to false. Try again with `store` set to true, or remove this "
                            "item from your input.")
            resolved.append(found)
        return join_tool_calls(resolved), None

    async def _step(self, rule: Rule, session: str) -> tuple[Behaviour, int | None]:
        """The behaviour of this request to `rule` (its step, if it has steps), counting it."""
        if not rule.steps:
            return rule.behaviour, None
        count = await self.store.count(session, STEP + rule.id)
        step = count % len(rule.steps) if rule.cycle else min(count, len(rule.steps) - 1)
        return rule.steps[step].over(rule.behaviour), step

    async def _plan_reply(self, found: Match, request: Request, conversation: Conversation, head: _Head,
                          known: tuple[Conversation, int] | None = None) -> Plan:
        """The plan of a reply. `known`: the part of `conversation` whose tokens are not counted
        yet, and the tokens of the rest."""
        rule = found.rule
        assert found.reply is not None
        behaviour, step = await self._step(rule, request.session)
        conduct = _conduct(behaviour, request.stream, head.seed)
        counted = tokens.prompt_tokens(*known) if known is not None else tokens.prompt_tokens(conversation)
        completion = await _completion_tokens(found.reply)
        content = _content(rule.response, found.reply, request, counted, completion, head)
        if rule.recorded is not None and conduct.error is None:
            conduct = _as_recorded(conduct, rule.recorded, behaviour)
            content = content._replace(id=rule.recorded.response_id or content.id)
        return Plan(recorded=rule.recorded, request_id=head.request_id, seed=head.seed, stream=head.stream, options=head.options,
                    created=content.created, model=content.model, id=content.id, reply=found.reply,
                    usage=content.usage, given=content.given, rule_id=rule.id, step=step,
                    timing=conduct.timing, headers=conduct.headers, chunking=conduct.chunking, error=conduct.error,
                    failure=conduct.failure, fail_after=conduct.fail_after, stream_error=conduct.stream_error)

    async def _moderate(self, request: Request, head: _Head) -> Plan:
        """Each input is matched on its own; `response` holds, per input, the moderation of the
        rule that matched it (None: not flagged). The first matching rule sets the behaviour."""
        verdicts, first = [], None
        budget = RegexBudget()  # one budget for all the inputs
        for number, message in enumerate(request.conversation, 1):
            found = match(self._moderation_rules, (message,), budget)
            if isinstance(found, RegexTimeout):
                return head.error(_regex_timeout(attrs.evolve(found, number=number)))
            verdicts.append(found.rule.moderation if isinstance(found, Match) else None)
            if first is None and isinstance(found, Match):
                first = found.rule
        rule_id, step, conduct = None, None, _Conduct()
        if first is not None:
            behaviour, step = await self._step(first, request.session)
            rule_id, conduct = first.id, _conduct(behaviour, request.stream, head.seed)
        return Plan(request_id=head.request_id, seed=head.seed, stream=head.stream, created=head.created,
                    model=head.model, options=head.options, rule_id=rule_id, step=step,
                    id=ID_PREFIX["moderations"] + token(head.seed, "id", ID_LENGTH["moderations"], HEX),
                    verdicts=tuple(verdicts), timing=conduct.timing, headers=conduct.headers,
                    chunking=conduct.chunking, error=conduct.error, failure=conduct.failure,
                    fail_after=conduct.fail_after, stream_error=conduct.stream_error, unmatched=first is None)

    async def _store(self, request: Request, plan: Plan, asked: _Asked) -> None:
        assert plan.reply is not None
        reply = Message(role="assistant", content=plan.reply.content, tool_calls=plan.reply.tool_calls)
        items: dict[str, Message] = {}
        if plan.recorded is not None:  # (the items as recorded, by their recorded ids)
            for item in plan.recorded.items:
                items[item.id] = Message(role="assistant", content=item.text, tool_calls=(
                    (item.call,) if item.call is not None else ()))
        else:
            message_id, call_ids = plan.output_item_ids()
            if message_id is not None:
                items[message_id] = Message(role="assistant", content=plan.reply.content)
            for call, call_id in zip(plan.reply.tool_calls, call_ids):
                items[call_id] = Message(role="assistant", tool_calls=(call,))
        new = asked.own + (reply,)
        body = self.render(plan)
        stored = StoredResponse(
            body=body, history=asked.history + (reply,),
            tokens=asked.tokens + tokens.message_tokens(new),
            calls=asked.calls | {call.id for message in new for call in message.tool_calls},
            size=_size(new, body))
        await self.store.put_response(request.session, plan.id, stored, items)


def _regex_timeout(found: RegexTimeout) -> ErrorSpec:
    return ErrorSpec(status=400, message=found.explain(), type="invalid_request_error", code="regex_timeout")


def _unanswerable_output(own: Conversation, calls: frozenset[str]) -> ErrorSpec | None:
    """The real API refuses a function call output that answers no call before it (in the
    stored conversation, whose calls are `calls`, or earlier in `own`)."""
    seen = set(calls)
    for message in own:
        seen.update(call.id for call in message.tool_calls)
        if message.role == "tool" and message.tool_call_id not in seen:
            return ErrorSpec(status=400, type="invalid_request_error", param="input",
                             message=f"No tool call found for function call output with call_id "
                                     f"{message.tool_call_id}.")
    return None


def _size(messages: Conversation, body: Mapping[str, Any]) -> int:
    """About what keeping a response costs: its own messages' text and its answer's (twice: the
    reply and the object GET returns), and a little for each object."""
    text = sum(len(m.content or "") + sum(len(c.arguments) + len(c.name) for c in m.tool_calls) for m in messages)
    reply = messages[-1]
    return 1024 + text + len(reply.content or "") + sum(len(c.arguments) for c in reply.tool_calls)


class _Asked(NamedTuple):
    """A request's conversation as rules see it, and what it continues (Responses API)."""

    conversation: Conversation  # what rules match (instructions first)
    history: Conversation = ()  # the stored conversation so far and this request's turn, without instructions
    own: Conversation = ()  # this request's turn (stored as new)
    system: Message | None = None  # its instructions (never stored)
    tokens: int = 0  # of the stored conversation before this request
    calls: frozenset[str] = frozenset()  # the ids of the tool calls in it
    previous: StoredResponse | None = None
    error: ErrorSpec | None = None

    @property
    def known_tokens(self) -> tuple[Conversation, int] | None:
        """For `_plan_reply`: what is left to count, and what is counted already."""
        if self.previous is None:
            return None
        return ((self.system,) + self.own if self.system is not None else self.own), self.tokens


@functools.lru_cache(maxsize=256)  # the HTTP layer and the engine both ask, for each request
def request_id(seed: int) -> str:
    """The x-request-id of the request with this seed."""
    return "req_" + token(seed, "request", 32, HEX)


class _Head(NamedTuple):  # (a tuple: made for every request, and faster to make than attrs' frozen classes)
    """What every plan of a request starts from."""

    request_id: str
    seed: int
    stream: bool
    created: int
    model: str
    options: Options | None

    def error(self, spec: ErrorSpec, unmatched: bool = False) -> Plan:
        """The plan of an HTTP error sent instead of a reply."""
        return Plan(request_id=self.request_id, seed=self.seed, stream=self.stream, created=self.created,
                    model=self.model, options=self.options, error=spec, unmatched=unmatched)



class _Content(NamedTuple):
    """What a reply's plan says of its content, besides the reply: its id, the usage, and a
    configured `response:` served as given (with its id, created and model, when it has them)."""

    id: str
    created: int
    model: str
    usage: Usage
    given: GivenCompletion | None


# the completion tokens of long replies, counted once (a rule's reply is the same object at
# every request), for as long as the configuration holds the reply
_COUNTED: weakref.WeakKeyDictionary[Reply, int] = weakref.WeakKeyDictionary()


async def _completion_tokens(reply: Reply) -> int:
    """`tokens.completion_tokens` of the reply; a long one (megabytes) counted off the event loop, once."""
    if text_size(reply) < tokens.LONG:
        return tokens.completion_tokens(reply.content, reply.tool_calls)
    counted = _COUNTED.get(reply)
    if counted is None:
        counted = _COUNTED[reply] = await heavy.run(tokens.completion_tokens, reply.content, reply.tool_calls)
    return counted


def _content(response: GivenCompletion | None, reply: Reply, request: Request, prompt: int, completion: int,
             head: _Head) -> _Content:
    prefix, length = ID_PREFIX.get(request.endpoint, ""), ID_LENGTH.get(request.endpoint, 24)  # (embeddings: none)
    alphabet = HEX if request.endpoint == "responses" else ALNUM
    made_id = prefix + token(head.seed, "id", length, alphabet)
    usage = Usage(prompt, completion)
    if response is None:
        return _Content(made_id, head.created, head.model, usage, None)
    given = response.usage
    if given is not None:  # its counts, over the counted ones
        usage = Usage(usage.prompt_tokens if given.prompt_tokens is None else given.prompt_tokens,
                      usage.completion_tokens if given.completion_tokens is None else given.completion_tokens,
                      given=given)
    if request.endpoint != "chat":  # (other endpoints take its usage, and shape the rest themselves)
        return _Content(made_id, head.created, head.model, usage, None)
    return _Content(response.id or made_id, response.created or head.created, response.model or head.model,
                    usage, response)


class _Conduct(NamedTuple):
    """What a behaviour makes of a plan: its waits, its headers and chunking, and how it ends."""

    timing: Timing = Timing()
    headers: tuple[tuple[str, str], ...] = ()
    chunking: str | int = "word"
    error: ErrorSpec | None = None  # sent instead of the reply
    failure: Failure | None = None
    fail_after: int | None = None
    stream_error: ErrorSpec | None = None  # the payload of a failure that carries an error


def _as_recorded(conduct: _Conduct, recorded: Recorded, b: Behaviour) -> _Conduct:
    """A recorded answer's conduct: its recorded time to the head and waits between events, each
    unless the rule sets its own (`latency_ms`, `first_chunk_delay_ms`, `delay_ms`), and its
    recorded headers under the rule's."""
    events, done = recorded.chunks()
    gaps, tail = tuple(event.wait_ms for event in events), done.wait_ms if done is not None else 0.0
    if b.first_chunk_delay_ms is not None and gaps:
        gaps = (b.first_chunk_delay_ms, *gaps[1:])
    if b.delay_ms is not None:
        gaps, tail = gaps[:1] + (b.delay_ms,) * (len(gaps) - 1), b.delay_ms
    timing = attrs.evolve(conduct.timing, latency_ms=recorded.latency_ms if b.latency_ms is None else b.latency_ms,
                          gaps_ms=gaps, tail_ms=tail)
    return conduct._replace(timing=timing, headers=tuple(merge_headers(recorded.headers, conduct.headers)))


def _conduct(b: Behaviour, stream: bool, seed: int) -> _Conduct:
    timing = Timing(latency_ms=b.latency_ms or 0.0, first_chunk_delay_ms=b.first_chunk_delay_ms or 0.0,
                    delay_ms=b.delay_ms or 0.0, jitter_ms=b.jitter_ms or 0.0, hang_ms=b.hang_ms, seed=seed)
    headers, chunking = b.headers or (), b.chunking or "word"
    failure = failures.KINDS[b.failure] if b.failure is not None else (
        failures.DEFAULT if b.fail_after_chunks is not None else None)
    if failure is not None and failure.carries_error:
        spec = b.error or ErrorSpec(status=500)
        if not stream:  # no stream to carry the error: it arrives as an HTTP error
            return _Conduct(timing, headers, chunking, error=spec)
        return _Conduct(timing, headers, chunking, failure=failure, fail_after=b.fail_after_chunks,
                        stream_error=spec)
    if b.error is not None:
        return _Conduct(timing, headers, chunking, error=b.error)
    if failure is not None:
        return _Conduct(timing, headers, chunking, failure=failure, fail_after=b.fail_after_chunks if stream else None)
    return _Conduct(timing, headers, chunking)
