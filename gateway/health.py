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


# No enabled upstream: the server is up (still HTTP 200, so that no orchestrator restarts
# it for a configuration matter), but every API request would get 503, and the report
# says so instead of "ok".
NO_UPSTREAMS = "no_upstreams"
NO_UPSTREAMS_DETAIL = (
    "No upstream: every API request gets 503 until one is named in config.yml or "
    "KODIFY_UPSTREAMS, or added (or enabled) in the console."
)


def report(table: UpstreamTable, *, operator: bool) -> dict[str, Any]:
    upstreams = table.health()
    serving = any(u["enabled"] for u in upstreams)
    if not operator:
        upstreams = [{k: v for k, v in u.items() if k not in _OPERATORS_ONLY} for u in upstreams]
    return {
        "status": "ok" if serving else NO_UPSTREAMS,
        **({} if serving else {"detail": NO_UPSTREAMS_DETAIL}),
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
