"""Who is calling the gateway: the hot-path authenticator for each auth mode.

The gateway asks ``get_authenticator().authenticate(authorization_header)`` once per
request and gets a :class:`Principal` or :class:`AuthenticationFailed`.  No mode queries
the database per request.  Modes:

* dummy       MTSAI_AUTH false, no VLLM_API_KEY: anyone may call;
* one-token   MTSAI_AUTH false, VLLM_API_KEY set: everyone sends that key;
* per-user    MTSAI_AUTH true, AUTH_TYPE=DB: each user has tokens of their own.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from accounts import tokens
from accounts.auth_failures import FailedAuthentications
from accounts.tokens import TokenRecord

logger = logging.getLogger("kodify.auth")


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
    allowed_models: frozenset[str] = field(default_factory=frozenset)  # empty: all
    requests_per_minute: int | None = None  # None: the server default
    max_concurrent: int | None = None

    def may_use(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models


class AuthenticationFailed(Exception):
    """The request carries no valid credentials; ``str(exc)`` is safe to show the caller.

    ``status``: 401, or 429 with ``retry_after`` seconds when the caller's address failed
    too often (``accounts.auth_failures``).

    ``token_id``, ``user_id`` and ``username`` are set when the token was recognised (a
    revoked or expired one, a disabled user's): the refusal is then attributed in the
    journal, where an auditor looks for who kept using a withdrawn token.  Never shown to
    the caller.
    """

    def __init__(
        self,
        message: str,
        code: str = "invalid_api_key",
        *,
        status: int = 401,
        retry_after: int | None = None,
        token_id: int | None = None,
        user_id: int | None = None,
        username: str = "",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.retry_after = retry_after
        self.token_id = token_id
        self.user_id = user_id
        self.username = username


class Authenticator(Protocol):
    mode: AuthMode

    async def authenticate(
        self,
        authorization: bytes | None,
        user_agent: bytes | None = None,
        client: str | None = None,
    ) -> Principal: ...


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

    async def authenticate(
        self,
        authorization: bytes | None,
        user_agent: bytes | None = None,
        client: str | None = None,
    ) -> Principal:
        return self._anyone


class OneTokenAuthenticator:
    mode = AuthMode.ONE_TOKEN

    def __init__(self, key: str) -> None:
        self._key = key.encode()
        self._everyone = Principal(mode=AuthMode.ONE_TOKEN)

    async def authenticate(
        self,
        authorization: bytes | None,
        user_agent: bytes | None = None,
        client: str | None = None,
    ) -> Principal:
        if hmac.compare_digest(bearer_token(authorization), self._key):
            return self._everyone
        raise AuthenticationFailed("Invalid API token.")


class PerUserAuthenticator:
    """Per-user tokens, looked up by prefix and checked against their keyed hash.

    What the database says about a token is cached in the worker for
    ``KODIFY_AUTH_CACHE_SECONDS`` (at most 1 s), so a revoked or expired token or a
    disabled user is refused everywhere within that time, and the database sees at most
    one lookup per token per second per worker, whatever the request rate.  Unknown
    prefixes are cached too, and an address that fails too often has its unknown tokens
    refused unread (``accounts.auth_failures``), so garbage tokens cannot hammer the
    database.
    """

    mode = AuthMode.PER_USER
    MAX_ENTRIES = 50_000

    def __init__(
        self,
        key: bytes,
        ttl: float,
        lookup: Callable[[str], Awaitable[TokenRecord | None]],
        usage: TokenUsage | None = None,
        failures: FailedAuthentications | None = None,
    ) -> None:
        self._key = key
        self._failures = failures or FailedAuthentications(0)
        self._ttl = ttl
        self._lookup = lookup
        self._usage = usage
        self._cache: dict[str, tuple[float, TokenRecord | None]] = {}
        self._pending: dict[str, asyncio.Future[TokenRecord | None]] = {}
        # Tokens already verified against a fresh record: (valid until, token id, principal).
        # Saves parsing, the HMAC and a new Principal on nearly every request.
        self._verified: dict[bytes, tuple[float, int, Principal]] = {}

    async def authenticate(
        self,
        authorization: bytes | None,
        user_agent: bytes | None = None,
        client: str | None = None,
    ) -> Principal:
        token = bearer_token(authorization)
        verified = self._verified.get(token)
        if verified is not None and verified[0] > time.monotonic():
            if self._usage is not None:
                self._usage.note(verified[1], user_agent)
            return verified[2]
        wait = self._failures.wait(client)
        if wait and not self._known_token_prefix(token):
            raise AuthenticationFailed(
                f"Too many failed authentications from this address; try again in {wait} s.",
                code="too_many_failures",
                status=429,
                retry_after=wait,
            )
        try:
            principal, record_until = await self._verify(token)
        except AuthenticationFailed:
            self._failures.failed(client)
            raise
        if len(self._verified) >= self.MAX_ENTRIES:
            self._verified.clear()
        self._verified[token] = (record_until, principal.token_id or 0, principal)
        if self._usage is not None and principal.token_id is not None:
            self._usage.note(principal.token_id, user_agent)
        return principal

    def _known_token_prefix(self, token: bytes) -> bool:
        """Whether the token's prefix is one the database knows (as this worker last read):
        its lookups are once a second at most, whoever sends it, so it needs no throttle,
        and good clients behind an address that failed too often keep working."""
        prefix = tokens.prefix_of(token)
        cached = self._cache.get(prefix) if prefix is not None else None
        return cached is not None and cached[1] is not None

    async def _verify(self, token: bytes) -> tuple[Principal, float]:
        """The token's principal and until when (monotonic) that answer may be reused."""
        prefix = tokens.prefix_of(token)
        if prefix is None:
            raise AuthenticationFailed("Invalid API token: not a Kodify token.")
        record = await self._record(prefix)
        if record is None or not tokens.matches(self._key, token, record.digest):
            raise AuthenticationFailed("Invalid API token.")
        if record.revoked:
            raise _refused(record, "This API token has been revoked.", "token_revoked")
        if record.expires_at is not None and record.expires_at <= time.time():
            raise _refused(record, "This API token has expired.", "token_expired")
        if not record.user_active:
            raise _refused(record, f"The user '{record.username}' is disabled.", "user_disabled")
        principal = Principal(
            mode=AuthMode.PER_USER,
            user_id=record.user_id,
            token_id=record.token_id,
            username=record.username,
            allowed_models=record.allowed_models,
            requests_per_minute=record.requests_per_minute,
            max_concurrent=record.max_concurrent,
        )
        until = self._cache.get(prefix, (time.monotonic(), None))[0]
        if record.expires_at is not None:  # never reuse the answer past the expiry
            until = min(until, time.monotonic() + record.expires_at - time.time())
        return principal, until

    async def _record(self, prefix: str) -> TokenRecord | None:
        now = time.monotonic()
        cached = self._cache.get(prefix)
        if cached is not None and cached[0] > now:
            return cached[1]
        pending = self._pending.get(prefix)
        if pending is not None:  # another request is already asking the database
            return await asyncio.shield(pending)
        future: asyncio.Future[TokenRecord | None] = asyncio.get_running_loop().create_future()
        self._pending[prefix] = future
        try:
            record = await self._lookup(prefix)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else must
            raise
        finally:
            del self._pending[prefix]
        if len(self._cache) >= self.MAX_ENTRIES:
            self._cache.clear()
        self._cache[prefix] = (time.monotonic() + self._ttl, record)
        future.set_result(record)
        return record


def _refused(record: TokenRecord, message: str, code: str) -> AuthenticationFailed:
    """A genuine token's refusal (its digest matched): it names whose token it is."""
    return AuthenticationFailed(
        message,
        code,
        token_id=record.token_id,
        user_id=record.user_id,
        username=record.username,
    )


class TokenUsage:
    """Last use of each token, noted in memory and written in batches, never per request."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self._seen: dict[int, tuple[datetime, str]] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, token_id: int, user_agent: bytes | None) -> None:
        agent = user_agent.decode("utf-8", "replace")[:300] if user_agent else ""
        self._seen[token_id] = (datetime.now(UTC), agent)
        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._task = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.interval)
        await self.flush()

    async def flush(self) -> None:
        if not self._seen:
            return
        seen, self._seen = self._seen, {}
        uses = [(token_id, at, agent) for token_id, (at, agent) in seen.items()]
        try:
            await database_sync_to_async(_token_store().record_uses)(uses)
        except Exception:
            logger.exception("could not record the last use of %d token(s)", len(uses))


@dataclass(frozen=True)
class TokenStore:
    """Per-user mode's two ways into the database, both synchronous (run in a thread).

    Given by the accounts app once Django is ready (``AccountsConfig.ready``), so that
    authentication, on the hot path, imports no ORM module.
    """

    lookup: Callable[[str], TokenRecord | None]  # by the token's prefix
    record_uses: Callable[[list[tuple[int, datetime, str]]], None]  # (token id, when, agent)


_store: TokenStore | None = None


def use_token_store(store: TokenStore) -> None:
    global _store
    _store = store


def _token_store() -> TokenStore:
    if _store is None:
        raise RuntimeError("the accounts app has not given authentication its token store")
    return _store


async def _lookup_token(prefix: str) -> TokenRecord | None:
    return await database_sync_to_async(_token_store().lookup)(prefix)


@cache
def get_token_usage() -> TokenUsage:
    return TokenUsage()


@cache
def get_authenticator() -> Authenticator:
    mode = auth_mode()
    if mode is AuthMode.ONE_TOKEN:
        return OneTokenAuthenticator(settings.VLLM_API_KEY)
    if mode is AuthMode.PER_USER:
        return PerUserAuthenticator(
            tokens.token_hash_key(),
            settings.KODIFY_AUTH_CACHE_SECONDS,
            _lookup_token,
            get_token_usage(),
            FailedAuthentications(settings.KODIFY_AUTH_FAILURES_PER_MINUTE),
        )
    return DummyAuthenticator()
