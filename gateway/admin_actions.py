"""What the console's buttons and actions do, and the messages they leave.

Writes go through :mod:`gateway.services` (version stamp, audit event); the health check
and the migrations run as Celery tasks, at once where Celery is eager (the embedded
defaults), else queued for a worker.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest

from gateway import selectors, services, tasks
from gateway.config_file import ConfigError
from gateway.models import UpstreamServer


def set_enabled(request: HttpRequest, queryset: QuerySet[UpstreamServer], *, enabled: bool) -> None:
    changed = services.set_upstreams_enabled(
        upstreams=queryset, enabled=enabled, actor=request.user
    )
    verb = "Enabled" if enabled else "Disabled"
    if changed:
        names = ", ".join(str(u) for u in changed)
        messages.success(
            request,
            f"{verb} {len(changed)} upstream(s): {names}. They are now console upstreams "
            "(config.yml no longer changes them).",
        )
    else:
        messages.info(
            request, f"Nothing to do: the selected upstreams were already {verb.lower()}."
        )


def follow_config_again(request: HttpRequest, queryset: QuerySet[UpstreamServer]) -> None:
    try:
        config = selectors.file_config()
    except ConfigError as exc:
        messages.error(request, f"config.yml cannot be read: {exc}")
        return
    followed, missing = services.follow_config_again(
        upstreams=queryset, config=config, actor=request.user
    )
    if followed:
        messages.success(
            request,
            f"{len(followed)} upstream(s) follow config.yml again, with its values now: "
            + ", ".join(str(u) for u in followed)
            + ".",
        )
    if missing:
        messages.warning(
            request,
            "Not in config.yml (or KODIFY_UPSTREAMS), so left to the console: "
            + ", ".join(str(u) for u in missing)
            + ". Following the file would delete them at the next start; delete them "
            "here if that is what you want.",
        )


def run_health_check(request: HttpRequest, *, upstream_ids: list[int] | None) -> None:
    """Run the health-check task: at once on embedded defaults (eager Celery), else
    queued for a Celery worker."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        queued = tasks.check_upstreams.delay(upstream_ids=upstream_ids)
        messages.info(
            request,
            f"Health check queued (task {queued.id}); the states below change once a Celery "
            "worker has run it. Reload the page in a few seconds.",
        )
        return
    outcome = tasks.check_upstreams.apply(kwargs={"upstream_ids": upstream_ids})
    if not outcome.successful():
        messages.error(request, f"The health check failed: {outcome.result}")
        return
    results: list[dict[str, Any]] = outcome.get()
    if not results:
        messages.info(request, "No enabled upstream to check.")
    for result in results:
        if result["healthy"]:
            served = ", ".join(result["models"]) or "no model"
            messages.success(request, f"{result['url']} is up, serving {served}.")
        else:
            messages.warning(request, f"{result['url']} is down: {result['error']}.")


def run_migrations_now(request: HttpRequest) -> dict[str, Any]:
    """Run or queue the migrations task; the run-migrations page's context for its answer."""
    from kodify_site.tasks import run_migrations

    if not settings.CELERY_TASK_ALWAYS_EAGER:
        queued = run_migrations.delay()
        services.record_migrations_run(actor=request.user, task_id=queued.id)
        return {"ran": True, "task_id": queued.id}
    services.record_migrations_run(actor=request.user)
    outcome = run_migrations.apply()
    if outcome.successful():
        return {"ran": True, "output": outcome.result, "succeeded": True}
    return {"ran": True, "output": str(outcome.result), "succeeded": False}
