"""Who counts as the server's operator on the public port: a client on this machine, or
one that shows the metrics token.  Such callers may read what others must not (upstream
addresses in ``/health``, the metrics).
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from django.conf import settings

from accounts.auth import AuthenticationFailed, bearer_token

# Headers a reverse proxy adds: their presence means the loopback peer is only a relay.
FORWARDING_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip")


def from_this_machine(scope: dict[str, Any]) -> bool:
    """A loopback peer, not relaying anyone (no proxy's forwarding header)."""
    client = scope.get("client")
    if not client or not _is_loopback(str(client[0])):
        return False
    return not any(key in FORWARDING_HEADERS for key, _ in scope["headers"])


def shows_metrics_token(authorization: bytes | None) -> bool:
    token: str | None = settings.KODIFY_METRICS_TOKEN
    if not token:
        return False
    try:
        given = bearer_token(authorization)
    except AuthenticationFailed:
        return False
    return hmac.compare_digest(given, token.encode())


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:  # a Unix socket's path, or no address at all
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
