"""The ``GET /health`` report: the server is up; each upstream's state."""

from __future__ import annotations

import os
from typing import Any

from accounts.auth import auth_mode
from gateway.upstreams import UpstreamTable
from kodify_site import __version__


def report(table: UpstreamTable) -> dict[str, Any]:
    upstreams = table.health()
    return {
        "status": "ok",
        "version": __version__,
        "auth_mode": auth_mode().value,
        "upstreams_healthy": sum(1 for u in upstreams if u["healthy"]),
        "upstreams_total": len(upstreams),
        "upstreams": upstreams,
        # Each worker process keeps its own view of the upstreams: say whose this is, and
        # which state of the console it has applied (the stamp moves with every change).
        "worker": os.getpid(),
        "console_version": table.console_version,
    }
