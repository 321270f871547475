"""The gateway's ASGI routes called in process, as a client would call the server.

``call`` sends one request through ``gateway.routing`` on the test's event loop and reads
the whole answer; ``fresh_gateway`` drops what the gateway cached (configuration, upstream
table, authenticator), so that a test's settings take effect.
"""

from __future__ import annotations

from typing import Any

import orjson
from channels.routing import URLRouter
from channels.testing import HttpCommunicator

from accounts import auth
from gateway import config_file, upstreams
from gateway.routing import http_urlpatterns

ROUTES = URLRouter(http_urlpatterns)


class Answer:
    def __init__(self, response: dict[str, Any]) -> None:
        self.status: int = response["status"]
        self.headers = {
            name.decode().lower(): value.decode() for name, value in response["headers"]
        }
        self.body: bytes = response["body"]

    def json(self) -> Any:
        return orjson.loads(self.body)

    def error(self) -> dict[str, Any]:
        error = self.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        return dict(error)


async def call(
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    *,
    client: tuple[str, int] | None = None,
) -> Answer:
    """``client``: the peer's address and port (none given: a peer of unknown address)."""
    raw = body if isinstance(body, bytes) else b"" if body is None else orjson.dumps(body)
    sent = [(name.encode(), value.encode()) for name, value in (headers or {}).items()]
    if body is not None:
        sent.append((b"content-type", b"application/json"))
    communicator = HttpCommunicator(ROUTES, method, path, body=raw, headers=sent)
    if client is not None:
        communicator.scope["client"] = client
    return Answer(await communicator.get_response(timeout=30))


def fresh_gateway() -> None:
    config_file.gateway_config.cache_clear()
    upstreams.get_table.cache_clear()
    auth.get_authenticator.cache_clear()
