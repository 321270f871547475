"""What the database says about the upstreams, in the shape the hot path needs.

The console and the health checks write the database; each worker reads a
:class:`GatewaySnapshot` (one query per table, in a thread) when the version stamps in the
cache change, and rebuilds its in-memory table from it.  Requests never query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.actions.overrides import ActionOverrides

# Cache keys of the version stamps: the configuration (console edits, imports) and the
# health (every health check).  A worker reloads when either differs from what it has.
CONFIG_VERSION_KEY = "gateway:config-version"
HEALTH_VERSION_KEY = "gateway:health-version"


@dataclass(frozen=True)
class UpstreamRow:
    url: str
    name: str = ""
    enabled: bool = True
    weight: float = 1.0
    max_concurrent: int = 0
    api_key: str | None = None  # None: the default key (KODIFY_UPSTREAM_API_KEY, VLLM_API_KEY)
    preprocessing: str = ""
    priority_scheduling: bool = False
    source: str = "console"  # "config.yml" (following the file) or "console"
    healthy: bool | None = None
    last_check: datetime | None = None
    last_error: str = ""
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # OpenAI cards by id


@dataclass(frozen=True)
class GatewaySnapshot:
    upstreams: tuple[UpstreamRow, ...] = ()
    # Per served model: its preprocessing config ("" or absent: the usual choice).
    model_preprocessing: dict[str, str] = field(default_factory=dict)
    # Per served model: prefix-cache affinity on or off (absent: KODIFY_PREFIX_AFFINITY).
    model_affinity: dict[str, bool] = field(default_factory=dict)
    # Console overrides; None: the environment's / config.yml's value stands.
    max_n: int | None = None
    default_max_tokens: int | None = None
    tabby_model_name: str | None = None
    # The console's action templates and per-action defaults (the shipped ones otherwise).
    actions: ActionOverrides = field(default_factory=ActionOverrides)
    config_version: str = ""
    health_version: str = ""
