"""The ``GET /health`` report: the server is up; each upstream's state.

Where the upstreams are, and their errors (which may quote addresses), is told only to
operators (``gateway.operators``): a load balancer needs the states, not the network.
"""

from __future__ import annotations

import os
from typing import Any

from accounts.auth import auth_mode
from gateway.upstreams import UpstreamTable
from kodify_site import __version__

_OPERATORS_ONLY = ("url", "error")


def report(table: UpstreamTable, *, operator: bool) -> dict[str, Any]:
    upstreams = table.health()
    if not operator:
        upstreams = [{k: v for k, v in u.items() if k not in _OPERATORS_ONLY} for u in upstreams]
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
