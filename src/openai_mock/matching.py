"""Which rule answers a conversation, and with which turn. Pure: no state, no I/O."""

from __future__ import annotations

import attrs

from .conversation import Conversation, Message, same_role
from .scenario.model import Reply, Rule, Turn


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


def match(rules: tuple[Rule, ...], conversation: Conversation) -> Match | NoMatch:
    """The most specific matching rule (mean matcher rank, then file order), or why none matched."""
    best: Match | None = None
    misses = []
    for rule in rules:
        result = match_rule(rule, conversation)
        if isinstance(result, Miss):
            misses.append(result)
        elif best is None or result.score > best.score:
            best = result
    return best if best is not None else NoMatch(tuple(misses))


def match_rule(rule: Rule, conversation: Conversation) -> Match | Miss:
    if rule.form == "flow":
        return _match_flow(rule, conversation)
    return _match_tail(rule, conversation)


def _compare(turn: Turn, message: Message, number: int) -> str | None:
    """None when `message` (the request's message `number`, 1-based) fits `turn`, else why not."""
    if not same_role(turn.role, message.role):
        return f"message {number} is {_a(message.role)} message where the rule expects {turn.role}"
    if turn.tool_call_id is not None and message.tool_call_id != turn.tool_call_id:
        return (f"message {number} answers tool call {message.tool_call_id!r}, "
                f"the rule expects {turn.tool_call_id!r}")
    if not turn.match.test(message.content):
        return f"message {number} {turn.match.describe_failure(message.content)}"
    return None


def _match_flow(rule: Rule, conversation: Conversation) -> Match | Miss:
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
        why = _compare(turn, message, i + 1)
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


def _match_tail(rule: Rule, conversation: Conversation) -> Match | Miss:
    patterns, count = rule.turns, len(conversation)
    if count < len(patterns):
        return Miss(rule, f"the request has {_n(count, 'message')}, the rule compares the last {len(patterns)}",
                    progress=0.0)
    offset = count - len(patterns)
    for j, turn in enumerate(patterns):
        why = _compare(turn, conversation[offset + j], offset + j + 1)
        if why is not None:
            return Miss(rule, why, progress=j / len(patterns))
    ranks = [turn.rank for turn in patterns]
    return Match(rule, rule.reply, score=sum(ranks) / len(ranks) if ranks else 0.0)


def _a(role: str) -> str:
    return f"{'an' if role[:1] in 'aeio' else 'a'} {role}"  # a user, an assistant


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
