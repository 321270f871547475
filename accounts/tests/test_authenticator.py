"""The per-user authenticator: keyed-hash check, caching, and each refusal."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from accounts import tokens
from accounts.auth import AuthenticationFailed, AuthMode, PerUserAuthenticator
from accounts.auth_failures import FailedAuthentications
from accounts.selectors import TokenRecord

pytestmark = pytest.mark.smoke

KEY = tokens.hash_key("server-secret")


def make_record(new: tokens.NewToken, **changes: object) -> TokenRecord:
    record = TokenRecord(
        token_id=7,
        digest=new.digest,
        user_id=3,
        username="ada",
        revoked=False,
        expires_at=None,
        user_active=True,
        allowed_models=frozenset({"fake-model"}),
        requests_per_minute=5,
        max_concurrent=None,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


class Lookups:
    """A stand-in for the database: counts lookups, can hold them until released."""

    def __init__(self, records: dict[str, TokenRecord]) -> None:
        self.records = records
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self, prefix: str) -> TokenRecord | None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return self.records.get(prefix)


def bearer(plain: str) -> bytes:
    return b"Bearer " + plain.encode()


async def test_a_valid_token_gives_the_users_principal() -> None:
    new = tokens.generate(KEY)
    auth = PerUserAuthenticator(KEY, 1.0, Lookups({new.prefix: make_record(new)}))
    principal = await auth.authenticate(bearer(new.plain))
    assert principal.mode is AuthMode.PER_USER
    assert (principal.user_id, principal.token_id, principal.username) == (3, 7, "ada")
    assert principal.may_use("fake-model") and not principal.may_use("other")
    assert principal.requests_per_minute == 5


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"revoked": True}, "token_revoked"),
        ({"expires_at": 1.0}, "token_expired"),
        ({"user_active": False}, "user_disabled"),
    ],
)
async def test_refusals_name_their_reason(changes: dict[str, object], code: str) -> None:
    new = tokens.generate(KEY)
    auth = PerUserAuthenticator(KEY, 1.0, Lookups({new.prefix: make_record(new, **changes)}))
    with pytest.raises(AuthenticationFailed) as failure:
        await auth.authenticate(bearer(new.plain))
    assert failure.value.code == code
    # Genuine, so the journal may name whose it is.
    refused = failure.value
    assert (refused.token_id, refused.user_id, refused.username) == (7, 3, "ada")


async def test_a_future_expiry_is_fine() -> None:
    new = tokens.generate(KEY)
    record = make_record(new, expires_at=time.time() + 3600)
    auth = PerUserAuthenticator(KEY, 1.0, Lookups({new.prefix: record}))
    assert (await auth.authenticate(bearer(new.plain))).token_id == 7


async def test_right_prefix_wrong_secret_is_invalid_and_says_nothing_more() -> None:
    new = tokens.generate(KEY)
    forged = new.prefix + "_" + "A" * tokens.SECRET_LENGTH
    auth = PerUserAuthenticator(KEY, 1.0, Lookups({new.prefix: make_record(new, revoked=True)}))
    with pytest.raises(AuthenticationFailed) as failure:
        await auth.authenticate(bearer(forged))
    # a forger must not learn that the real token was revoked
    assert failure.value.code == "invalid_api_key"
    # nor be taken for its owner in the journal
    assert (failure.value.token_id, failure.value.user_id, failure.value.username) == (
        None,
        None,
        "",
    )


@pytest.mark.parametrize("header", [b"Bearer kdf_short", b"Bearer sk-1234", b"Bearer \xff\xfe"])
async def test_garbage_is_refused_without_a_lookup(header: bytes) -> None:
    lookups = Lookups({})
    auth = PerUserAuthenticator(KEY, 1.0, lookups)
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(header)
    assert lookups.calls == 0


async def test_lookups_are_cached_for_the_ttl_and_shared_by_concurrent_requests() -> None:
    new = tokens.generate(KEY)
    lookups = Lookups({new.prefix: make_record(new)})
    lookups.gate = asyncio.Event()
    auth = PerUserAuthenticator(KEY, 60.0, lookups)
    waiting = [asyncio.ensure_future(auth.authenticate(bearer(new.plain))) for _ in range(20)]
    await asyncio.sleep(0)  # let all twenty reach the lookup
    lookups.gate.set()
    principals = await asyncio.gather(*waiting)
    assert {p.token_id for p in principals} == {7}
    assert lookups.calls == 1  # one database query for twenty requests
    await auth.authenticate(bearer(new.plain))
    assert lookups.calls == 1  # and none while the entry is fresh


async def test_a_change_is_seen_once_the_ttl_has_passed() -> None:
    new = tokens.generate(KEY)
    lookups = Lookups({new.prefix: make_record(new)})
    auth = PerUserAuthenticator(KEY, 0.0, lookups)  # every request looks again
    await auth.authenticate(bearer(new.plain))
    lookups.records[new.prefix] = make_record(new, revoked=True)
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(bearer(new.plain))
    assert lookups.calls == 2


async def test_unknown_prefixes_are_cached_too() -> None:
    new = tokens.generate(KEY)
    lookups = Lookups({})
    auth = PerUserAuthenticator(KEY, 60.0, lookups)
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate(bearer(new.plain))
    assert lookups.calls == 1


async def test_a_failed_lookup_reaches_every_waiter_and_is_not_cached() -> None:
    new = tokens.generate(KEY)
    attempts = 0

    async def broken(prefix: str) -> TokenRecord | None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("database away")

    auth = PerUserAuthenticator(KEY, 60.0, broken)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await auth.authenticate(bearer(new.plain))
    assert attempts == 2


async def test_an_address_that_fails_too_often_gets_429_without_a_lookup() -> None:
    good = tokens.generate(KEY)
    lookups = Lookups({good.prefix: make_record(good)})
    auth = PerUserAuthenticator(KEY, 1.0, lookups, failures=FailedAuthentications(3))
    assert (await auth.authenticate(bearer(good.plain), client="10.0.0.1")).token_id == 7
    for _ in range(3):  # made-up tokens, each a lookup of its own prefix
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate(bearer(tokens.generate(KEY).plain), client="10.0.0.1")
    looked_up = lookups.calls
    with pytest.raises(AuthenticationFailed) as failure:
        await auth.authenticate(bearer(tokens.generate(KEY).plain), client="10.0.0.1")
    assert (failure.value.status, failure.value.code) == (429, "too_many_failures")
    assert failure.value.retry_after is not None and 1 <= failure.value.retry_after <= 60
    assert lookups.calls == looked_up  # refused unread
    # A token already verified still works from that address; other addresses are free.
    assert (await auth.authenticate(bearer(good.plain), client="10.0.0.1")).token_id == 7
    # ... and so it does once the worker must read it again (a known prefix).
    auth._verified.clear()
    assert (await auth.authenticate(bearer(good.plain), client="10.0.0.1")).token_id == 7
    other = tokens.generate(KEY)
    with pytest.raises(AuthenticationFailed) as failure:
        await auth.authenticate(bearer(other.plain), client="10.0.0.2")
    assert failure.value.status == 401


def test_the_failure_window_ends() -> None:
    now = [1000.0]
    failures = FailedAuthentications(2, clock=lambda: now[0])
    failures.failed("10.0.0.1")
    failures.failed("10.0.0.1")
    assert failures.wait("10.0.0.1") == 60
    now[0] += 59.5
    assert failures.wait("10.0.0.1") == 1
    now[0] += 1
    assert failures.wait("10.0.0.1") == 0
    failures.failed("10.0.0.1")  # a new window: one failure of two
    assert failures.wait("10.0.0.1") == 0
