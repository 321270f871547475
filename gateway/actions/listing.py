"""The action models ``GET /v1/models`` lists beside each served model.

An OpenAI-compatible plugin lets its user add a model by name and sends chat to it; a
name such as ``qwen2.5-coder-7b:explain`` thus gives that plugin the server's own
"explain" action, template and journal feature included, with no change to the plugin.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

ACTION_DESCRIPTIONS = {
    "docs": "documents the code in the last message",
    "fix": "finds and fixes the bugs of the code in the last message",
    "tests": "writes unit tests for the code in the last message",
    "explain": "explains the code in the last message",
}


def action_cards(cards: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One card per served model and action, after the served models' own."""
    from gateway.actions import ACTIONS

    found = []
    for card in cards:
        model = card.get("id")
        if not isinstance(model, str):
            continue
        length = card.get("max_model_len")
        for action in ACTIONS:
            found.append(
                {
                    "id": f"{model}:{action}",
                    "object": "model",
                    "created": card.get("created", 0),
                    "owned_by": "kodify",
                    "root": card.get("root", model),
                    "parent": model,
                    **({"max_model_len": length} if isinstance(length, int) else {}),
                    "kodify_action": action,
                    "description": f"{model}: {ACTION_DESCRIPTIONS[action]}",
                }
            )
    return found
