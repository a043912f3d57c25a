"""The rules of a whole configuration: the top level of each file (settings, `defaults`, the list
of rules), what files given together must agree on, and the `Config` made of them."""

from __future__ import annotations

import re
from typing import Any

import attrs

from . import keys
from .behaviour import behaviour
from .kernel import Checker, ConfigError, Failed, Parts, Strings, kind, sorted_problems
from .model import Behaviour, Config, Rule
from .rules import rule
from .yamlsrc import BIG_DOCUMENT, Pos, Problem, YList, YMap, parse, release


def configuration(documents: list[tuple[str, str]], problems: list[Problem] | None = None,
                  names: list[str] | None = None) -> Config:
    """The configuration the YAML `documents` (text, file name) make together; `problems` are
    those found reading them. Raises ConfigError."""
    checker = Checker()
    checker.problems.extend(problems or ())
    whole = Whole(checker)
    values = []
    for text, name in documents:
        value, parse_problems = parse(text, name)
        checker.problems.extend(parse_problems)
        checker.spoilt.update(p.pos for p in parse_problems)
        if value is not None:
            whole.document(value, name)
            if len(text) > BIG_DOCUMENT:
                values.append(value)
    try:
        return whole.finish(names if names is not None else [name for _, name in documents])
    finally:  # (the configuration keeps none of these: rules hold values of their own)
        whole.rule_sources.clear()
        release(*values)


@attrs.frozen
class Origins:
    """The origins `cors` allows: None for any."""

    allowed: tuple[str, ...] | None


class Whole:
    """What the files of one configuration set, checked as each is read; the rules are checked
    at the end, once every file's `defaults` are known."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker
        self.settings: dict[str, tuple[Any, Pos]] = {}
        self.defaults = Behaviour()
        self.defaults_at: dict[str, Pos] = {}  # where each key of `defaults` was first set
        self.rule_sources: list[tuple[YMap, Pos]] = []

    def document(self, value: Any, name: str) -> None:
        checker = self.checker
        if isinstance(value, YList):  # a bare list of rules
            self.rule_list(value)
            return
        if not isinstance(value, YMap):
            pos = getattr(value, "pos", Pos(name, 1, 1))
            checker.report(pos, "a scenario file is a mapping with a `responses:` list of rules")
            return
        # `x-...` keys are the user's own (anchors to share, notes), as in Docker Compose files
        keys.known(checker, value, keys.TOP, "at the top level", ignore=keys.EXTENSION_PREFIX)
        if "apiKey" in value and "api_key" in value:
            checker.report(value.key_at("api_key"), "`api_key` is an alias of `apiKey`: give one of them")
        if "responses" in value and "scenarios" in value:
            checker.report(value.key_at("scenarios"), "`scenarios` is an alias of `responses`: give one list of rules")
        for key in keys.SETTINGS:
            if key.name in value:
                self.setting(value, key.name)
        if "defaults" in value:
            self.defaults_block(value)
        for name in ("responses", "scenarios"):
            rules = value.get(name)
            if rules is None:
                continue
            if not isinstance(rules, YList):
                checker.report(value.at(name), f"`{name}` must be a list of rules")
                continue
            self.rule_list(rules)

    def setting(self, doc: YMap, key: str) -> None:
        name = "apiKey" if key == "api_key" else key
        raw, pos = doc[key], doc.at(key)
        value: Any
        if key == "cors":
            value = cors(self.checker, raw, pos)
        elif key == "allowed_hosts":
            value = allowed_hosts(self.checker, raw, pos)
        else:
            value = keys.TOP[key].read(self.checker, doc)
        if isinstance(value, Failed):
            if value.partial is None:
                return
            value = value.partial  # (what passed: a file giving the same is not "set again")
        if name in self.settings and self.settings[name][0] != value:
            first = self.settings[name][1]
            self.checker.report(doc.key_at(key), f"`{key}` is set again with another value (first set at {first})")
            return
        self.settings[name] = (value, doc.key_at(key))

    def defaults_block(self, doc: YMap) -> None:
        block = doc["defaults"]
        if block is None:
            return
        if not isinstance(block, YMap):
            self.checker.report(doc.at("defaults"), "`defaults` must be a mapping of behaviour keys")
            return
        keys.known(self.checker, block, {**keys.BEHAVIOUR, **keys.DEFAULTS_ONLY}, "in `defaults`")
        given = Parts()(behaviour(self.checker, block))  # (what passed: other files' defaults are compared with it)
        assert given is not None
        for field in attrs.fields(Behaviour):  # `defaults` of several files merge key by key
            mine, theirs = getattr(given, field.name), getattr(self.defaults, field.name)
            if mine is None:
                continue
            if field.name == "headers" and theirs is not None:
                # headers merge too; only a header set twice differently conflicts
                earlier = dict(theirs)
                mine = tuple(h for h in mine if h[0] in earlier)
                theirs = tuple((name, earlier[name]) for name, _ in mine)
            if theirs is not None and mine != theirs:
                self.checker.report(block.key_at(field.name), f"`defaults.{field.name}` is set again with another "
                                                              f"value (first set at {self.defaults_at[field.name]})")
            self.defaults_at.setdefault(field.name, block.key_at(field.name))
        self.defaults = given.over(self.defaults)

    def rule_list(self, rules: YList) -> None:
        for index, raw in enumerate(rules):
            if not isinstance(raw, YMap):
                self.checker.report(rules.at(index), "a rule must be a mapping with an `id`")
                continue
            self.rule_sources.append((raw, rules.at(index)))

    def finish(self, names: list[str]) -> Config:
        checker = self.checker
        rules: list[Rule] = []
        ids: dict[str, Pos] = {}
        for raw, pos in self.rule_sources:
            made = rule(checker, raw, pos, len(rules), self.defaults, ids)
            if not isinstance(made, Failed):
                rules.append(made)
        if checker.problems:
            raise ConfigError(checker.problems, checker.warnings)
        settings = {name: value for name, (value, _) in self.settings.items()}
        origins = settings.get("cors")
        return Config(
            rules=tuple(rules),
            api_key=settings.get("apiKey"),
            api_key_at=self.settings["apiKey"][1] if "apiKey" in self.settings else None,
            port=settings.get("port"),
            seed=settings.get("seed"),
            cors_origins=origins.allowed if origins is not None else None,
            defaults=self.defaults,
            models=tuple(settings.get("models") or ()),
            allowed_hosts=settings.get("allowed_hosts") or (),
            files=tuple(names),
            warnings=tuple(sorted_problems(checker.warnings)),
        )


def cors(checker: Checker, raw: Any, pos: Pos) -> Origins | Failed[Origins]:
    """The allowed origins: None for any (`*`, the default), else a list (empty: none)."""
    if raw is None:
        return Origins(None)
    if not isinstance(raw, YMap):
        return checker.report(pos, "`cors` must be a mapping like {origins: [https://app.example]}")
    parts = Parts()
    parts.fail(keys.known(checker, raw, keys.CORS, "in `cors`").failure)
    if "origins" not in raw or raw["origins"] is None:
        return parts.result(Origins(None))
    origins = raw["origins"]
    if isinstance(origins, str):  # one origin, or "*"
        origins = YList([origins])
        origins.pos, origins.item_pos = raw.at("origins"), [raw.at("origins")]
    if not isinstance(origins, YList):
        return checker.report(raw.at("origins"), "`cors.origins` must be a list of origins like https://app.example (or \"*\")")
    result = []
    for i, origin in enumerate(origins):
        if not isinstance(origin, str):
            parts.fail(checker.report(origins.at(i), f"an origin must be a string (got {kind(origin)})"))
        elif origin == "*":
            return parts.result(Origins(None))
        elif not re.fullmatch(keys.ORIGIN, origin):
            # browsers send `scheme://host[:port]`, never a path or a trailing slash
            parts.fail(checker.report(origins.at(i), f"{origin!r} is not an origin: write scheme://host[:port], "
                                                     "with no path or trailing slash (or \"*\" for any)"))
        else:
            result.append(origin)
    return parts.result(Origins(tuple(result)))


def allowed_hosts(checker: Checker, raw: Any, pos: Pos) -> tuple[str, ...] | Failed[Any]:
    """Host names requests may be addressed to, as written in a Host header without its port."""
    value = Strings()(checker, raw, pos, "allowed_hosts")
    if isinstance(value, Failed):
        return value
    for i, host in enumerate(value):
        if not keys.valid_host_name(host):
            return checker.report(raw.at(i), f"{host!r} is not a host name: write the name or address alone, with no "
                                             "scheme, port or path (.example.com for a domain and its subdomains, "
                                             "\"*\" for any)")
    return tuple(value)
