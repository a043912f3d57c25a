"""`GET /v1/models`: model objects."""

from __future__ import annotations

from typing import Any

# (id, created, owned_by) as the real API lists them
BUILT_IN = (
    ("gpt-4o", 1715367049, "system"),
    ("gpt-4o-mini", 1721172741, "system"),
    ("gpt-4.1", 1744316542, "system"),
    ("gpt-4.1-mini", 1744318173, "system"),
    ("gpt-4.1-nano", 1744321707, "system"),
    ("gpt-5", 1754425777, "system"),
    ("gpt-5-mini", 1754425928, "system"),
    ("gpt-4", 1687882411, "openai"),
    ("gpt-3.5-turbo", 1677610602, "openai"),
    ("o3-mini", 1737146383, "system"),
    ("text-embedding-3-small", 1705948997, "system"),
    ("text-embedding-3-large", 1705953180, "system"),
    ("text-embedding-ada-002", 1671217299, "openai-internal"),
    ("omni-moderation-latest", 1731689265, "system"),
)
CONFIGURED_CREATED = 1700000000


def model_object(model_id: str, created: int = CONFIGURED_CREATED, owned_by: str = "system") -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


def catalogue(extra: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Every model the mock knows: the built-in ones and the configuration's, by id."""
    models = {model_id: model_object(model_id, created, owner) for model_id, created, owner in BUILT_IN}
    for model_id in extra:
        models.setdefault(model_id, model_object(model_id))
    return models


def model_list(models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": list(models.values())}
