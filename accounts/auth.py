"""Who is calling the gateway: the hot-path authenticator for each auth mode.

The gateway asks ``get_authenticator().authenticate(authorization_header)`` once per
request and gets a :class:`Principal` or :class:`AuthenticationFailed`.  No mode queries
the database per request.  Modes (SPEC §4):

* dummy       MTSAI_AUTH false, no VLLM_API_KEY: anyone may call;
* one-token   MTSAI_AUTH false, VLLM_API_KEY set: everyone sends that key;
* per-user    MTSAI_AUTH true, AUTH_TYPE=DB: each user has tokens of their own.
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

from django.conf import settings


class AuthMode(enum.StrEnum):
    DUMMY = "dummy"
    ONE_TOKEN = "one-token"  # noqa: S105 - a mode name, not a secret
    PER_USER = "per-user"


def auth_mode() -> AuthMode:
    if settings.MTSAI_AUTH:
        return AuthMode.PER_USER
    if settings.VLLM_API_KEY:
        return AuthMode.ONE_TOKEN
    return AuthMode.DUMMY


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request, as the journal and the limits will see it."""

    mode: AuthMode
    user_id: int | None = None
    token_id: int | None = None
    username: str = ""
    allowed_models: frozenset[str] = field(default_factory=frozenset)


class AuthenticationFailed(Exception):
    """The request carries no valid credentials; ``str(exc)`` is safe to show the caller."""

    def __init__(self, message: str, code: str = "invalid_api_key") -> None:
        super().__init__(message)
        self.code = code


class Authenticator(Protocol):
    mode: AuthMode

    async def authenticate(self, authorization: bytes | None) -> Principal: ...


_BEARER = b"bearer "


def bearer_token(authorization: bytes | None) -> bytes:
    """The token of an ``Authorization: Bearer <token>`` header, or AuthenticationFailed."""
    if not authorization:
        raise AuthenticationFailed(
            "Missing API token: send the header 'Authorization: Bearer <token>'.",
            code="missing_api_key",
        )
    if authorization[:7].lower() != _BEARER:
        raise AuthenticationFailed(
            "Malformed Authorization header: expected 'Bearer <token>'.",
        )
    token = authorization[7:].strip()
    if not token:
        raise AuthenticationFailed("Empty API token after 'Bearer'.")
    return token


class DummyAuthenticator:
    mode = AuthMode.DUMMY
    _anyone = Principal(mode=AuthMode.DUMMY)

    async def authenticate(self, authorization: bytes | None) -> Principal:
        return self._anyone


class OneTokenAuthenticator:
    mode = AuthMode.ONE_TOKEN

    def __init__(self, key: str) -> None:
        self._key = key.encode()
        self._everyone = Principal(mode=AuthMode.ONE_TOKEN)

    async def authenticate(self, authorization: bytes | None) -> Principal:
        if hmac.compare_digest(bearer_token(authorization), self._key):
            return self._everyone
        raise AuthenticationFailed("Invalid API token.")


class PerUserAuthenticator:
    """Per-user tokens; until tokens can be issued, no token is valid."""

    mode = AuthMode.PER_USER

    async def authenticate(self, authorization: bytes | None) -> Principal:
        bearer_token(authorization)
        raise AuthenticationFailed("Invalid API token.")


@cache
def get_authenticator() -> Authenticator:
    mode = auth_mode()
    if mode is AuthMode.ONE_TOKEN:
        return OneTokenAuthenticator(settings.VLLM_API_KEY)
    if mode is AuthMode.PER_USER:
        return PerUserAuthenticator()
    return DummyAuthenticator()
