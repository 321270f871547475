"""``GET /metrics``: the Prometheus exposition of every worker's metrics (gateway/metrics.py).

Who may read it (settings ``KODIFY_METRICS_TOKEN``, ``KODIFY_METRICS_PUBLIC``):

* with a token set, whoever sends ``Authorization: Bearer <token>``, and nobody else:
  401 without a token, 403 with another one;
* without a token, by default only a client on this machine (127.0.0.1 or ::1) that came
  with no proxy's forwarding header, so that a reverse proxy in front of Kodify does not
  publish the metrics by accident; 403 for the others;
* without a token and with ``KODIFY_METRICS_PUBLIC=true``, anyone.

Errors have the OpenAI shape, as everywhere in the public API.  The API's own token does
not open it: metrics show every user's traffic.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import ClassVar

from django.conf import settings

from accounts.auth import AuthenticationFailed, bearer_token
from gateway import metrics
from gateway.consumers import GatewayConsumer
from gateway.errors import OpenAIError
from gateway.operators import from_this_machine
from gateway.upstreams import get_table

_CHALLENGE = ((b"www-authenticate", b'Bearer realm="kodify-metrics"'),)


class MetricsConsumer(GatewayConsumer):
    """``GET /metrics``; protected by its own setting, not by the API's tokens."""

    methods: ClassVar[tuple[str, ...]] = ("GET",)
    needs_token = False

    async def handle(self, body: bytes) -> None:
        self.check_access()
        # Health is probed by each worker's refresh loop: make sure this one runs (a
        # server without lifespan events starts it with the first request).
        get_table().ensure_background_refresh()
        accept = self.header(b"accept")
        payload, content_type = await asyncio.to_thread(
            metrics.render, accept.decode("latin-1") if accept else None
        )
        await self.send_headers(
            status=200,
            headers=[
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                self.id_header(),
            ],
        )
        await self.send_body(payload)

    def check_access(self) -> None:
        token: str | None = settings.KODIFY_METRICS_TOKEN
        if token:
            try:
                given = bearer_token(self.header(b"authorization"))
            except AuthenticationFailed as exc:
                raise OpenAIError(
                    401,
                    f"{exc} /metrics needs the metrics token (KODIFY_METRICS_TOKEN).",
                    code=exc.code,
                    headers=_CHALLENGE,
                ) from None
            if not hmac.compare_digest(given, token.encode()):
                raise OpenAIError(
                    403,
                    "Wrong token for /metrics: it takes the metrics token "
                    "(KODIFY_METRICS_TOKEN), not an API token.",
                    code="invalid_metrics_token",
                )
            return
        if settings.KODIFY_METRICS_PUBLIC or from_this_machine(self.scope):
            return
        raise OpenAIError(
            403,
            "/metrics is served only to this machine. To scrape it from elsewhere, set "
            "KODIFY_METRICS_TOKEN and give Prometheus that token (or set "
            "KODIFY_METRICS_PUBLIC=true).",
            code="metrics_forbidden",
        )
