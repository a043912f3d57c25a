"""`openai-mock schema`: a JSON Schema (draft 2020-12) of scenario files, for editors.

It must be a valid schema, accept every file the loader accepts that the project ships or
documents, and reject bad files the way `openai-mock check` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from openai_mock.scenario import ConfigError, load

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "tests" / "data" / "seed"
BUNDLED = ROOT / "scenarios"
ALL_KEYS = ROOT / "tests" / "data" / "all_keys.yaml"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "openai_mock", "schema"], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def test_it_is_a_valid_draft_2020_12_schema(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft202012Validator
    # every reference resolves
    validator = jsonschema.Draft202012Validator(schema)
    for name in schema["$defs"]:
        validator.evolve(schema={"$ref": f"#/$defs/{name}"}).is_valid({})


def _documents() -> list[tuple[str, Any]]:
    documents = [(path.name, yaml.safe_load(path.read_text())) for path in sorted(BUNDLED.glob("*.yaml"))]
    for path in sorted(SEED.glob("*.yaml")):
        documents += [(f"{path.stem}-{i}", doc) for i, doc in enumerate(yaml.safe_load_all(path.read_text()))]
    documents.append((ALL_KEYS.name, yaml.safe_load(ALL_KEYS.read_text())))
    return documents


GOOD = _documents()


def test_the_good_documents_are_all_there() -> None:
    assert sum(name.endswith(".yaml") for name, _ in GOOD) >= 5  # bundled files and all_keys.yaml
    assert sum(not name.endswith(".yaml") for name, _ in GOOD) >= 10  # seed documents


@pytest.mark.parametrize(("name", "document"), GOOD, ids=[name for name, _ in GOOD])
def test_bundled_seed_and_all_keys_documents_validate(validator: jsonschema.Draft202012Validator,
                                                      name: str, document: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    load(document)  # and the loader agrees


def _rule(**fields: Any) -> dict[str, Any]:
    return {"responses": [{"id": "r", "matcher": {"type": "any"}, "reply": "x", **fields}]}


def _flow(*turns: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"responses": [{"id": "r", "messages": list(turns), **fields}]}


USER = {"role": "user", "content": "hi"}
ANSWER = {"role": "assistant", "content": "hello"}

BAD = {
    "unknown top-level key": {"respones": []},
    "an alias with its name": {"apiKey": "a", "api_key": "a"},
    "unknown key in a rule": _rule(delay=3),
    "unknown key in a turn": _flow({"role": "user", "contnet": "hi"}, ANSWER),
    "unknown key in a step": _rule(steps=[{"lateny_ms": 4}]),
    "delay_ms as text": _rule(delay_ms="fast"),
    "content as a number": _flow({"role": "user", "content": 42}, ANSWER),
    "steps not a list": _rule(steps=3),
    "empty steps": _rule(steps=[]),
    "unknown matcher type": {"responses": [{"id": "r", "matcher": {"type": "contain", "messages": [USER]},
                                            "reply": "x"}]},
    "unknown failure": _rule(failure="disconect"),
    "unknown role": _flow({"role": "usr", "content": "hi"}, ANSWER),
    "missing id": {"responses": [{"matcher": {"type": "any"}, "reply": "x"}]},
    "neither messages nor matcher": {"responses": [{"id": "r", "description": "nothing"}]},
    "a reply without a matcher": {"responses": [{"id": "r", "reply": "x"}]},
    "a matcher without a reply": {"responses": [{"id": "r", "matcher": {"type": "any"}}]},
    "both forms": {"responses": [{"id": "r", "messages": [USER, ANSWER], "reply": "x"}]},
    "threshold out of range": _flow({**USER, "matcher": "fuzzy", "threshold": 1.5}, ANSWER),
    "threshold on a non-fuzzy turn": _flow({**USER, "threshold": 0.5}, ANSWER),
    "threshold on a non-fuzzy matcher": {"responses": [{"id": "r", "reply": "x", "matcher": {
        "type": "contains", "threshold": 0.5, "messages": [USER]}}]},
    "a compared turn without content": _flow({"role": "user", "matcher": "contains"}, ANSWER),
    "an assistant turn that says nothing": _flow(USER, {"role": "assistant"}),
    "tool_call_id on a user turn": _flow({**USER, "tool_call_id": "call_1"}, ANSWER),
    "a bad header name": _rule(headers={"bad header": "x"}),
    "a framing header": _rule(headers={"Content-Length": "3"}),
    "a header value on two lines": _rule(headers={"x-a": "a\nb"}),
    "error status out of range": _rule(error={"status": 200}),
    "error status number out of range": _rule(error=700),
    "content_type without body": _rule(error={"status": 502, "content_type": "text/html"}),
    "cycle without steps": _rule(cycle=True),
    "a fault on a rule with steps": _rule(error={"status": 500}, steps=[{}, {"error": 429}]),
    "flow_reply on the matcher form": _rule(flow_reply="last"),
    "a bad origin": {"cors": {"origins": ["https://app.example/"]}},
    "port out of range": {"port": 70000},
    "a response without choices": {"responses": [{"id": "r", "matcher": {"type": "any"},
                                                  "response": {"id": "chatcmpl-1"}}]},
    "a tool call without an id": _flow(USER, {"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}),
    "a matcher without messages": {"responses": [{"id": "r", "matcher": {"type": "exact"}, "reply": "x"}]},
}


@pytest.mark.parametrize("document", BAD.values(), ids=list(BAD))
def test_bad_documents_are_rejected_by_the_schema_and_the_loader(
        validator: jsonschema.Draft202012Validator, document: Any) -> None:
    assert not validator.is_valid(document)
    with pytest.raises(ConfigError):
        load(document)


def test_the_bad_documents_differ_from_a_good_one_only_in_the_fault(validator: jsonschema.Draft202012Validator) -> None:
    # the builders above make valid documents when given nothing wrong
    for document in (_rule(), _flow(USER, ANSWER), _rule(steps=[{}, {"error": 429}], cycle=True),
                     _flow({"role": "user", "content": "hi", "matcher": "fuzzy", "threshold": 0.5}, ANSWER)):
        assert validator.is_valid(document), document
        assert load(document).rules



# What a generic validator's best error says (jsonschema's best_match, as editors and CI tools
# pick one): the mistake as a person would name it, at its place.
BEST = {
    "a matcher without a reply": ({"responses": [{"id": "r", "matcher": {"type": "any"}}]},
                                  ["responses", 0], "'reply' is a required property"),
    "a reply without a matcher": ({"responses": [{"id": "r", "reply": "x"}]},
                                  ["responses", 0], "'matcher' is a required property"),
    "a response without a matcher": ({"responses": [{"id": "r", "response": {"choices": []}}]},
                                     ["responses", 0], "'matcher' is a required property"),
    "a moderation rule without a matcher": ({"responses": [{"id": "r", "moderation": {"categories": []}}]},
                                            ["responses", 0], "'matcher' is a required property"),
    "a top-level typo": ({"respones": []}, [], "'respones' is not one of ['apiKey', 'api_key', 'port', 'seed', "
                                               "'cors', 'allowed_hosts', 'defaults', 'models', 'responses', 'scenarios']"),
    "a rule typo": (_rule(delay=3), ["responses", 0], "Additional properties are not allowed ('delay' was unexpected)"),
    "a rule typo in a bare list": ([{"id": "r", "matcher": {"type": "any"}, "reply": "x", "delay": 3}], [0],
                                   "Additional properties are not allowed ('delay' was unexpected)"),
    "a flow with a reply too": (_flow(USER, ANSWER, reply="x"), ["responses", 0],
                                "Additional properties are not allowed ('reply' was unexpected)"),
    "a reply with a response too": (_rule(response={"choices": []}), ["responses", 0],
                                    "Additional properties are not allowed ('reply' was unexpected)"),
    "flow_reply on the matcher form": (_rule(flow_reply="last"), ["responses", 0],
                                       "Additional properties are not allowed ('flow_reply' was unexpected)"),
    "a turn typo": (_flow({"role": "user", "contnet": "hi"}, ANSWER), ["responses", 0, "messages", 0],
                    "Additional properties are not allowed ('contnet' was unexpected)"),
    "a value of the wrong type": (_rule(delay_ms="soon"), ["responses", 0, "delay_ms"], "'soon' is not of type 'number'"),
}


@pytest.mark.parametrize(("document", "path", "message"), BEST.values(), ids=list(BEST))
def test_the_best_match_names_the_mistake(validator: jsonschema.Draft202012Validator, document: Any,
                                          path: list[Any], message: str) -> None:
    best = jsonschema.exceptions.best_match(validator.iter_errors(document))
    assert best is not None
    assert (list(best.absolute_path), best.message) == (path, message)
    with pytest.raises(ConfigError):
        load(document if isinstance(document, dict) else yaml.safe_dump(document))  # (the loader refuses it too)


def test_each_form_of_a_rule_lists_the_keys_it_needs(schema: dict[str, Any]) -> None:
    forms = {name: (form["required"], form["additionalProperties"]) for name, form in schema["$defs"].items()
             if name.endswith("Rule")}
    assert forms == {"flowRule": (["messages"], False), "moderationRule": (["matcher", "moderation"], False),
                     "recordedRule": (["matcher", "recorded"], False), "responseRule": (["matcher", "response"], False),
                     "replyRule": (["matcher", "reply"], False)}
