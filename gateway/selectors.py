"""Reads on upstreams, served models and the gateway's settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import DatabaseError, close_old_connections, connections
from django.db.models import Max

from accounts.redis_outage import settings_redis_failed
from gateway import config_file
from gateway.actions.overrides import ActionDefaults, ActionOverrides
from gateway.actions.templates import Template
from gateway.config_file import GatewayConfig, load_config
from gateway.models import (
    AFFINITY_ON,
    SETTING_PK,
    ActionSetting,
    ActionTemplate,
    GatewaySetting,
    ServedModel,
    UpstreamServer,
)
from gateway.snapshot import (
    CONFIG_VERSION_KEY,
    HEALTH_VERSION_KEY,
    GatewaySnapshot,
    UpstreamRow,
)

logger = logging.getLogger("kodify.upstreams")

# The django-celery-beat schedule created by migration 0002 (editable in the console).
CHECK_UPSTREAMS_SCHEDULE = "Check upstream health"


class SnapshotUnavailable(Exception):
    """The database cannot give a snapshot (its tables are missing, it is unreachable)."""


def config_version() -> str:
    return str(cache.get(CONFIG_VERSION_KEY) or "")


def health_version() -> str:
    return str(cache.get(HEALTH_VERSION_KEY) or "")


def gateway_snapshot() -> GatewaySnapshot:
    """Everything a worker's upstream table needs, in three queries (sync: call it in a
    thread).  Raises :class:`SnapshotUnavailable` when the database cannot answer."""
    # Read before the rows: a write that lands in between bumps the stamp past these, so
    # the worker reloads once more rather than keeping a stale table under a new stamp.
    try:
        versions = cache.get_many([CONFIG_VERSION_KEY, HEALTH_VERSION_KEY])
    except Exception as exc:
        if not settings_redis_failed(exc, where="reading the upstream versions"):
            raise
        versions = {}  # Redis is down, not the database: load the rows, stamp unknown
    try:
        upstreams = tuple(
            upstream_row(u) for u in UpstreamServer.objects.order_by("position", "id")
        )
        preprocessing, affinity = model_choices()
        setting = GatewaySetting.objects.filter(pk=SETTING_PK).first()
        action_overrides = actions_in_force()
    except DatabaseError as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SnapshotUnavailable(
            f"cannot read the upstreams from the database: {first_line}"
        ) from exc
    return GatewaySnapshot(
        upstreams=upstreams,
        model_preprocessing=preprocessing,
        model_affinity=affinity,
        max_n=setting.max_n if setting else None,
        default_max_tokens=setting.default_max_tokens if setting else None,
        tabby_model_name=(setting.tabby_model_name or None) if setting else None,
        actions=action_overrides,
        config_version=str(versions.get(CONFIG_VERSION_KEY) or ""),
        health_version=str(versions.get(HEALTH_VERSION_KEY) or ""),
    )


def snapshot_or_none() -> GatewaySnapshot | None:
    """:func:`gateway_snapshot` for a worker's follower thread: None when the database
    cannot answer (the worker keeps its table), and this thread's connection closed after
    (the threads of the pool come and go)."""
    close_old_connections()
    try:
        return gateway_snapshot()
    except (DatabaseError, SnapshotUnavailable) as exc:
        logger.debug("no upstream snapshot from the database: %s", exc)
        return None
    finally:
        connections.close_all()


def actions_in_force() -> ActionOverrides:
    """The console's action templates and defaults, for the workers (two queries).

    A row that does not format (written past the model's checks: ``update()``, SQL) is
    left out with a warning: the shipped template serves rather than a 400 for every
    request.
    """
    templates = {}
    for row in ActionTemplate.objects.all():
        try:
            row.clean()
        except ValidationError as exc:
            logger.warning("action template %s is ignored: %s", row, "; ".join(exc.messages))
            continue
        templates[(row.action, row.language)] = Template(system=row.system, user=row.user)
    defaults = {
        row.action: ActionDefaults(
            model=row.model or None, temperature=row.temperature, max_tokens=row.max_tokens
        )
        for row in ActionSetting.objects.all()
    }
    return ActionOverrides(
        templates=MappingProxyType(templates), defaults=MappingProxyType(defaults)
    )


def action_template_ids() -> dict[tuple[str, str], int]:
    """The console's templates by (action, language): which pairs have one, for its grid."""
    rows = ActionTemplate.objects.values_list("action", "language", "pk")
    return {(action, language): pk for action, language, pk in rows}


def model_choices() -> tuple[dict[str, str], dict[str, bool]]:
    """The console's choices per served model, in one query: the preprocessing configs
    and the prefix-cache affinity switches, each only where one was made."""
    preprocessing: dict[str, str] = {}
    affinity: dict[str, bool] = {}
    chosen = ServedModel.objects.exclude(preprocessing="", prefix_affinity="")
    for name, config, switch in chosen.values_list("name", "preprocessing", "prefix_affinity"):
        if config:
            preprocessing[name] = config
        if switch:
            affinity[name] = switch == AFFINITY_ON
    return preprocessing, affinity


def upstream_row(upstream: UpstreamServer) -> UpstreamRow:
    return UpstreamRow(
        url=upstream.url,
        name=upstream.name,
        enabled=upstream.enabled,
        weight=upstream.weight,
        max_concurrent=upstream.max_concurrent,
        api_key=upstream.api_key or None,
        preprocessing=upstream.preprocessing,
        priority_scheduling=upstream.priority_scheduling,
        source=upstream.source,
        healthy=upstream.healthy,
        last_check=upstream.last_check,
        last_error=upstream.last_error,
        models=upstream.model_cards,
    )


def next_position() -> int:
    """The order that puts a new upstream after every other."""
    last = UpstreamServer.objects.aggregate(last=Max("position"))["last"]
    return 0 if last is None else last + 1


def file_config() -> GatewayConfig:
    """config.yml and KODIFY_UPSTREAMS as they are now (read afresh, unlike the cached
    ``gateway.config_file.gateway_config``).  Raises ``ConfigError``."""
    return load_config(
        settings.KODIFY_CONFIG, settings.KODIFY_CONFIG_SEARCH_PATH, settings.KODIFY_UPSTREAMS
    )


def gateway_setting() -> GatewaySetting:
    """The console's settings row; an unsaved one with nothing overridden when absent."""
    return GatewaySetting.objects.filter(pk=SETTING_PK).first() or GatewaySetting(pk=SETTING_PK)


@dataclass(frozen=True)
class EffectiveSetting:
    label: str
    value: str
    source: str  # where ``value`` comes from, in words


def effective_settings(
    setting: GatewaySetting | None = None, *, config: GatewayConfig | None = None
) -> list[EffectiveSetting]:
    """Each console setting's value in force and where it comes from.

    ``config``: config.yml as this process read it at start (the default), which is what
    the gateway applies.
    """
    setting = setting or gateway_setting()
    found: list[EffectiveSetting] = []

    if setting.max_n is not None:
        found.append(EffectiveSetting("MAX_N", str(setting.max_n), "console"))
    else:
        declared = settings.ENV_VARIABLES.get("MAX_N")
        default = declared.default if declared else ""
        where = "default" if str(settings.MAX_N) == default else "environment"
        found.append(
            EffectiveSetting("MAX_N", str(settings.MAX_N), f"{where} MAX_N={settings.MAX_N}")
        )

    if setting.default_max_tokens is not None:
        found.append(
            EffectiveSetting("default max_tokens", str(setting.default_max_tokens), "console")
        )
    else:
        found.append(
            EffectiveSetting(
                "default max_tokens",
                "none",
                "default: requests without max_tokens get the upstream's default",
            )
        )

    if setting.tabby_model_name:
        found.append(EffectiveSetting("Tabby model", setting.tabby_model_name, "console"))
    else:
        found.append(_tabby_from_file(config))
    return found


def _tabby_from_file(config: GatewayConfig | None) -> EffectiveSetting:
    label = "Tabby model"
    if config is None:
        try:
            config = config_file.gateway_config()
        except ValueError as exc:  # ConfigError; the start-up checks report it in full
            return EffectiveSetting(label, "unknown", f"config.yml cannot be read: {exc}")
    if config.tabby_model_name:
        where = f" in {config.path}" if config.path else ""
        return EffectiveSetting(
            label, config.tabby_model_name, f"config.yml tabby.model_name{where}"
        )
    return EffectiveSetting(
        label,
        "the first upstream's first model",
        "default: config.yml sets no tabby.model_name",
    )


@dataclass(frozen=True)
class Serving:
    """One upstream serving a model, as the model list shows it."""

    upstream: str
    healthy: bool | None
    enabled: bool
    max_model_len: int | None
    root: str  # the weights' path, "" when the upstream did not say


def serving_upstreams() -> dict[str, list[Serving]]:
    """Per model name, the upstreams that reported it in their last good check."""
    found: dict[str, list[Serving]] = {}
    rows = UpstreamServer.objects.order_by("position", "id").only(
        "url", "name", "healthy", "enabled", "models"
    )
    for upstream in rows:
        for name, card in upstream.model_cards.items():
            length: Any = card.get("max_model_len")
            root: Any = card.get("root")
            found.setdefault(name, []).append(
                Serving(
                    upstream=str(upstream),
                    healthy=upstream.healthy,
                    enabled=upstream.enabled,
                    max_model_len=length if isinstance(length, int) else None,
                    root=root if isinstance(root, str) else "",
                )
            )
    return found


def health_schedule() -> Any:
    """The beat schedule of the health checks (a django-celery-beat PeriodicTask), or None
    when an administrator deleted it."""
    from django_celery_beat.models import PeriodicTask

    return (
        PeriodicTask.objects.select_related("interval", "crontab")
        .filter(name=CHECK_UPSTREAMS_SCHEDULE)
        .first()
    )
