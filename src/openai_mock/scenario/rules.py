"""The rules of a rule: its id, its form (a conversation flow, the matcher form with `response`
or `reply`, a moderation rule), its behaviour and steps. A rule is made only when every part of
it passed."""

from __future__ import annotations

from typing import Any

import attrs

from . import keys
from .behaviour import behaviour, steps
from .kernel import FAILED, Checker, Failed, Known, Parts
from .model import (
    MODERATION_CATEGORIES,
    Behaviour,
    GivenCompletion,
    Moderation,
    Recorded,
    Reply,
    Rule,
    Turn,
)
from .recorded import recorded
from .replies import reply, response
from .turns import flow, matcher
from .yamlsrc import Pos, YList, YMap


@attrs.frozen(eq=False)
class Answer:
    """What a rule's form says: what it matches and what it answers."""

    form: str  # flow | matcher
    turns: tuple[Turn, ...]
    reply: Reply | None = None
    response: GivenCompletion | None = None
    moderation: Moderation | None = None
    recorded: Recorded | None = None


def rule(checker: Checker, raw: YMap, pos: Pos, index: int, defaults: Behaviour, ids: dict[str, Pos]) -> Rule | Failed[Any]:
    """The rule written at `pos`, the `index`-th of the configuration; `ids` are the rules' ids
    so far (this one is added)."""
    parts = Parts()
    known = keys.known(checker, raw, keys.RULE, "in a rule")
    parts.fail(known.failure)
    rule_id = _rule_id(checker, known, pos, ids, parts)
    parts(keys.DESCRIPTION.read(checker, raw))
    own = parts(behaviour(checker, raw))
    assert own is not None  # (a failed behaviour holds the keys that passed)
    rule_steps = _steps(checker, raw, parts)
    cycle = keys.CYCLE.read_or(checker, raw, False)
    if isinstance(cycle, Failed):
        parts.fail(cycle)
    elif "cycle" in raw and "steps" not in raw:
        parts.fail(checker.missing(known, "steps", raw.key_at("cycle"), "`cycle` applies to `steps`, and this rule has none"))
    answer = _answer(checker, known, pos, rule_id, parts)
    if isinstance(answer, Failed) or parts.failed:
        return parts.stop(answer if isinstance(answer, Failed) else None)
    return Rule(id=rule_id, form=answer.form, pos=raw.key_at("id") if "id" in raw else pos, turns=answer.turns,
                reply=answer.reply, response=answer.response, moderation=answer.moderation, recorded=answer.recorded,
                behaviour=own.over(defaults), steps=rule_steps, cycle=cycle is True, index=index)


def _steps(checker: Checker, raw: YMap, parts: Parts) -> tuple[Behaviour, ...]:
    if "steps" not in raw:
        return ()
    if isinstance(raw["steps"], YList) and raw["steps"]:
        for key in keys.FAULTS:  # else `{}` could not be the plain reply: nothing turns a fault off
            if key in raw:
                parts.fail(checker.report(raw.key_at(key), f"a rule with `steps` sets `{key}` in its steps, not "
                                                           "on the rule itself, so that `{}` stays the plain reply"))
    return parts(steps(checker, raw["steps"], raw.at("steps"))) or ()


def _answer(checker: Checker, known: Known, pos: Pos, rule_id: str, parts: Parts) -> Answer | Failed[Any]:
    """The rule's form: a conversation flow, the matcher form with `response` or `reply`, or a
    moderation rule."""
    raw = known.raw
    has_flow, has_matcher = "messages" in raw, "matcher" in raw
    has_response, has_reply, has_recorded = "response" in raw, "reply" in raw, "recorded" in raw
    if has_flow and (has_matcher or has_response or has_reply or has_recorded):
        other = "matcher" if has_matcher else "response" if has_response else "reply" if has_reply else "recorded"
        return checker.report(raw.key_at(other), f"a rule has either `messages` (a conversation flow) or `matcher` with "
                                                 f"`response`/`reply`, not both: remove `{other}` or `messages`")
    if has_response and (has_reply or has_recorded):
        other = "reply" if has_reply else "recorded"
        return checker.report(raw.key_at(other), f"give `response` or `{other}`, not both")
    if "flow_reply" in raw and not has_flow:
        parts.fail(checker.report(raw.key_at("flow_reply"), "`flow_reply` applies to conversation flows (`messages`), "
                                                            "not to the matcher form"))
    if "moderation" in raw:
        return _moderation_rule(checker, raw, rule_id)
    if has_flow:
        turns = flow(checker, raw["messages"], raw.at("messages"))
        return turns if isinstance(turns, Failed) else Answer("flow", turns)
    if not has_matcher:
        if known.guessed & {"messages", "matcher"} and parts.shown:
            return parts.stop()  # a misspelt `messages` or `matcher`, already reported
        if has_response or has_reply or has_recorded:
            given = "response" if has_response else "reply" if has_reply else "recorded"
            return checker.report(raw.key_at(given),
                                  f"rule '{rule_id}' has a `{given}` but no `matcher` saying which requests get it "
                                  "(`matcher: {type: any}` answers every request)")
        return checker.report(pos, f"rule '{rule_id}' says neither what it matches nor what it answers: "
                                   "give `messages` (a conversation flow) or `matcher` with `response` or `reply`")
    return _matcher_form(checker, known, rule_id)


def _matcher_form(checker: Checker, known: Known, rule_id: str) -> Answer | Failed[Any]:
    """The matcher form: message patterns, and a whole `response` or a `reply`."""
    raw = known.raw
    patterns = matcher(checker, raw["matcher"], raw.at("matcher"))
    if "recorded" in raw:
        as_sent = recorded(checker, raw["recorded"], raw.at("recorded"))
        told = reply(checker, raw["reply"], raw.at("reply")) if "reply" in raw else Reply()
        if isinstance(patterns, Failed) or isinstance(as_sent, Failed) or isinstance(told, Failed):
            return FAILED
        return Answer("matcher", patterns, reply=told, recorded=as_sent)
    if "response" not in raw and "reply" not in raw:
        return checker.missing(known, ("response", "reply"), raw.key_at("matcher"),
                               f"rule '{rule_id}' has a `matcher` but no `response` or `reply`")
    if "response" in raw:
        answered = response(checker, raw["response"], raw.at("response"))
        if isinstance(patterns, Failed) or isinstance(answered, Failed):
            return FAILED
        return Answer("matcher", patterns, reply=answered[0], response=answered[1])
    answer = reply(checker, raw["reply"], raw.at("reply"))
    if isinstance(patterns, Failed) or isinstance(answer, Failed):
        return FAILED
    return Answer("matcher", patterns, reply=answer)


def _rule_id(checker: Checker, known: Known, pos: Pos, ids: dict[str, Pos], parts: Parts) -> str:
    """The rule's id (a stand-in naming its place when it has none), checked to be unique."""
    raw = known.raw
    if "id" not in raw:
        parts.fail(checker.missing(known, "id", pos, "a rule needs an `id`"))
        rule_id = f"<rule at {pos}>"
    else:
        rule_id = parts(keys.RULE_ID.read_or(checker, raw, "")) or f"<rule at {pos}>"
    if "id" in raw and rule_id in ids:
        parts.fail(checker.report(raw.at("id"), f"duplicate rule id '{rule_id}' (first defined at {ids[rule_id]})"))
    else:
        ids[rule_id] = raw.at("id")
    return rule_id


def _moderation_rule(checker: Checker, raw: YMap, rule_id: str) -> Answer | Failed[Any]:
    """A rule that flags /v1/moderations inputs: a `matcher` and `moderation`, no reply."""
    for key in ("messages", "response", "reply", "recorded"):
        if key in raw:
            return checker.report(raw.key_at(key), f"a moderation rule has `matcher` and `moderation`, not `{key}`: "
                                                   "it flags moderation inputs and answers nothing else")
    if "matcher" not in raw:
        return checker.report(raw.key_at("moderation"), f"moderation rule '{rule_id}' needs a `matcher` saying which "
                                                        "inputs it flags (`matcher: {type: any}` flags every input)")
    patterns = matcher(checker, raw["matcher"], raw.at("matcher"))
    flags = moderation(checker, raw["moderation"], raw.at("moderation"))
    if isinstance(patterns, Failed) or isinstance(flags, Failed):
        return FAILED
    return Answer("matcher", patterns, moderation=flags)


def moderation(checker: Checker, raw: Any, pos: Pos) -> Moderation | Failed[Any]:
    if not isinstance(raw, YMap):
        return checker.report(pos, "`moderation` must be a mapping like {categories: [violence]}")
    parts = Parts()
    known = keys.known(checker, raw, keys.MODERATION, "in `moderation`")
    parts.fail(known.failure)
    if "categories" not in raw:
        return checker.missing(known, "categories", raw.pos, "`moderation` needs `categories`: the categories flagged "
                                                             "(an empty list flags nothing)")
    categories = raw["categories"]
    if not isinstance(categories, YList):
        return checker.report(raw.at("categories"), "`moderation.categories` must be a list of categories")
    category_check = keys.CATEGORY
    for i, category in enumerate(categories):
        if isinstance(category_check(checker, category, categories.at(i), "category"), Failed):
            return FAILED
    scores: list[tuple[str, float]] = []
    if "scores" in raw:
        given = raw["scores"]
        if not isinstance(given, YMap):
            return checker.report(raw.at("scores"), "`moderation.scores` must map categories to scores from 0 to 1")
        for category, score in given.items():
            if category not in MODERATION_CATEGORIES:
                parts(category_check(checker, category, given.key_at(category), "category"))
            elif isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
                parts.fail(checker.report(given.at(category), f"the score of {category!r} must be a number from 0 to 1"))
            else:
                scores.append((category, float(score)))
    return parts.result(Moderation(categories=tuple(dict.fromkeys(categories)), scores=tuple(scores)))
