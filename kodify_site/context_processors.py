"""What every console page shows whatever its app: how the API authenticates, and
whether the journal records."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from accounts.auth import AuthMode, auth_mode


def console(request: HttpRequest) -> dict[str, Any]:
    mode = auth_mode()
    return {
        "kodify_auth_mode": mode.value,
        # The API answers anyone: every console page says so, in red.
        "kodify_api_open": mode is AuthMode.DUMMY,
        "kodify_journal_on": bool(settings.LOGS),
    }
