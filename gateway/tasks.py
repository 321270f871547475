"""The gateway's Celery tasks (run eagerly in-process on embedded defaults)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from gateway import services

CHECK_UPSTREAMS_TASK = "gateway.check_upstreams"


@shared_task(name=CHECK_UPSTREAMS_TASK, ignore_result=False)
def check_upstreams(upstream_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Probe the upstreams' /health and /v1/models and store what was found."""
    results = services.check_upstreams(upstream_ids=upstream_ids)
    return [result.as_dict() for result in results]
