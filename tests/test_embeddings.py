"""`/v1/embeddings` through the official Python SDK (which asks for base64 by default) and raw."""

from __future__ import annotations

import base64
import math
import struct

import openai
import pytest
from schema_check import validate

# embeddings need no rule: a configuration without one serves them
CONFIG = "responses: []\n"


@pytest.fixture
def server(servers):
    return servers(CONFIG)


def norm(vector) -> float:
    return math.sqrt(sum(v * v for v in vector))


def dot(a, b) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_sdk_default_asks_for_base64_and_gets_floats(server, session_id):
    client = server.client(session_id)
    result = client.embeddings.create(model="text-embedding-3-small", input="The food was delicious")
    (item,) = result.data
    assert isinstance(item.embedding, list) and len(item.embedding) == 1536
    assert all(isinstance(v, float) for v in item.embedding)
    assert norm(item.embedding) == pytest.approx(1.0, abs=1e-6)
    assert result.model == "text-embedding-3-small"
    assert result.usage.prompt_tokens == result.usage.total_tokens == 4
    # the SDK sent encoding_format base64 and the mock answered with base64 strings
    assert server.journal(session_id)[-1]["body"]["encoding_format"] == "base64"
    with server.http() as http:
        raw = http.post("/v1/embeddings", json={"model": "text-embedding-3-small",
                                                "input": "The food was delicious", "encoding_format": "base64"})
    encoded = raw.json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = struct.unpack("<1536f", base64.b64decode(encoded, validate=True))
    assert list(decoded) == item.embedding


def test_same_text_same_vector_different_text_different_vector(server):
    client = server.client()
    first = client.embeddings.create(model="text-embedding-3-small", input=["cat", "dog", "cat"]).data
    again = client.embeddings.create(model="text-embedding-3-small", input="cat").data[0]
    assert [d.index for d in first] == [0, 1, 2]
    assert first[0].embedding == first[2].embedding == again.embedding
    assert first[0].embedding != first[1].embedding
    assert abs(dot(first[0].embedding, first[1].embedding)) < 0.2  # unrelated directions


def test_explicit_float_is_returned_untouched(server):
    client = server.client()
    result = client.embeddings.create(model="text-embedding-3-small", input="hello", encoding_format="float")
    assert len(result.data[0].embedding) == 1536
    via_base64 = client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert result.data[0].embedding == via_base64.data[0].embedding
    with server.http() as http:
        raw = http.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hello",
                                                "encoding_format": "float"}).json()
        assert isinstance(raw["data"][0]["embedding"], list)
        validate(raw, "CreateEmbeddingResponse")
        absent = http.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "hello"}).json()
        assert absent == raw  # no encoding_format: floats, as the real API defaults


def test_base64_response_shape(server):
    with server.http() as http:
        body = http.post("/v1/embeddings", json={"model": "text-embedding-3-large", "input": ["a", "b"],
                                                 "encoding_format": "base64"}).json()
    assert body["object"] == "list"
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", 0), ("embedding", 1)]
    assert all(len(base64.b64decode(d["embedding"])) == 4 * 3072 for d in body["data"])
    assert set(body["usage"]) == {"prompt_tokens", "total_tokens"}


@pytest.mark.parametrize(("model", "size"), [
    ("text-embedding-3-small", 1536), ("text-embedding-3-large", 3072), ("text-embedding-ada-002", 1536),
    ("my-own-embedder", 1536),
])
def test_default_dimensions_by_model(server, model, size):
    result = server.client().embeddings.create(model=model, input="x")
    assert len(result.data[0].embedding) == size


def test_dimensions_shorten_the_vector(server):
    client = server.client()
    full = client.embeddings.create(model="text-embedding-3-large", input="shorten me").data[0].embedding
    short = client.embeddings.create(model="text-embedding-3-large", input="shorten me", dimensions=256)
    vector = short.data[0].embedding
    assert len(vector) == 256
    assert norm(vector) == pytest.approx(1.0, abs=1e-6)
    # as with the real text-embedding-3 models: the full vector's start, scaled back to unit length
    scale = norm(full[:256])
    assert vector == pytest.approx([v / scale for v in full[:256]], abs=1e-6)


def test_token_inputs(server):
    client = server.client()
    one = client.embeddings.create(model="text-embedding-3-small", input=[101, 2023, 102])
    assert len(one.data) == 1 and one.usage.prompt_tokens == 3
    many = client.embeddings.create(model="text-embedding-3-small", input=[[101, 2023], [7]])
    assert len(many.data) == 2 and many.usage.prompt_tokens == 3
    assert many.data[0].embedding != many.data[1].embedding
    assert client.embeddings.create(model="text-embedding-3-small", input=[[101, 2023, 102]]).data[0].embedding \
        == one.data[0].embedding


@pytest.mark.parametrize(("body", "param", "message"), [
    ({"input": "x"}, None, "you must provide a model parameter"),
    ({"model": "text-embedding-3-small"}, "input", "Missing required parameter: 'input'."),
    ({"model": "text-embedding-3-small", "input": ""}, None, "'$.input' is invalid."),
    ({"model": "text-embedding-3-small", "input": []}, None, "'$.input' is invalid."),
    ({"model": "text-embedding-3-small", "input": ["a", 1]}, None, "'$.input' is invalid."),
    ({"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"}, "encoding_format",
     "Invalid value: 'hex'. Supported values are: 'float' and 'base64'."),
    ({"model": "text-embedding-3-small", "input": "x", "dimensions": 0}, "dimensions", "below minimum value"),
    ({"model": "text-embedding-3-small", "input": "x", "dimensions": 4096}, "dimensions", "above maximum value"),
    ({"model": "text-embedding-ada-002", "input": "x", "dimensions": 256}, "dimensions",
     "This model does not support specifying dimensions."),
])
def test_bad_requests(server, body, param, message):
    with server.http() as http:
        response = http.post("/v1/embeddings", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error["message"]
    assert (error["param"], error["type"]) == (param, "invalid_request_error")


def test_sdk_raises_bad_request(server):
    with pytest.raises(openai.BadRequestError, match="does not support specifying dimensions"):
        server.client(max_retries=0).embeddings.create(model="text-embedding-ada-002", input="x", dimensions=8)
