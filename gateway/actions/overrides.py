"""What the console changed for the assistant actions, as each worker keeps it in memory.

The database holds an administrator's templates and per-action defaults
(``gateway.models.ActionTemplate`` and ``ActionSetting``); a worker reads them with the
rest of the console's state (:class:`gateway.snapshot.GatewaySnapshot`) when the
configuration stamp moves, so a request looks them up in a dict, never in the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.actions.templates import Template


@dataclass(frozen=True, slots=True)
class ActionDefaults:
    """What an action's request gets when it sets none itself (None: nothing added)."""

    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None

    def fill(self, body: dict[str, Any], *, model: bool) -> bool:
        """Add to a chat request's ``body`` what it does not set itself; True when
        something was added.  ``model``: the model too (an action model's chat names its
        model in the action model's name, so it keeps that one)."""
        added = False
        if model and self.model is not None and body.get("model") is None:
            body["model"] = self.model
            added = True
        if self.temperature is not None and body.get("temperature") is None:
            body["temperature"] = self.temperature
            added = True
        if (
            self.max_tokens is not None
            and body.get("max_tokens") is None
            and body.get("max_completion_tokens") is None
        ):
            body["max_tokens"] = self.max_tokens
            added = True
        return added


NO_DEFAULTS = ActionDefaults()


@dataclass(frozen=True)
class ActionOverrides:
    # By (action, language id, or "" for the generic template): see template_key.
    templates: Mapping[tuple[str, str], Template] = field(
        default_factory=lambda: MappingProxyType({})
    )
    defaults: Mapping[str, ActionDefaults] = field(default_factory=lambda: MappingProxyType({}))

    def defaults_for(self, action: str) -> ActionDefaults:
        return self.defaults.get(action, NO_DEFAULTS)
