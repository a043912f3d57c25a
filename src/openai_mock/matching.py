"""Which rule answers a conversation, and with which turn. Pure: no state, no I/O (only the
clock, to time regex searches).

Regex searches run under a time budget (`RegexBudget`): a pattern that backtracks
catastrophically on some message (`^(a|aa)+$`) would otherwise hold the event loop, and every
stream with it, for seconds. The budget is per request, across all its rules and messages.
"""

from __future__ import annotations

import time

import attrs

from .conversation import Conversation, Message, same_role
from .scenario.model import Reply, Rule, Turn

# Seconds of regex searching one request may use, all its rules and messages together. Other
# requests wait at most this long (plus the regex module's few-millisecond granularity) for a
# request whose regex runs away; a sane regex on a message of a megabyte takes a few ms.
REGEX_BUDGET = 0.05


@attrs.frozen
class Match:
    rule: Rule
    reply: Reply | None  # None for a moderation rule, which answers nothing
    score: float


@attrs.frozen
class Miss:
    rule: Rule
    reason: str
    progress: float  # how far the request got into the rule, 0..1: the closest misses first


@attrs.frozen
class NoMatch:
    misses: tuple[Miss, ...]

    def explain(self, limit: int = 3) -> str:
        if not self.misses:
            return "No rule matched this request: the configuration has no rules."
        nearest = sorted(self.misses, key=lambda m: (-m.progress, m.rule.index))[:limit]
        reasons = "; ".join(f"rule '{m.rule.id}' ({m.rule.file}:{m.rule.line}): {m.reason}" for m in nearest)
        more = len(self.misses) - len(nearest)
        tail = f" ({more} more rule{'s' if more != 1 else ''} not shown)" if more > 0 else ""
        return f"No rule matched this request. Nearest: {reasons}{tail}."


@attrs.frozen
class RegexTimeout:
    """The request's regex searches ran past their budget in this rule's `turn`, on the
    request's message `number`: the request is answered with an error, not a guess."""

    rule: Rule
    turn: Turn
    number: int
    budget: float

    def explain(self) -> str:
        pattern = self.turn.match.content
        return (f"Matching this request took too long: rule '{self.rule.id}' ({self.rule.file}:{self.rule.line}), "
                f"regex {pattern!r} on message {self.number}, ran past the {self.budget * 1000:g} ms that "
                "regex matching may take per request. The pattern backtracks catastrophically on this "
                "text: rewrite it so that each character can be matched in one way only (no nested "
                "quantifiers like (a+)+; `openai-mock check` points them out).")


class RegexBudget:
    """The seconds of regex searching left to one request. Only time spent in regex searches
    counts; `remaining()` is what the next search may take."""

    __slots__ = ("seconds", "spent")

    def __init__(self, seconds: float | None = REGEX_BUDGET):
        self.seconds = seconds
        self.spent = 0.0

    def remaining(self) -> float | None:
        return None if self.seconds is None else self.seconds - self.spent


class _OutOfTime(Exception):
    def __init__(self, turn: Turn, number: int):
        self.turn, self.number = turn, number


def match(rules: tuple[Rule, ...], conversation: Conversation,
          budget: RegexBudget | None = None) -> Match | NoMatch | RegexTimeout:
    """The most specific matching rule (mean matcher rank, then file order), or why none matched,
    or the rule whose regex used up the request's `budget` (a fresh `REGEX_BUDGET` by default;
    pass one budget to several calls to bound them together)."""
    budget = budget if budget is not None else RegexBudget()
    best: Match | None = None
    misses = []
    for rule in rules:
        try:
            result = match_rule(rule, conversation, budget)
        except _OutOfTime as slow:
            return RegexTimeout(rule, slow.turn, slow.number, budget.seconds or 0.0)
        if isinstance(result, Miss):
            misses.append(result)
        elif best is None or result.score > best.score:
            best = result
    return best if best is not None else NoMatch(tuple(misses))


def match_rule(rule: Rule, conversation: Conversation, budget: RegexBudget | None = None) -> Match | Miss:
    """How `rule` fares; raises `_OutOfTime` when a regex search runs past the `budget`."""
    budget = budget if budget is not None else RegexBudget()
    if rule.form == "flow":
        return _match_flow(rule, conversation, budget)
    return _match_tail(rule, conversation, budget)


def _compare(turn: Turn, message: Message, number: int, budget: RegexBudget) -> str | None:
    """None when `message` (the request's message `number`, 1-based) fits `turn`, else why not."""
    if not same_role(turn.role, message.role):
        return f"message {number} is {_a(message.role)} message where the rule expects {turn.role}"
    if turn.tool_call_id is not None and message.tool_call_id != turn.tool_call_id:
        return (f"message {number} answers tool call {message.tool_call_id!r}, "
                f"the rule expects {turn.tool_call_id!r}")
    if turn.match.matcher == "regex":
        started = time.perf_counter()
        try:
            passed = turn.match.test(message.content, timeout=budget.remaining())
        except TimeoutError:
            raise _OutOfTime(turn, number) from None
        finally:
            budget.spent += time.perf_counter() - started
    else:
        passed = turn.match.test(message.content)
    if not passed:
        return f"message {number} {turn.match.describe_failure(message.content)}"
    return None


def _match_flow(rule: Rule, conversation: Conversation, budget: RegexBudget) -> Match | Miss:
    flow, count = rule.turns, len(conversation)
    ranks = []
    for i, message in enumerate(conversation):
        if i >= len(flow):
            return Miss(rule, f"the request has {count} messages, more than the flow's {_n(len(flow), 'turn')}",
                        progress=i / count)
        turn = flow[i]
        if turn.role == "assistant":  # the client's copy of an earlier reply: not compared
            if message.role != "assistant":
                return Miss(rule, f"message {i + 1} is {_a(message.role)} message where the flow has "
                                  "an assistant turn", progress=i / count)
            continue
        why = _compare(turn, message, i + 1, budget)
        if why is not None:
            return Miss(rule, why, progress=i / count)
        ranks.append(turn.rank)
    if rule.behaviour.flow_reply == "last":  # openai-mock-api 0.4: any start of the flow gets its last reply
        reply = next(t.reply for t in reversed(flow) if t.role == "assistant")
    elif count >= len(flow) or flow[count].role != "assistant":
        nxt = "nothing" if count >= len(flow) else f"a {flow[count].role} turn"
        return Miss(rule, f"the flow has {nxt} after the request's {count} messages, no reply",
                    progress=0.99)
    else:
        reply = flow[count].reply
    assert reply is not None
    return Match(rule, reply, score=sum(ranks) / len(ranks) if ranks else 0.0)


def _match_tail(rule: Rule, conversation: Conversation, budget: RegexBudget) -> Match | Miss:
    patterns, count = rule.turns, len(conversation)
    if count < len(patterns):
        return Miss(rule, f"the request has {_n(count, 'message')}, the rule compares the last {len(patterns)}",
                    progress=0.0)
    offset = count - len(patterns)
    for j, turn in enumerate(patterns):
        why = _compare(turn, conversation[offset + j], offset + j + 1, budget)
        if why is not None:
            return Miss(rule, why, progress=j / len(patterns))
    ranks = [turn.rank for turn in patterns]
    return Match(rule, rule.reply, score=sum(ranks) / len(ranks) if ranks else 0.0)


def _a(role: str) -> str:
    return f"{'an' if role[:1] in 'aeio' else 'a'} {role}"  # a user, an assistant


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
