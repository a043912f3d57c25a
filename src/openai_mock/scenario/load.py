"""Load and validate scenario files into a `Config`.

Every problem found is reported as `FILE:LINE:COLUMN: message`; loading goes on after a
problem so that one run names all of them.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import regex
import yaml

from . import keys, regexlint
from .model import (
    MODERATION_CATEGORIES,
    Behaviour,
    Config,
    ErrorSpec,
    Moderation,
    Reply,
    Rule,
    TextMatch,
    ToolCall,
    Turn,
)
from .yamlsrc import BIG_DOCUMENT, Pos, Problem, YList, YMap, decode, parse, release

SCENARIO_SUFFIXES = (".yaml", ".yml")
# A scenario file (or standard input) larger than this is refused before it is read: the
# biggest real configurations are a few megabytes, and `/dev/zero` never ends.
MAX_FILE_SIZE = 64 * 1024 * 1024


class ConfigError(Exception):
    """A configuration with problems; `str()` gives one `FILE:LINE:COLUMN: message` per line.
    `warnings` are what the configuration would also have been warned about."""

    def __init__(self, problems: list[Problem], warnings: list[Problem] | tuple[Problem, ...] = ()):
        self.problems = _sorted(problems)
        self.warnings = _sorted(warnings)
        super().__init__("\n".join(str(p) for p in self.problems))


def _sorted(problems: list[Problem] | tuple[Problem, ...]) -> list[Problem]:
    # sorted by position; a node reached twice through a YAML alias is reported once
    unique = {(p.pos, p.message): p for p in problems}
    return sorted(unique.values(), key=lambda p: (p.pos.file, p.pos.line, p.pos.column))


def load(source: str | bytes | Path | Mapping[str, Any]) -> Config:
    """A configuration from a file or folder path, `-` (standard input), YAML text (or its
    bytes) or a dict.

    A string is taken as YAML text when it spans several lines or looks like YAML (`{`, `[`,
    or `key: value`); otherwise it is a path, so that a missing file is reported as missing."""
    if isinstance(source, Mapping):
        try:
            text = yaml.safe_dump(_plain(source), sort_keys=False, allow_unicode=True)
        except yaml.YAMLError as error:
            raise ConfigError([Problem(Pos("<dict>", 1, 1), f"cannot be read as a configuration: {error}")]) from None
        return load_text(text, "<dict>")
    if isinstance(source, Path):
        return load_path(source)
    if isinstance(source, (bytes, bytearray)):
        return load_bytes(bytes(source))
    if not isinstance(source, str):
        raise TypeError(f"load() takes a path, YAML text or a dict, not {type(source).__name__}")
    if source == "-":
        return load_text(_read_stdin(), "<stdin>")
    if _is_path(source):
        return load_path(Path(source))
    return load_text(source, "<string>")


def _is_path(source: str) -> bool:
    if "\n" in source:
        return False
    if Path(source).exists() or source.endswith(SCENARIO_SUFFIXES):
        return True
    text = source.strip()
    return bool(text) and not text.startswith(("{", "[", "#", "-")) and ": " not in text and not text.endswith(":")


def _read_stdin() -> str:
    """Standard input, up to `MAX_FILE_SIZE` bytes: more is refused without reading on."""
    if hasattr(sys.stdin, "buffer"):
        data = sys.stdin.buffer.read(MAX_FILE_SIZE + 1)
    else:  # (a text stream put in its place, as tests do)
        data = sys.stdin.read(MAX_FILE_SIZE + 1).encode()
    if len(data) > MAX_FILE_SIZE:
        raise ConfigError([Problem(Pos("<stdin>", 1, 1), f"standard input is larger than {_size(MAX_FILE_SIZE)}, "
                                                         "the limit for a configuration")])
    text, problems = decode(data, "<stdin>")
    if problems:
        raise ConfigError(problems)
    return text or ""


def load_path(path: Path) -> Config:
    """A configuration from a file or a folder of files. Only regular files are read (not a
    device like /dev/zero, a FIFO or a socket), each of at most `MAX_FILE_SIZE` bytes."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError([Problem(Pos(str(path), 1, 1), "no such file or folder")]) from None
    except OSError as error:
        raise ConfigError([Problem(Pos(str(path), 1, 1), f"cannot read: {error.strerror or error}")]) from None
    problems: list[Problem] = []
    if stat.S_ISDIR(info.st_mode):
        try:
            files, problems = _folder_entries(path)
        except OSError as error:
            raise ConfigError([Problem(Pos(str(path), 1, 1), f"cannot read: {error.strerror or error}")]) from None
        if not files and not problems:
            raise ConfigError([Problem(Pos(str(path), 1, 1), "no *.yaml or *.yml files in this folder")])
    elif stat.S_ISREG(info.st_mode):
        files = [path]
    else:
        raise ConfigError([Problem(Pos(str(path), 1, 1), _not_regular(info.st_mode))])
    documents = []
    for file in files:
        data, problem = _read_file(file)
        if problem is not None:
            problems.append(problem)
            continue
        assert data is not None
        text, decode_problems = decode(data, str(file))
        problems += decode_problems
        if text is not None:
            documents.append((text, str(file)))
    return _load_documents(documents, problems, [str(f) for f in files])


def _read_file(file: Path) -> tuple[bytes | None, Problem | None]:
    """The bytes of a regular file of at most `MAX_FILE_SIZE` bytes, or why not. The file is
    opened without blocking and checked once open, so that a FIFO put in its place between a
    look and the read never hangs the loader."""
    where = Pos(str(file), 1, 1)
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        return None, Problem(where, f"cannot read: {error.strerror or error}")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, Problem(where, _not_regular(info.st_mode))
        if info.st_size > MAX_FILE_SIZE:
            return None, Problem(where, _too_big(info.st_size))
        chunks, size = [], 0
        while size <= MAX_FILE_SIZE:  # (a file that grows meanwhile stops at the limit too)
            chunk = os.read(fd, min(1 << 20, MAX_FILE_SIZE + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_FILE_SIZE:
            return None, Problem(where, _too_big(size))
        return b"".join(chunks), None
    except OSError as error:
        return None, Problem(where, f"cannot read: {error.strerror or error}")
    finally:
        os.close(fd)


def _not_regular(mode: int) -> str:
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")
    return f"{kind}, not a scenario file: give a regular *.yaml file or a folder of them"


def _too_big(size: int) -> str:
    return f"the file is larger than {_size(MAX_FILE_SIZE)}, the limit for a scenario file ({size:,} bytes)"


def _size(count: int) -> str:
    return f"{count // (1024 * 1024)} MB" if count % (1024 * 1024) == 0 else f"{count:,} bytes"


def load_text(text: str, name: str = "<string>") -> Config:
    return _load_documents([(text, name)])


def load_bytes(data: bytes, name: str = "<bytes>") -> Config:
    """A configuration from the bytes of a file (or an HTTP body): UTF-8, or UTF-16 with a BOM;
    bytes that are not text are reported at their line and column."""
    text, problems = decode(data, name)
    if text is None:
        raise ConfigError(problems)
    return load_text(text, name)


def watched_files(path: Path) -> list[Path]:
    """The files a configuration at `path` is read from (for --watch)."""
    if path.is_dir():
        files, problems = _folder_entries(path)
        return sorted(files + [Path(p.pos.file) for p in problems])  # (a FIFO that appears counts too)
    return [path]


def _folder_entries(path: Path) -> tuple[list[Path], list[Problem]]:
    """A folder's scenario files in name order, and a problem for each `*.yaml` entry that is
    neither a regular file nor a folder (a FIFO, a device, a broken link). Hidden files (editor
    droppings), other names and sub-folders are skipped."""
    files, problems = [], []
    for entry in sorted(path.iterdir()):
        if entry.suffix not in SCENARIO_SUFFIXES or entry.name.startswith("."):
            continue
        try:
            mode = entry.stat().st_mode
        except OSError as error:
            problems.append(Problem(Pos(str(entry), 1, 1), f"cannot read: {error.strerror or error}"))
            continue
        if stat.S_ISREG(mode):
            files.append(entry)
        elif not stat.S_ISDIR(mode):
            problems.append(Problem(Pos(str(entry), 1, 1), _not_regular(mode)))
    return files, problems


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _load_documents(documents: list[tuple[str, str]], problems: list[Problem] | None = None,
                    names: list[str] | None = None) -> Config:
    checker = _Checker()
    checker.problems.extend(problems or ())
    values = []
    for text, name in documents:
        value, parse_problems = parse(text, name)
        checker.problems.extend(parse_problems)
        checker.spoilt.update(p.pos for p in parse_problems)
        if value is not None:
            checker.document(value, name)
            if len(text) > BIG_DOCUMENT:
                values.append(value)
    try:
        return checker.finish(names if names is not None else [name for _, name in documents])
    finally:  # (the configuration keeps none of these: rules hold values of their own)
        checker.rule_sources.clear()
        release(*values)


# --- checking ------------------------------------------------------------------------------

_MISSING = object()


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.settings: dict[str, tuple[Any, Pos]] = {}
        self.defaults = Behaviour()
        self.defaults_at: dict[str, Pos] = {}  # where each key of `defaults` was first set
        self.rules: list[Rule] = []
        self.rule_sources: list[tuple[YMap, Pos]] = []
        self.ids: dict[str, Pos] = {}
        # keys that a misspelt key was taken for, per mapping: their absence is not reported
        # again (one typo, one line)
        self.suggested: dict[int, set[str]] = {}
        # where the YAML itself was wrong: the value there was dropped, and what follows from
        # its absence is not reported again
        self.spoilt: set[Pos] = set()

    def report(self, pos: Pos, message: str) -> None:
        if pos not in self.spoilt:
            self.problems.append(Problem(pos, message))

    def warn(self, pos: Pos, message: str) -> None:
        """Something that loads and works, but that the user should know about."""
        self.warnings.append(Problem(pos, f"warning: {message}"))

    # the document --------------------------------------------------------------------------

    def document(self, value: Any, name: str) -> None:
        if isinstance(value, YList):  # a bare list of rules
            self.rule_list(value)
            return
        if not isinstance(value, YMap):
            pos = getattr(value, "pos", Pos(name, 1, 1))
            self.report(pos, "a scenario file is a mapping with a `responses:` list of rules")
            return
        # `x-...` keys are the user's own (anchors to share, notes), as in Docker Compose files
        self.known_keys(value, keys.TOP, "at the top level", ignore=keys.EXTENSION_PREFIX)
        if "apiKey" in value and "api_key" in value:
            self.report(value.key_at("api_key"), "`api_key` is an alias of `apiKey`: give one of them")
        if "responses" in value and "scenarios" in value:
            self.report(value.key_at("scenarios"), "`scenarios` is an alias of `responses`: give one list of rules")
        for key in ("apiKey", "api_key", "port", "seed", "cors", "models", "allowed_hosts"):
            if key in value:
                self.setting(value, key)
        if "defaults" in value:
            self.defaults_block(value)
        for key in ("responses", "scenarios"):
            if key in value:
                rules = value[key]
                if rules is None:
                    continue
                if not isinstance(rules, YList):
                    self.report(value.at(key), f"`{key}` must be a list of rules")
                    continue
                self.rule_list(rules)

    def setting(self, doc: YMap, key: str) -> None:
        name = "apiKey" if key == "api_key" else key
        raw, pos = doc[key], doc.at(key)
        if key in ("apiKey", "api_key"):
            value = self.string(raw, pos, key)
        elif key in ("port", "seed"):
            value = self.integer(raw, pos, key, minimum=0 if key == "port" else None,
                                 maximum=65535 if key == "port" else None)
        elif key == "models":
            value = self.string_list(raw, pos, key)
        elif key == "allowed_hosts":
            value = self.allowed_hosts(raw, pos)
        else:  # cors
            value = self.cors(raw, pos)
        if value is _MISSING:
            return
        if name in self.settings and self.settings[name][0] != value:
            first = self.settings[name][1]
            self.report(doc.key_at(key), f"`{key}` is set again with another value (first set at {first})")
            return
        self.settings[name] = (value, doc.key_at(key))

    def cors(self, raw: Any, pos: Pos) -> Any:
        """The allowed origins: None for any (`*`, the default), else a list (empty: none)."""
        if raw is None:
            return None
        if not isinstance(raw, YMap):
            self.report(pos, "`cors` must be a mapping like {origins: [https://app.example]}")
            return _MISSING
        self.known_keys(raw, keys.CORS, "in `cors`")
        if "origins" not in raw or raw["origins"] is None:
            return None
        origins = raw["origins"]
        if isinstance(origins, str):  # one origin, or "*"
            origins = YList([origins])
            origins.pos, origins.item_pos = raw.at("origins"), [raw.at("origins")]
        if not isinstance(origins, YList):
            self.report(raw.at("origins"), "`cors.origins` must be a list of origins like https://app.example (or \"*\")")
            return _MISSING
        result = []
        for i, origin in enumerate(origins):
            if not isinstance(origin, str):
                self.report(origins.at(i), f"an origin must be a string (got {_kind(origin)})")
            elif origin == "*":
                return None
            elif not re.fullmatch(keys.ORIGIN, origin):
                # browsers send `scheme://host[:port]`, never a path or a trailing slash
                self.report(origins.at(i), f"{origin!r} is not an origin: write scheme://host[:port], "
                                           "with no path or trailing slash (or \"*\" for any)")
            else:
                result.append(origin)
        return result

    def allowed_hosts(self, raw: Any, pos: Pos) -> Any:
        """Host names requests may be addressed to, as written in a Host header without its port."""
        value = self.string_list(raw, pos, "allowed_hosts")
        if value is _MISSING:
            return value
        for i, host in enumerate(value):
            if keys.valid_host_name(host):
                continue
            self.report(raw.at(i), f"{host!r} is not a host name: write the name or address alone, with no "
                                   "scheme, port or path (.example.com for a domain and its subdomains, "
                                   "\"*\" for any)")
            return _MISSING
        return tuple(value)

    def defaults_block(self, doc: YMap) -> None:
        block = doc["defaults"]
        if block is None:
            return
        if not isinstance(block, YMap):
            self.report(doc.at("defaults"), "`defaults` must be a mapping of behaviour keys")
            return
        self.known_keys(block, {**keys.BEHAVIOUR, **keys.DEFAULTS_ONLY}, "in `defaults`")
        behaviour = self.behaviour(block)
        for field in attrs.fields(Behaviour):  # `defaults` of several files merge key by key
            mine, theirs = getattr(behaviour, field.name), getattr(self.defaults, field.name)
            if mine is None:
                continue
            if field.name == "headers" and theirs is not None:
                # headers merge too; only a header set twice differently conflicts
                earlier = dict(theirs)
                mine = tuple(h for h in mine if h[0] in earlier)
                theirs = tuple((name, earlier[name]) for name, _ in mine)
            if theirs is not None and mine != theirs:
                self.report(block.key_at(field.name), f"`defaults.{field.name}` is set again with another "
                                                      f"value (first set at {self.defaults_at[field.name]})")
            self.defaults_at.setdefault(field.name, block.key_at(field.name))
        self.defaults = behaviour.over(self.defaults)

    def rule_list(self, rules: YList) -> None:
        for index, raw in enumerate(rules):
            if not isinstance(raw, YMap):
                self.report(rules.at(index), "a rule must be a mapping with an `id`")
                continue
            self.rule_sources.append((raw, rules.at(index)))

    def finish(self, names: list[str]) -> Config:
        for raw, pos in self.rule_sources:
            rule = self.rule(raw, pos, len(self.rules))
            if rule is not None:
                self.rules.append(rule)
        if self.problems:
            raise ConfigError(self.problems, self.warnings)
        settings = {name: value for name, (value, _) in self.settings.items()}
        cors = settings.get("cors")
        return Config(
            rules=tuple(self.rules),
            api_key=settings.get("apiKey"),
            port=settings.get("port"),
            seed=settings.get("seed"),
            cors_origins=tuple(cors) if cors is not None else None,
            defaults=self.defaults,
            models=tuple(settings.get("models") or ()),
            allowed_hosts=settings.get("allowed_hosts") or (),
            files=tuple(names),
            warnings=tuple(_sorted(self.warnings)),
        )

    # a rule ------------------------------------------------------------------------------

    def rule(self, raw: YMap, pos: Pos, index: int) -> Rule | None:
        before = len(self.problems)
        self.known_keys(raw, keys.RULE, "in a rule")
        rule_id = raw.get("id")
        if "id" not in raw:
            self.missing(raw, "id", pos, "a rule needs an `id`")
            rule_id = f"<rule at {pos}>"
        elif isinstance(rule_id, (int, float)) and not isinstance(rule_id, bool):
            rule_id = str(rule_id)  # `id: 1` is the rule "1"
        elif not isinstance(rule_id, str) or not rule_id.strip():
            self.report(raw.at("id"), "`id` must be a non-empty string")
            rule_id = f"<rule at {pos}>"
        if "id" in raw and rule_id in self.ids:
            self.report(raw.at("id"), f"duplicate rule id '{rule_id}' (first defined at {self.ids[rule_id]})")
        else:
            self.ids[rule_id] = raw.at("id")
        if "description" in raw and raw["description"] is not None:
            self.string(raw["description"], raw.at("description"), "description")

        behaviour = self.behaviour(raw)
        steps: tuple[Behaviour, ...] = ()
        if "steps" in raw:
            steps = self.steps(raw)
        cycle = False
        if "cycle" in raw:
            if not isinstance(raw["cycle"], bool):
                self.report(raw.at("cycle"), "`cycle` must be true or false")
            elif "steps" not in raw:
                self.missing(raw, "steps", raw.key_at("cycle"), "`cycle` applies to `steps`, and this rule has none")
            else:
                cycle = raw["cycle"]

        has_flow, has_matcher = "messages" in raw, "matcher" in raw
        has_response, has_reply = "response" in raw, "reply" in raw
        if has_flow and (has_matcher or has_response or has_reply):
            other = "matcher" if has_matcher else "response" if has_response else "reply"
            self.report(raw.key_at(other),
                        f"a rule has either `messages` (a conversation flow) or `matcher` with "
                        f"`response`/`reply`, not both: remove `{other}` or `messages`")
            return None
        if has_response and has_reply:
            self.report(raw.key_at("reply"), "give `response` or `reply`, not both")
            return None
        if "flow_reply" in raw and not has_flow:
            self.report(raw.key_at("flow_reply"), "`flow_reply` applies to conversation flows (`messages`), "
                                                  "not to the matcher form")

        common = dict(id=rule_id, pos=raw.key_at("id") if "id" in raw else pos,
                      behaviour=behaviour.over(self.defaults), steps=steps, cycle=cycle, index=index)
        if "moderation" in raw:
            return self.moderation_rule(raw, rule_id, common, before)
        if has_flow:
            turns = self.flow(raw)
            if len(self.problems) > before:
                return None
            return Rule(form="flow", turns=turns, **common)
        if not has_matcher:
            if len(self.problems) > before and self.suggested.get(id(raw), set()) & {"messages", "matcher"}:
                return None  # a misspelt `messages` or `matcher`, already reported
            if has_response or has_reply:
                given = "response" if has_response else "reply"
                self.report(raw.key_at(given),
                            f"rule '{rule_id}' has a `{given}` but no `matcher` saying which requests get it "
                            "(`matcher: {type: any}` answers every request)")
            else:
                self.report(pos, f"rule '{rule_id}' says neither what it matches nor what it answers: "
                                 "give `messages` (a conversation flow) or `matcher` with `response` or `reply`")
            return None
        patterns = self.matcher(raw)
        if not (has_response or has_reply):
            self.missing(raw, ("response", "reply"), raw.key_at("matcher"),
                         f"rule '{rule_id}' has a `matcher` but no `response` or `reply`")
            return None
        if has_response:
            reply, response = self.response(raw["response"], raw.at("response"))
        else:
            reply, response = self.reply(raw["reply"], raw.at("reply")), None
        if len(self.problems) > before or reply is None:
            return None
        return Rule(form="matcher", turns=patterns, reply=reply, response=response, **common)

    def steps(self, raw: YMap) -> tuple[Behaviour, ...]:
        steps = raw["steps"]
        if not isinstance(steps, YList) or not steps:
            self.report(raw.at("steps"), "`steps` must be a non-empty list of behaviour mappings ({} is the plain reply)")
            return ()
        for key in keys.FAULTS:  # else `{}` could not be the plain reply: nothing turns a fault off
            if key in raw:
                self.report(raw.key_at(key), f"a rule with `steps` sets `{key}` in its steps, not on the "
                                             "rule itself, so that `{}` stays the plain reply")
        result = []
        for i, step in enumerate(steps):
            if step is None:
                step = YMap()
                step.pos, step.key_pos, step.value_pos = steps.at(i), {}, {}
            if not isinstance(step, YMap):
                self.report(steps.at(i), "a step must be a mapping of behaviour keys ({} is the plain reply)")
                continue
            self.known_keys(step, keys.BEHAVIOUR, "in a step")
            result.append(self.behaviour(step))
        return tuple(result)

    # conversation flow -----------------------------------------------------------------------

    def flow(self, raw: YMap) -> tuple[Turn, ...]:
        messages = raw["messages"]
        if not isinstance(messages, YList) or not messages:
            self.report(raw.at("messages"), "`messages` must be a non-empty list of turns")
            return ()
        turns = []
        for i, message in enumerate(messages):
            if not isinstance(message, YMap):
                self.report(messages.at(i), "a turn must be a mapping with a `role`")
                continue
            turn = self.flow_turn(message)
            if turn is not None:
                turns.append(turn)
        if len(turns) == len(messages):
            if not any(t.role == "assistant" for t in turns):
                self.report(raw.at("messages"), "a conversation flow needs at least one assistant turn to answer with")
            elif turns[-1].role != "assistant":
                # a request reaching these turns would have no assistant turn after it to answer with
                last = turns[-1]
                self.report(last.pos or raw.at("messages"),
                            f"a conversation flow ends with its replies: this {last.role} turn has no "
                            "assistant turn after it (add one, or remove the turn)")
        return tuple(turns)

    def flow_turn(self, message: YMap) -> Turn | None:
        self.known_keys(message, keys.FLOW_TURN, "in a turn")
        role = self.role(message)
        if role is None:
            return None
        if role == "assistant":
            for key in ("matcher", "threshold", "tool_call_id"):
                if key in message:
                    self.report(message.key_at(key), f"`{key}` applies to the turns that are compared, "
                                                     "not to assistant turns (which are the replies)")
            reply = self.assistant(message)
            return Turn(role=role, reply=reply, pos=message.pos) if reply else None
        for key in ("tool_calls", "finish_reason", "refusal"):
            if key in message:
                self.report(message.key_at(key), f"`{key}` belongs on an assistant turn, not a {role} turn")
        if "tool_call_id" in message and role != "tool":
            self.report(message.key_at("tool_call_id"), "`tool_call_id` belongs on a tool turn")
        tool_call_id = None
        if "tool_call_id" in message:
            tool_call_id = self.string(message["tool_call_id"], message.at("tool_call_id"), "tool_call_id")
            tool_call_id = None if tool_call_id is _MISSING else tool_call_id
        match = self.text_match(message, default="exact")
        if match is None:
            return None
        if role == "tool" and match.content is None and "matcher" not in message:
            match = TextMatch(matcher="any")
        return Turn(role=role, match=match, tool_call_id=tool_call_id, pos=message.pos)

    def text_match(self, message: YMap, default: str, threshold: float = 0.8) -> TextMatch | None:
        matcher = message.get("matcher", default)
        if matcher not in keys.MATCHERS:
            self.report(message.at("matcher"), self.choice_message("matcher", matcher, keys.MATCHERS))
            return None
        if "threshold" in message:
            value = self.threshold(message)
            if value is None:
                return None
            threshold = value
            if matcher != "fuzzy":
                self.report(message.key_at("threshold"), f"`threshold` only applies to the fuzzy matcher "
                                                         f"(this message uses `{matcher}`)")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            self.string(content, message.at("content"), "content")
            return None
        if matcher == "any":
            return TextMatch(matcher="any")
        if content is None:
            if message.get("role") == "tool" and "content" not in message:
                return TextMatch(matcher="any")
            self.missing(message, "content", message.pos if "content" not in message else message.at("content"),
                         f"the {matcher} matcher needs a `content` to compare (or use `matcher: any`)")
            return None
        pattern = None
        if matcher == "regex":
            pattern = self.regex(content, message.at("content"))
            if pattern is None:
                return None
        return TextMatch(matcher=matcher, content=content, threshold=threshold, pattern=pattern)

    def regex(self, text: str, pos: Pos) -> regex.Pattern[str] | None:
        """The pattern, in Python's `re` syntax (checked by `re`, whose messages these are),
        compiled by the `regex` module, whose searches take a time budget (see matching.py)."""
        try:
            re.compile(text, re.IGNORECASE)
        except re.error as error:
            self.report(pos, f"bad regex {text!r}: {error}")
            return None
        try:
            pattern = regex.compile(text, regex.IGNORECASE)
        except regex.error as error:  # (not seen: `re` refuses more than the regex module)
            self.report(pos, f"bad regex {text!r}: {error}")
            return None
        risk = regexlint.risk(text)
        if risk is not None:
            self.warn(pos, f"regex {text!r} {risk}")
        return pattern

    def threshold(self, raw: YMap) -> float | None:
        value = raw["threshold"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            self.report(raw.at("threshold"), f"`threshold` must be a number from 0 to 1 (got {_shown(value)})")
            return None
        return float(value)

    def role(self, message: YMap) -> str | None:
        if "role" not in message:
            self.missing(message, "role", message.pos, "a message needs a `role`")
            return None
        role = message["role"]
        if role not in keys.ROLES:
            self.report(message.at("role"), self.choice_message("role", role, keys.ROLES))
            return None
        return role

    def assistant(self, message: YMap) -> Reply | None:
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            self.string(content, message.at("content"), "content")
            return None
        refusal = message.get("refusal")
        if refusal is not None and not isinstance(refusal, str):
            self.report(message.at("refusal"), "`refusal` must be a string")
            return None
        tool_calls: tuple[ToolCall, ...] = ()
        if "tool_calls" in message and message["tool_calls"] is not None:
            tool_calls = self.tool_calls(message["tool_calls"], message.at("tool_calls"))
            if tool_calls is None:
                return None
        if content is None and not tool_calls and refusal is None:
            self.missing(message, ("content", "tool_calls", "refusal"), message.pos,
                         "an assistant turn needs `content`, `tool_calls` or `refusal`")
            return None
        finish = message.get("finish_reason", "tool_calls" if tool_calls else "stop")
        if finish not in keys.FINISH_REASONS:
            self.report(message.at("finish_reason"), self.choice_message("finish_reason", finish, keys.FINISH_REASONS))
            return None
        return Reply(content=content, tool_calls=tool_calls, finish_reason=finish, refusal=refusal)

    def tool_calls(self, raw: Any, pos: Pos) -> tuple[ToolCall, ...] | None:
        if not isinstance(raw, YList):
            self.report(pos, "`tool_calls` must be a list")
            return None
        calls = []
        for i, call in enumerate(raw):
            if not isinstance(call, YMap):
                self.report(raw.at(i), "a tool call must be a mapping with `id` and `function`")
                return None
            self.known_keys(call, keys.TOOL_CALL, "in a tool call")
            if call.get("type", "function") != "function":
                self.report(call.at("type"), "a tool call's `type` is `function`")
            if "id" not in call or not isinstance(call["id"], str) or not call["id"]:
                self.missing(call, "id", call.at("id") if "id" in call else call.pos,
                             "a tool call needs a string `id` (like call_abc123)")
                return None
            function = call.get("function")
            if not isinstance(function, YMap):
                self.missing(call, "function", call.at("function") if "function" in call else call.pos,
                             "a tool call needs `function: {name, arguments}`")
                return None
            self.known_keys(function, keys.FUNCTION, "in a tool call's function")
            name = function.get("name")
            if not isinstance(name, str) or not name:
                self.missing(function, "name", function.at("name") if "name" in function else function.pos,
                             "a function needs a string `name`")
                return None
            arguments = function.get("arguments", "")
            if isinstance(arguments, dict):
                arguments = _json_text(arguments)
            elif arguments is None:
                arguments = ""
            elif not isinstance(arguments, str):
                self.report(function.at("arguments"), "`arguments` must be a JSON string or a mapping")
                return None
            calls.append(ToolCall(id=call["id"], name=name, arguments=arguments))
        return tuple(calls)

    # matcher form ----------------------------------------------------------------------------

    def matcher(self, raw: YMap) -> tuple[Turn, ...]:
        matcher = raw["matcher"]
        if not isinstance(matcher, YMap):
            self.report(raw.at("matcher"), "`matcher` must be a mapping: {type: contains, messages: [...]}")
            return ()
        self.known_keys(matcher, keys.MATCHER, "in `matcher`")
        kind = matcher.get("type", "exact")
        if kind not in keys.MATCHERS:
            self.report(matcher.at("type"), self.choice_message("type", kind, keys.MATCHERS))
            kind = None  # go on: the messages may have problems of their own
        threshold = 0.8
        if "threshold" in matcher:
            value = self.threshold(matcher)
            if value is not None:
                threshold = value
                listed = matcher.get("messages")
                uses_fuzzy = kind == "fuzzy" or any(
                    isinstance(m, YMap) and m.get("matcher") == "fuzzy"
                    for m in (listed if isinstance(listed, YList) else ()))
                if kind is not None and not uses_fuzzy:
                    self.report(matcher.key_at("threshold"), f"`threshold` only applies to the fuzzy matcher "
                                                             f"(this matcher's type is `{kind}`)")
        messages = matcher.get("messages")
        if messages is None:
            if kind not in ("any", None):
                self.missing(matcher, ("messages", "type"), matcher.pos,
                             "`matcher` needs `messages` to compare (or `type: any` to match every request)")
            return ()
        if not isinstance(messages, YList) or not messages:
            self.report(matcher.at("messages"), "`matcher.messages` must be a non-empty list of messages "
                                                "(leave it out with `type: any` to match every request)")
            return ()
        kind = kind or "any"
        turns = []
        for i, message in enumerate(messages):
            if not isinstance(message, YMap):
                self.report(messages.at(i), "a message must be a mapping with a `role`")
                continue
            self.known_keys(message, keys.MATCHER_MESSAGE, "in a matcher message")
            role = self.role(message)
            if role is None:
                continue
            match = self.text_match(message, default=kind, threshold=threshold)
            if match is None:
                continue
            tool_call_id = message.get("tool_call_id")
            if tool_call_id is not None and not isinstance(tool_call_id, str):
                self.report(message.at("tool_call_id"), "`tool_call_id` must be a string")
                continue
            turns.append(Turn(role=role, match=match, tool_call_id=tool_call_id, pos=message.pos))
        return tuple(turns)

    def response(self, raw: Any, pos: Pos) -> tuple[Reply | None, Any]:
        if not isinstance(raw, YMap):
            self.report(pos, "`response` must be a chat.completion object (a mapping with `choices`)")
            return None, None
        choices = raw.get("choices")
        if not isinstance(choices, YList) or not choices:
            self.report(raw.at("choices") if "choices" in raw else raw.pos,
                        "`response.choices` must be a non-empty list")
            return None, None
        for key, kind in (("id", str), ("model", str), ("created", int)):
            if key in raw and not isinstance(raw[key], kind):
                self.report(raw.at(key), f"`response.{key}` must be {'an integer' if kind is int else 'a string'}")
        if "usage" in raw and raw["usage"] is not None:
            usage = raw["usage"]
            if not isinstance(usage, YMap) or any(
                not isinstance(usage.get(k, 0), int) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
            ):
                self.report(raw.at("usage"), "`response.usage` must be {prompt_tokens, completion_tokens, total_tokens} integers")
        replies = []
        for i, choice in enumerate(choices):
            if not isinstance(choice, YMap) or not isinstance(choice.get("message"), YMap):
                self.report(choices.at(i), "a choice needs a `message` mapping")
                return None, None
            message = choice["message"]
            if message.get("role", "assistant") != "assistant":
                self.report(message.at("role"), "a choice's message has `role: assistant`")
            reply = self.assistant(message)
            if reply is None:
                return None, None
            if "index" in choice and (isinstance(choice["index"], bool) or choice["index"] != i):
                self.report(choice.at("index"), f"this choice's `index` must be {i} (choices are numbered from 0)")
            if "finish_reason" in choice:
                finish = choice["finish_reason"]
                if finish not in keys.FINISH_REASONS:
                    self.report(choice.at("finish_reason"), self.choice_message("finish_reason", finish, keys.FINISH_REASONS))
                    return None, None
                reply = attrs.evolve(reply, finish_reason=finish)
            replies.append(reply)
        response = _plain(raw)
        for choice, reply in zip(response["choices"], replies):
            # arguments written as a mapping go on the wire as the JSON text the API sends
            for call, parsed in zip(choice["message"].get("tool_calls") or (), reply.tool_calls):
                call["function"]["arguments"] = parsed.arguments
        return replies[0], response

    def reply(self, raw: Any, pos: Pos) -> Reply | None:
        if isinstance(raw, str):
            return Reply(content=raw)
        if isinstance(raw, YMap):
            self.known_keys(raw, keys.ASSISTANT_TURN, "in `reply`")
            if raw.get("role", "assistant") != "assistant":
                self.report(raw.at("role"), "a reply has `role: assistant`")
                return None
            return self.assistant(raw)
        self.report(pos, "`reply` must be the reply text, or a mapping like {content: ..., tool_calls: [...]}")
        return None

    # moderation rules --------------------------------------------------------------------------

    def moderation_rule(self, raw: YMap, rule_id: str, common: dict[str, Any], before: int) -> Rule | None:
        """A rule that flags /v1/moderations inputs: a `matcher` and `moderation`, no reply."""
        for key in ("messages", "response", "reply"):
            if key in raw:
                self.report(raw.key_at(key), f"a moderation rule has `matcher` and `moderation`, not `{key}`: "
                                             "it flags moderation inputs and answers nothing else")
                return None
        if "matcher" not in raw:
            self.report(raw.key_at("moderation"), f"moderation rule '{rule_id}' needs a `matcher` saying which "
                                                  "inputs it flags (`matcher: {type: any}` flags every input)")
            return None
        patterns = self.matcher(raw)
        moderation = self.moderation(raw["moderation"], raw.at("moderation"))
        if len(self.problems) > before or moderation is None:
            return None
        return Rule(form="matcher", turns=patterns, moderation=moderation, **common)

    def moderation(self, raw: Any, pos: Pos) -> Moderation | None:
        if not isinstance(raw, YMap):
            self.report(pos, "`moderation` must be a mapping like {categories: [violence]}")
            return None
        self.known_keys(raw, keys.MODERATION, "in `moderation`")
        if "categories" not in raw:
            self.missing(raw, "categories", raw.pos, "`moderation` needs `categories`: the categories flagged "
                                                     "(an empty list flags nothing)")
            return None
        categories = raw["categories"]
        if not isinstance(categories, YList):
            self.report(raw.at("categories"), "`moderation.categories` must be a list of categories")
            return None
        for i, category in enumerate(categories):
            if category not in MODERATION_CATEGORIES:
                self.report(categories.at(i), self.choice_message("category", category, MODERATION_CATEGORIES))
                return None
        scores: list[tuple[str, float]] = []
        if "scores" in raw:
            given = raw["scores"]
            if not isinstance(given, YMap):
                self.report(raw.at("scores"), "`moderation.scores` must map categories to scores from 0 to 1")
                return None
            for category, score in given.items():
                if category not in MODERATION_CATEGORIES:
                    self.report(given.key_at(category), self.choice_message("category", category, MODERATION_CATEGORIES))
                elif isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
                    self.report(given.at(category), f"the score of {category!r} must be a number from 0 to 1")
                else:
                    scores.append((category, float(score)))
        return Moderation(categories=tuple(dict.fromkeys(categories)), scores=tuple(scores))

    # behaviour -------------------------------------------------------------------------------

    def behaviour(self, raw: YMap) -> Behaviour:
        values: dict[str, Any] = {}
        for key in ("latency_ms", "first_chunk_delay_ms", "delay_ms", "jitter_ms", "hang_ms"):
            if key in raw:
                value = raw[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    self.report(raw.at(key), f"`{key}` must be a number of milliseconds, 0 or more")
                else:
                    values[key] = float(value)
        if "fail_after_chunks" in raw:
            value = self.integer(raw["fail_after_chunks"], raw.at("fail_after_chunks"), "fail_after_chunks", minimum=0)
            if value is not _MISSING:
                values["fail_after_chunks"] = value
        if "chunking" in raw:
            value = raw["chunking"]
            if value in ("word", "char") or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                values["chunking"] = value
            else:
                self.report(raw.at("chunking"), "`chunking` must be `word`, `char` or a whole number of characters (1 or more)")
        if "failure" in raw:
            value = raw["failure"]
            if value in keys.BEHAVIOUR_FAILURES:
                values["failure"] = value
            else:
                self.report(raw.at("failure"), self.choice_message("failure", value, keys.BEHAVIOUR_FAILURES))
        if "error" in raw:
            error = self.error(raw["error"], raw.at("error"))
            if error is not None:
                values["error"] = error
        if "headers" in raw:
            headers = self.headers(raw["headers"], raw.at("headers"))
            if headers is not None:
                values["headers"] = headers
        if "flow_reply" in raw:
            value = raw["flow_reply"]
            if value in keys.FLOW_REPLIES:
                values["flow_reply"] = value
            else:
                self.report(raw.at("flow_reply"), self.choice_message("flow_reply", value, keys.FLOW_REPLIES))
        return Behaviour(**values)

    def error(self, raw: Any, pos: Pos) -> ErrorSpec | None:
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw_status, raw = raw, None
            if not 400 <= raw_status <= 599:
                self.report(pos, "`error` status must be from 400 to 599")
                return None
            return ErrorSpec(status=raw_status)
        if not isinstance(raw, YMap):
            self.report(pos, "`error` must be a mapping like {status: 429, message: ...} (or a status number)")
            return None
        self.known_keys(raw, keys.ERROR, "in `error`")
        values: dict[str, Any] = {}
        if "status" in raw:
            status = self.integer(raw["status"], raw.at("status"), "status", minimum=400, maximum=599)
            if status is _MISSING:
                return None
            values["status"] = status
        for key in ("message", "type", "body", "content_type"):
            if key in raw:
                value = self.string(raw[key], raw.at(key), key)
                if value is not _MISSING:
                    values[key] = value
        for key in ("code", "param"):
            if key in raw:
                value = raw[key]
                if value is not None and not isinstance(value, (str, int)):
                    self.report(raw.at(key), f"`{key}` must be a string or null")
                elif value is not None:
                    values[key] = str(value)
        if "headers" in raw:
            headers = self.headers(raw["headers"], raw.at("headers"))
            if headers is not None:
                values["headers"] = headers
        if "content_type" in values and "body" not in values:
            self.report(raw.key_at("content_type"), "`content_type` applies to a raw `body`; give `body` too")
        return ErrorSpec(**values)

    def headers(self, raw: Any, pos: Pos) -> tuple[tuple[str, str], ...] | None:
        if not isinstance(raw, YMap):
            self.report(pos, "`headers` must be a mapping of header names to values")
            return None
        result = []
        for name, value in raw.items():
            if not isinstance(name, str) or not re.fullmatch(keys.HEADER_NAME, name):
                self.report(raw.key_at(name), f"{name!r} is not a valid header name")
                continue
            if name.lower() in keys.FRAMING_HEADERS:
                self.report(raw.key_at(name), f"`{name}` is set by the server from the body it sends; "
                                              "it cannot be configured")
                continue
            if isinstance(value, bool) or value is None:
                value = "true" if value is True else "false" if value is False else ""
            if not isinstance(value, (str, int, float)) or not re.fullmatch(r"[\t\x20-\x7e\x80-\xff]*", str(value)):
                # HTTP/1.1 carries header values as single lines of Latin-1 text
                self.report(raw.at(name), f"the value of header {name!r} must be a single line of "
                                          "plain (Latin-1) text")
                continue
            result.append((name.lower(), str(value)))
        return tuple(result)

    # small checks ----------------------------------------------------------------------------

    def known_keys(self, raw: YMap, allowed: Mapping[str, Any], where: str, ignore: str | None = None) -> None:
        for key in raw:
            if key in allowed or (ignore and isinstance(key, str) and key.startswith(ignore)):
                continue
            hint = ""
            close = _closest(key, tuple(allowed))
            if close is not None:
                hint = f"; did you mean `{close}`?"
                self.suggested.setdefault(id(raw), set()).add(close)
            elif isinstance(key, str):
                hint = _misplaced(key, where)
            self.report(raw.key_at(key), f"unknown key `{key}` {where}{hint}")

    def missing(self, raw: YMap, key: str | tuple[str, ...], pos: Pos, message: str) -> None:
        """Report a missing key, unless a misspelt key of `raw` was already taken for it."""
        wanted = {key} if isinstance(key, str) else set(key)
        if not wanted & self.suggested.get(id(raw), set()):
            self.report(pos, message)

    def string(self, value: Any, pos: Pos, name: str) -> Any:
        if isinstance(value, str):
            return value
        quote = "; quote it" if isinstance(value, (int, float)) else ""  # `42`, `yes`: YAML made them not text
        self.report(pos, f"`{name}` must be a string (got {_kind(value)}{quote})")
        return _MISSING

    def integer(self, value: Any, pos: Pos, name: str, minimum: int | None = None, maximum: int | None = None) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            self.report(pos, f"`{name}` must be a whole number (got {_kind(value)})")
            return _MISSING
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
            self.report(pos, f"`{name}` must be {bounds} (got {value})")
            return _MISSING
        return value

    def string_list(self, value: Any, pos: Pos, name: str) -> Any:
        if isinstance(value, YList) and all(isinstance(v, str) for v in value):
            return list(value)
        self.report(pos, f"`{name}` must be a list of strings")
        return _MISSING

    @staticmethod
    def choice_message(key: str, value: Any, choices: tuple[str, ...]) -> str:
        options = ", ".join(choices)
        close = _closest(value, choices)
        hint = f"; did you mean `{close}`?" if close is not None else ""
        return f"`{key}` must be one of {options} (got {_shown(value)}){hint}"


def _closest(word: Any, choices: tuple[str, ...]) -> str | None:
    """The choice `word` most likely misspells (ignoring case), if any."""
    if not isinstance(word, str):
        return None
    lowered = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def _misplaced(key: str, where: str) -> str:
    """A hint for a key that is valid, but somewhere else."""
    if where == "at the top level":
        if key in keys.BEHAVIOUR:
            return "; to apply it to every rule, put it under `defaults:`"
        if key in keys.RULE:
            return "; rule keys go in a rule, inside the `responses:` list"
    elif where in ("in a step", "in `defaults`") and key in keys.RULE:
        return f"; only behaviour keys are allowed {where} (`{key}` is a key of the rule itself)"
    return ""


def _json_text(value: Any) -> str:
    """Tool call arguments given as a mapping, as the JSON text the API would send."""
    return json.dumps(_plain(value), ensure_ascii=False)


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else _kind(value)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
