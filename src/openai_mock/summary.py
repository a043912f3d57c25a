"""What `serve` says on standard error once it listens: the files it loaded, how many rules,
and, for the bundled scenarios, which words in a message reach which rule (nobody should have
to open a YAML file to learn that "slow" gives a slow stream)."""

from __future__ import annotations

from pathlib import Path

from .scenario.model import Config, Rule, Turn


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def loaded(config: Config, source: str | Path, bundled: bool = False) -> list[str]:
    """One line: how many rules, from which files (each with its count when there are several)."""
    files = list(config.files) or [str(source)]
    counts = {name: 0 for name in files}
    for rule in config.rules:
        counts[rule.pos.file] = counts.get(rule.pos.file, 0) + 1
    rules = plural(len(config.rules), "rule")
    if bundled:
        where = f"the bundled scenarios ({Path(source)})"
    elif len(counts) == 1:
        where = next(iter(counts))
    else:
        where = str(source)
    line = f"openai-mock: serving {rules} from {where}"
    if len(counts) > 1:
        shown = ", ".join(f"{Path(name).name} ({count})" for name, count in counts.items())
        line += f": {shown}"
    return [line]


def triggers(config: Config) -> list[str]:
    """For each rule, what the last user message says to reach it, and what the rule does:
    `  contains 'slow'   slow-stream: 200 ms between chunks`; the catch-all rules come last."""
    found = [(said, f"{rule.id}{_what(rule)}") for rule in config.rules if (said := _trigger(rule)) is not None]
    if not found:
        return []
    found.sort(key=lambda pair: pair[0] == ANYTHING)  # (stable: file order otherwise)
    width = max(len(said) for said, _ in found)
    return ["openai-mock: the bundled rules answer a last user message that:",
            *(f"  {said:<{width}}  {rule}" for said, rule in found)]


ANYTHING = "says anything else"


def _trigger(rule: Rule) -> str | None:
    if rule.moderation is not None or rule.recorded is not None:
        return None
    turns: tuple[Turn, ...] = rule.turns
    flow = " (a conversation)" if rule.form == "flow" else ""
    if flow:
        turns = tuple(turn for turn in turns if turn.role == "user")[:1]  # (the flow's first question)
    compared = [turn for turn in turns if turn.role == "user" and turn.match.matcher != "any"]
    if not compared:
        return ANYTHING
    match = compared[-1].match
    verb = {"contains": "contains", "exact": "is", "fuzzy": "is about", "regex": "matches"}.get(match.matcher, match.matcher)
    return f"{verb} {match.content!r}{flow}"


def _what(rule: Rule) -> str:
    """The behaviour worth knowing before sending: faults, delays, steps."""
    said = []
    behaviour = rule.behaviour
    if rule.steps:
        statuses = [str(step.error.status) if step.error is not None else "reply" for step in rule.steps]
        said.append(" then ".join(statuses))
    if behaviour.fail_after_chunks is not None:
        said.append(f"stream cut after {behaviour.fail_after_chunks} chunks ({behaviour.failure or 'disconnect'})")
    if behaviour.delay_ms:
        said.append(f"{behaviour.delay_ms:g} ms between chunks")
    return f": {', '.join(said)}" if said else ""
