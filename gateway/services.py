"""Writes on upstreams, served models and the gateway's settings, and the health checks.

Every write that changes what the gateway routes by bumps the configuration stamp
(:data:`gateway.snapshot.CONFIG_VERSION_KEY`) once it is committed, so every worker
reloads within a few seconds; the health checks bump only the health stamp.  Saves and
deletes bump through :mod:`gateway.signals`; writes that bypass signals (``update()``)
bump here.

Which source wins: config.yml (and KODIFY_UPSTREAMS) is imported at every start.  An
upstream whose source is "config.yml" follows the file (created, updated, deleted with
it); one saved in the console becomes "console" and the file no longer touches it, until
"Follow config.yml again" hands it back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, close_old_connections, connections, transaction
from django.utils import timezone

from gateway.config_file import GatewayConfig, UpstreamSpec
from gateway.models import (
    SETTING_PK,
    SOURCE_CONFIG,
    SOURCE_CONSOLE,
    ActionSetting,
    ActionTemplate,
    GatewaySetting,
    ServedModel,
    UpstreamServer,
)
from gateway.probing import (
    UpstreamProbeError,
    describe_failure,
    read_probe,
    without_credentials,
)
from gateway.snapshot import CONFIG_VERSION_KEY, HEALTH_VERSION_KEY

logger = logging.getLogger("kodify.upstreams")

# Probes run in threads; more than this many upstreams wait for a free one.
MAX_PROBE_THREADS = 16
# Stamps outlive any restart of the workers; Redis keeps them until they change.
VERSION_TTL = None


# -- version stamps ------------------------------------------------------------------------


def bump_config_version() -> str:
    return _bump(CONFIG_VERSION_KEY)


def bump_health_version() -> str:
    return _bump(HEALTH_VERSION_KEY)


def _bump(key: str) -> str:
    stamp = uuid.uuid4().hex
    cache.set(key, stamp, timeout=VERSION_TTL)
    return stamp


def config_changed() -> None:
    """Bump the configuration stamp once the current transaction commits (at once
    outside one): a worker that reloaded before the commit would keep the old rows under
    the new stamp."""
    transaction.on_commit(bump_config_version)


# -- config.yml --------------------------------------------------------------------------


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # source "console": the console wins

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


def _file_values(spec: UpstreamSpec, position: int) -> dict[str, Any]:
    """What the file decides for an upstream that follows it (the rest is the console's
    or the health checks')."""
    return {
        "name": spec.name,
        "enabled": spec.enabled,
        "weight": spec.weight,
        "api_key": spec.api_key or "",
        "preprocessing": spec.preprocessing,
        "max_concurrent": spec.max_concurrent,
        "priority_scheduling": spec.priority_scheduling,
        "position": position,
    }


@transaction.atomic
def import_config_upstreams(*, config: GatewayConfig) -> ImportResult:
    """Bring config.yml's upstreams (and KODIFY_UPSTREAMS') into the database.

    A URL not in the database is created (source "config.yml"); a "config.yml" row takes
    the file's values; a "config.yml" row whose URL left the file is deleted; a "console"
    row is left alone.  Rows are saved only when something differs, so a start with an
    unchanged file bumps nothing.  Safe when several workers start together.
    """
    result = ImportResult()
    in_file = {spec.url for spec in config.upstreams}
    for position, spec in enumerate(config.upstreams):
        values = _file_values(spec, position)
        upstream, created = UpstreamServer.objects.get_or_create(
            url=spec.url, defaults={**values, "source": SOURCE_CONFIG}
        )
        if created:
            result.created.append(spec.url)
            continue
        if upstream.source != SOURCE_CONFIG:
            result.kept.append(spec.url)
            continue
        changed = [name for name, value in values.items() if getattr(upstream, name) != value]
        if changed:
            for name in changed:
                setattr(upstream, name, values[name])
            upstream.save(update_fields=[*changed, "updated_at"])
            result.updated.append(spec.url)
    for upstream in UpstreamServer.objects.filter(source=SOURCE_CONFIG).exclude(url__in=in_file):
        upstream.delete()
        result.deleted.append(upstream.url)
    if result.changed:
        # The log, not the audit trail: that one records what people did in the console.
        logger.info(
            "config.yml upstreams imported: %d created, %d updated, %d deleted, %d left to "
            "the console",
            len(result.created),
            len(result.updated),
            len(result.deleted),
            len(result.kept),
        )
    return result


def follow_config_again(
    *, upstreams: Iterable[UpstreamServer], config: GatewayConfig, actor: Any = None
) -> tuple[list[UpstreamServer], list[UpstreamServer]]:
    """Hand upstreams back to config.yml and apply the file's values now.

    Returns (followed, not in the file): an upstream the file does not list stays with
    the console (following would delete it at the next start).
    """
    specs = {spec.url: (position, spec) for position, spec in enumerate(config.upstreams)}
    followed, missing = [], []
    with transaction.atomic():
        for upstream in upstreams:
            found = specs.get(upstream.url)
            if found is None:
                missing.append(upstream)
                continue
            position, spec = found
            for name, value in _file_values(spec, position).items():
                setattr(upstream, name, value)
            upstream.source = SOURCE_CONFIG
            upstream.save()
            followed.append(upstream)
            _audit(actor=actor, action="upstream.follows_config", target=upstream)
    return followed, missing


# -- console writes --------------------------------------------------------------------------


def save_upstream(
    *, upstream: UpstreamServer, changed: Collection[str] = (), actor: Any = None
) -> UpstreamServer:
    """Create or change an upstream from the console: it becomes source "console", so
    the next import leaves it alone.  ``changed``: the fields the form changed (for the
    audit trail; the key's value is never recorded)."""
    creating = upstream._state.adding
    upstream.source = SOURCE_CONSOLE
    upstream.full_clean()
    with transaction.atomic():
        upstream.save()
        details = {name: _shown(upstream, name) for name in changed}
        _audit(
            actor=actor,
            action="upstream.created" if creating else "upstream.changed",
            target=upstream,
            details=details,
        )
    return upstream


def delete_upstreams(*, upstreams: Iterable[UpstreamServer], actor: Any = None) -> list[str]:
    deleted = []
    with transaction.atomic():
        for upstream in upstreams:
            _audit(actor=actor, action="upstream.deleted", target=upstream)
            deleted.append(str(upstream))
            upstream.delete()
    return deleted


def set_upstreams_enabled(
    *, upstreams: Iterable[UpstreamServer], enabled: bool, actor: Any = None
) -> list[UpstreamServer]:
    """Enable or disable from the console (so the upstream becomes source "console")."""
    changed = []
    with transaction.atomic():
        for upstream in upstreams:
            if upstream.enabled == enabled:
                continue
            upstream.enabled = enabled
            upstream.source = SOURCE_CONSOLE
            upstream.save(update_fields=["enabled", "source", "updated_at"])
            changed.append(upstream)
            action = "upstream.enabled" if enabled else "upstream.disabled"
            _audit(actor=actor, action=action, target=upstream)
    return changed


def set_model_preprocessing(
    *, model: ServedModel, preprocessing: str, actor: Any = None
) -> ServedModel:
    return _set_model_setting(
        model=model,
        field="preprocessing",
        value=preprocessing,
        shown=preprocessing or "automatic",
        actor=actor,
    )


def set_model_affinity(
    *, model: ServedModel, prefix_affinity: str, actor: Any = None
) -> ServedModel:
    """The model's prefix-cache affinity: "on", "off" or "" (KODIFY_PREFIX_AFFINITY)."""
    return _set_model_setting(
        model=model,
        field="prefix_affinity",
        value=prefix_affinity,
        shown=prefix_affinity or "as KODIFY_PREFIX_AFFINITY",
        actor=actor,
    )


def _set_model_setting(
    *, model: ServedModel, field: str, value: str, shown: str, actor: Any
) -> ServedModel:
    """One console setting of a served model, validated, saved and audited (``shown``:
    the value as the audit trail words it); nothing when it does not change."""
    if getattr(model, field) == value:
        return model
    setattr(model, field, value)
    model.full_clean()
    with transaction.atomic():
        model.save(update_fields=[field])
        _audit(actor=actor, action="model.changed", target=model, details={field: shown})
    return model


def delete_models(*, models: Iterable[ServedModel], actor: Any = None) -> list[str]:
    deleted = []
    with transaction.atomic():
        for model in models:
            _audit(actor=actor, action="model.deleted", target=model)
            deleted.append(model.name)
            model.delete()
    return deleted


SETTING_FIELDS = ("max_n", "default_max_tokens", "tabby_model_name")


def update_gateway_setting(*, actor: Any = None, **values: Any) -> GatewaySetting:
    """Change the console's overrides (``max_n``, ``default_max_tokens``,
    ``tabby_model_name``; None or "" gives the value back to the environment/config.yml)."""
    unknown = set(values) - set(SETTING_FIELDS)
    if unknown:
        raise TypeError(f"unknown gateway settings: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        setting = GatewaySetting.objects.select_for_update().filter(pk=SETTING_PK).first()
        setting = setting or GatewaySetting(pk=SETTING_PK)
        changed = {}
        for name, value in values.items():
            if name == "tabby_model_name":
                value = (value or "").strip()
            if getattr(setting, name) != value:
                changed[name] = value
                setattr(setting, name, value)
        if changed:
            setting.full_clean()
            setting.save()
        if changed:
            _audit(actor=actor, action="settings.changed", target=setting, details=changed)
    return setting


def record_migrations_run(*, actor: Any, task_id: str | None = None) -> None:
    _audit(
        actor=actor,
        action="migrations.run",
        details={"task_id": task_id} if task_id else {"eager": True},
    )


# -- assistant actions: templates and defaults -----------------------------------------------
#
# Each save keeps a version (django-simple-history: who, when, why), leaves an audit event,
# and bumps the configuration stamp through gateway.signals, so every worker uses the new
# text from its next reload on.  No row: the shipped template and no defaults.

REVERTED_TO_SHIPPED = "reverted to the shipped template"


def save_action_template(
    *, template: ActionTemplate, actor: Any = None, reason: str = ""
) -> ActionTemplate:
    """Create or change an action's template; ``reason`` goes into its version."""
    return _save_versioned(template, actor=actor, reason=reason, event="action_template")


def revert_action_templates_to_shipped(
    *, templates: Iterable[ActionTemplate], actor: Any = None
) -> list[str]:
    """Give each action and language back to the shipped template: the row goes, so the
    next server upgrade's prompts reach it too; its versions stay, the last one saying
    who did this."""
    return _delete_versioned(
        templates, actor=actor, reason=REVERTED_TO_SHIPPED, event="action_template.shipped"
    )


def revert_action_template(*, version: Any, actor: Any = None) -> ActionTemplate:
    """Make an earlier version (a ``HistoricalActionTemplate``) the template in force, as a
    new version: the ones in between are kept.  Re-creates a row reverted to shipped."""
    template = ActionTemplate.objects.filter(pk=version.id).first() or ActionTemplate(
        pk=version.id, action=version.action, language=version.language
    )
    template.system, template.user = version.system, version.user
    return save_action_template(
        template=template, actor=actor, reason=reverted_reason(version.history_date)
    )


def reverted_reason(when: datetime) -> str:
    return f"reverted to the version of {timezone.localtime(when):%Y-%m-%d %H:%M:%S}"


def save_action_setting(
    *, setting: ActionSetting, actor: Any = None, reason: str = ""
) -> ActionSetting:
    """Create or change an action's defaults; ``reason`` goes into its version."""
    return _save_versioned(setting, actor=actor, reason=reason, event="action_setting")


def delete_action_settings(
    *, action_settings: Iterable[ActionSetting], actor: Any = None
) -> list[str]:
    """No defaults for these actions any more: requests get what they ask for."""
    return _delete_versioned(action_settings, actor=actor, reason="deleted", event="action_setting")


def _save_versioned(obj: Any, *, actor: Any, reason: str, event: str) -> Any:
    creating = obj._state.adding
    obj.full_clean()
    _mark_version(obj, actor=actor, reason=reason)
    obj.changed_by = _account(actor)
    with transaction.atomic():
        obj.save()
        _audit(
            actor=actor,
            action=f"{event}.created" if creating else f"{event}.changed",
            target=obj,
            details={"reason": reason} if reason else {},
        )
    return obj


def _delete_versioned(objs: Iterable[Any], *, actor: Any, reason: str, event: str) -> list[str]:
    deleted = []
    with transaction.atomic():
        for obj in objs:
            _mark_version(obj, actor=actor, reason=reason)
            _audit(actor=actor, action=f"{event}.deleted", target=obj)
            deleted.append(str(obj))
            obj.delete()
    return deleted


def _mark_version(obj: Any, *, actor: Any, reason: str) -> None:
    """What django-simple-history writes into the version this save or delete makes."""
    obj._history_user = _account(actor)
    obj._change_reason = reason[:100] or None  # its column's length


def _account(actor: Any) -> Any:
    """The console account behind ``actor``, or None (the API key, a shell)."""
    if actor is not None and getattr(actor, "is_authenticated", False) and actor.pk:
        return actor
    return None


def _shown(upstream: UpstreamServer, name: str) -> Any:
    value = getattr(upstream, name, None)
    if name == "api_key":
        return "set" if value else "cleared"
    if name == "url":
        return without_credentials(str(value))
    return value


def _audit(**kwargs: Any) -> None:
    from accounts.services import audit  # the console's one audit trail

    audit(**kwargs)


# -- health checks -------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """One upstream's health check."""

    upstream_id: int
    url: str  # without credentials: safe to log and show
    healthy: bool
    error: str
    models: dict[str, dict[str, Any]]  # OpenAI cards by id (empty when the check failed)
    checked_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "healthy": self.healthy,
            "error": self.error or None,
            "models": list(self.models),
            "checked_at": self.checked_at.isoformat(),
        }


def check_and_store_upstreams() -> bool:
    """:func:`check_upstreams` for a worker's follower thread (embedded defaults, where no
    Celery worker runs them): False when the results could not be stored."""
    close_old_connections()
    try:
        check_upstreams()
    except DatabaseError as exc:
        logger.debug("health checks not stored: %s", exc)
        return False
    finally:
        connections.close_all()
    return True


def check_upstreams(
    *, timeout: float | None = None, upstream_ids: Collection[int] | None = None
) -> list[CheckResult]:
    """Probe every enabled upstream (or those of ``upstream_ids``, enabled or not) and
    store what was found: health, last check and error, served models.

    Accepted as healthy as the gateway's own table does (``UpstreamTable._probe``):
    ``/health`` 200 (or 404: an OpenAI server without it) and an OpenAI model list from
    ``/v1/models``; 401/403 there means the key was refused.  A failed check keeps the
    models last seen.  Bumps the health stamp, and the configuration stamp only when a
    model appeared that had no :class:`ServedModel` row yet.

    ``timeout``: seconds each request may take (default: twice
    KODIFY_UPSTREAM_CONNECT_TIMEOUT, of which that much to connect).
    """
    rows = UpstreamServer.objects.order_by("position", "id")
    rows = (
        rows.filter(pk__in=upstream_ids) if upstream_ids is not None else rows.filter(enabled=True)
    )
    targets = list(rows.only("id", "url", "api_key", "healthy"))
    if not targets:
        return []
    connect = settings.KODIFY_UPSTREAM_CONNECT_TIMEOUT
    if timeout is None:
        limit = httpx.Timeout(connect * 2, connect=connect)  # as the gateway's own table
    else:
        limit = httpx.Timeout(timeout, connect=min(connect, timeout))
    default_key = settings.KODIFY_UPSTREAM_API_KEY or settings.VLLM_API_KEY
    workers = min(MAX_PROBE_THREADS, len(targets) * 2)
    with (
        httpx.Client(timeout=limit) as client,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kodify-health") as pool,
    ):
        # Both endpoints of every upstream at once: one slow upstream costs one timeout.
        pending = [
            (
                upstream,
                pool.submit(
                    _get, client, upstream.url + "/health", upstream.api_key or default_key
                ),
                pool.submit(
                    _get, client, upstream.url + "/v1/models", upstream.api_key or default_key
                ),
            )
            for upstream in targets
        ]
        results = [
            _judge(upstream, health.result(), listing.result())
            for upstream, health, listing in pending
        ]
    _store(targets, results)
    return results


def _get(client: httpx.Client, url: str, key: str | None) -> httpx.Response | Exception:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        return client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return exc


def _judge(
    upstream: UpstreamServer,
    health: httpx.Response | Exception,
    listing: httpx.Response | Exception,
) -> CheckResult:
    url = without_credentials(upstream.url)
    now = timezone.now()
    try:
        if isinstance(health, Exception):
            raise health
        if isinstance(listing, Exception):
            raise listing
        models = read_probe(health, listing)
    except (httpx.HTTPError, UpstreamProbeError, ValueError) as exc:
        return CheckResult(
            upstream_id=upstream.pk,
            url=url,
            healthy=False,
            error=describe_failure(exc),
            models={},
            checked_at=now,
        )
    return CheckResult(
        upstream_id=upstream.pk, url=url, healthy=True, error="", models=models, checked_at=now
    )


def _store(targets: list[UpstreamServer], results: list[CheckResult]) -> None:
    # update(), not save(): no signal, so no configuration stamp, and the source and
    # updated_at of the row stay what the console or the file made them.
    for upstream, result in zip(targets, results, strict=True):
        fields: dict[str, Any] = {
            "healthy": result.healthy,
            "last_check": result.checked_at,
            "last_error": result.error,
        }
        if result.healthy:
            fields["models"] = list(result.models.values())
        # The URL too: a result for an address changed meanwhile is not this row's.
        UpstreamServer.objects.filter(pk=upstream.pk, url=upstream.url).update(**fields)
        _log_transition(upstream.healthy, result)
    seen = {name for result in results if result.healthy for name in result.models}
    new = _record_models(seen, max((r.checked_at for r in results), default=timezone.now()))
    transaction.on_commit(bump_health_version)
    if new:
        logger.info("new served model(s): %s", ", ".join(sorted(new)))
        config_changed()


def _record_models(names: set[str], now: datetime) -> set[str]:
    if not names:
        return set()
    known = set(ServedModel.objects.filter(name__in=names).values_list("name", flat=True))
    new = names - known
    if new:
        # ignore_conflicts: two checks running at once may both find a model new.
        ServedModel.objects.bulk_create(
            [ServedModel(name=name, last_seen=now) for name in sorted(new)],
            ignore_conflicts=True,
        )
    ServedModel.objects.filter(name__in=names & known).update(last_seen=now)
    return new


def _log_transition(was: bool | None, result: CheckResult) -> None:
    if result.healthy and was is not True:
        logger.info(
            "upstream %s is up, serving %s", result.url, ", ".join(result.models) or "no model"
        )
    elif not result.healthy and was is not False:
        logger.warning("upstream %s is down (%s)", result.url, result.error)
