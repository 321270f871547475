"""The console's home: each app's state in one place, read through the apps' selectors.

Nothing here may be slow at any journal size: today's figures come from the journal's
time index (one day's rows), the upstreams from their table (a handful of rows).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.auth import AuthMode, auth_mode


@dataclass(frozen=True)
class UpstreamState:
    name: str
    url: str
    enabled: bool
    healthy: bool | None  # None: never checked
    models: list[str]
    last_check: dt.datetime | None
    last_error: str


@dataclass(frozen=True)
class Overview:
    auth_mode: str
    api_open: bool
    journal_on: bool
    day: dt.date  # "today", a UTC day as the journal's filters count days
    upstreams: list[UpstreamState] = field(default_factory=list)
    today: dict[str, int] | None = None  # None: the journal is off or unreadable to this user
    today_error: str = ""


def overview(user: Any) -> Overview:
    from gateway.models import UpstreamServer  # the project may know its apps

    mode = auth_mode()
    day = timezone.now().astimezone(dt.UTC).date()
    upstreams = [
        UpstreamState(
            name=str(row),
            url=row.url,
            enabled=row.enabled,
            healthy=row.healthy,
            models=sorted(row.model_cards),
            last_check=row.last_check,
            last_error=row.last_error,
        )
        for row in UpstreamServer.objects.order_by("position", "id")
    ]
    today, error = None, ""
    if settings.LOGS and user.has_perm("journal.view_entry"):
        from django.db import DatabaseError

        from journal.selectors import day_summary

        try:
            today = day_summary(day)
        except DatabaseError as exc:  # the journal's own database may be away
            error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Overview(
        auth_mode=mode.value,
        api_open=mode is AuthMode.DUMMY,
        journal_on=bool(settings.LOGS),
        day=day,
        upstreams=upstreams,
        today=today,
        today_error=error,
    )
