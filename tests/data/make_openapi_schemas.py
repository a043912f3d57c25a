#!/usr/bin/env python3
"""Generate tests/data/openapi_schemas.json from OpenAI's OpenAPI spec.

Usage:
    python tests/data/make_openapi_schemas.py /path/to/openai-openapi.yaml [OUT]

OUT defaults to openapi_schemas.json next to this script.  Only pyyaml and
the stdlib are used.

The selected schemas from ``components.schemas`` plus everything they
reference transitively (``$ref: '#/components/schemas/X'``) are copied
unchanged, except that refs are rewritten to ``#/schemas/X`` so the output
file can serve as the root document for a JSON Schema validator.
"""
import json
import re
import sys
from pathlib import Path

import yaml

# Date of the spec snapshot (not recorded inside the spec itself).
SPEC_DATE = "2026-08-21"

# Top-level schemas wanted; names not present in the spec are skipped.
ROOTS = [
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "Response",
    "ResponseStreamEvent",
    "ResponseCreatedEvent",
    "ResponseInProgressEvent",
    "ResponseCompletedEvent",
    "ResponseFailedEvent",
    "ResponseIncompleteEvent",
    "ResponseErrorEvent",
    "ResponseOutputItemAddedEvent",
    "ResponseOutputItemDoneEvent",
    "ResponseContentPartAddedEvent",
    "ResponseContentPartDoneEvent",
    "ResponseTextDeltaEvent",
    "ResponseTextDoneEvent",
    "ResponseFunctionCallArgumentsDeltaEvent",
    "ResponseFunctionCallArgumentsDoneEvent",
    "CreateEmbeddingResponse",
    "CreateCompletionResponse",
    "CreateModerationResponse",
    "ListModelsResponse",
    "Model",
    "ErrorResponse",
    "DeleteModelResponse",
    # DELETE /v1/responses/{id}: candidates, used only if the spec has them.
    "DeleteResponseResponse",
    "DeletedResponse",
    "ResponseDeleted",
    # Request bodies of the five generation endpoints: the shapes tests/test_fuzz.py builds from.
    "CreateChatCompletionRequest",
    "CreateResponse",
    "CreateCompletionRequest",
    "CreateEmbeddingRequest",
    "CreateModerationRequest",
]

SRC_PREFIX = "#/components/schemas/"
DST_PREFIX = "#/schemas/"


def _make_loader():
    """A C-accelerated safe loader with YAML 1.2-like scalar resolution.

    PyYAML implements YAML 1.1: it turns ``yes``/``no``/``on``/``off`` into
    booleans and ``2024-10-01`` into ``datetime.date``.  OpenAPI 3.1 documents
    are YAML 1.2 / JSON, so keep only true/false as booleans and leave
    timestamps as strings.
    """
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):
        pass

    resolvers = {}
    for ch, entries in base.yaml_implicit_resolvers.items():
        resolvers[ch] = [
            (tag, rx) for tag, rx in entries
            if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
        ]
    Loader.yaml_implicit_resolvers = resolvers
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
        list("tTfF"),
    )
    return Loader


def _refs(node):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(SRC_PREFIX):
            yield ref[len(SRC_PREFIX):]
        for v in node.values():
            yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def _rewrite(node):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                if not v.startswith(SRC_PREFIX):
                    raise ValueError(f"unsupported $ref: {v}")
                v = DST_PREFIX + v[len(SRC_PREFIX):]
            else:
                v = _rewrite(v)
            out[k] = v
        return out
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    return node


def build(spec_path):
    with open(spec_path, "rb") as f:
        spec = yaml.load(f, Loader=_make_loader())
    all_schemas = spec["components"]["schemas"]

    roots = [n for n in ROOTS if n in all_schemas]
    # Every individual event of the ResponseStreamEvent union is a root too.
    if "ResponseStreamEvent" in all_schemas:
        for n in _refs(all_schemas["ResponseStreamEvent"]):
            if n not in roots:
                roots.append(n)

    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in all_schemas:
            raise KeyError(f"dangling $ref to {name}")
        seen.add(name)
        todo.extend(_refs(all_schemas[name]))

    for name in seen:
        if "/" in name or "~" in name:
            raise ValueError(f"schema name needs JSON-pointer escaping: {name}")

    info = spec.get("info", {})
    return {
        "source": (
            f"{Path(spec_path).name} (OpenAI OpenAPI {spec.get('openapi')}, "
            f"info.version {info.get('version')}, dated {SPEC_DATE}); "
            "definitions copied unchanged from components.schemas, with "
            "'#/components/schemas/X' refs rewritten to '#/schemas/X'. "
            "Regenerate with make_openapi_schemas.py."
        ),
        "schemas": {n: _rewrite(all_schemas[n]) for n in sorted(seen)},
    }


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(f"usage: {argv[0]} SPEC.yaml [OUT.json]")
    out = Path(argv[2]) if len(argv) == 3 else Path(__file__).with_name("openapi_schemas.json")
    data = build(argv[1])
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(data['schemas'])} schemas")


if __name__ == "__main__":
    main(sys.argv)
