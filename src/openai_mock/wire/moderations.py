"""`POST /v1/moderations`: the moderation object, one result per input."""

from __future__ import annotations

from typing import Any

from ..options import ModerationOptions
from ..plan import Plan
from ..scenario.model import MODERATION_CATEGORIES, Moderation

# the categories whose score also reads images (spec: category_applied_input_types)
IMAGE_CATEGORIES = frozenset((
    "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "violence", "violence/graphic",
))
FLAGGED_SCORE = 0.9
CALM_SCORE = 1e-06  # what the real API gives harmless text: close to, never exactly, zero


def result(verdict: Moderation | None, input_types: tuple[str, ...] = ("text",)) -> dict[str, Any]:
    flagged = set(verdict.categories) if verdict is not None else set()
    given = dict(verdict.scores) if verdict is not None else {}
    return {
        "flagged": bool(flagged),
        "categories": {c: c in flagged for c in MODERATION_CATEGORIES},
        "category_scores": {
            c: given.get(c, FLAGGED_SCORE if c in flagged else CALM_SCORE) for c in MODERATION_CATEGORIES
        },
        "category_applied_input_types": {
            c: [t for t in input_types if t == "text" or c in IMAGE_CATEGORIES] for c in MODERATION_CATEGORIES
        },
    }


def body(plan: Plan) -> dict[str, Any]:
    options = plan.options_of(ModerationOptions)
    verdicts = plan.verdicts
    types = options.input_types or (("text",),) * len(verdicts)
    return {"id": plan.id, "model": plan.model,
            "results": [result(v, t) for v, t in zip(verdicts, types, strict=True)]}
