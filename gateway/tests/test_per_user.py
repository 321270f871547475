"""Per-user mode end to end: a real Kodify (uvicorn, two workers) with users and tokens
created through accounts.services in the test database.

The server reads the test run's database, which it can only share on PostgreSQL: these
tests need DB_URL.  Users are created with ``django_db(transaction=True)`` so that their
rows are committed where the server sees them.

Which worker answers a connection is up to the kernel, so the tests that must reach
both workers pin one keep-alive connection to each: with a request held in flight on one
worker, ``/health`` reports ``outstanding`` 1 on that worker and 0 on the other.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from django.utils import timezone

from accounts import services
from accounts.models import ApiToken, ApiUser
from gateway.openapi import document
from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer
from gateway.tests.test_openapi import check
from kodify_site.testing import KodifyServer

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("DB_URL"),
        reason="the server under test shares the test database only on PostgreSQL (DB_URL)",
    ),
    pytest.mark.django_db(transaction=True),
]

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
OTHER_MODEL = "other-model"
# The tokens are made here and checked there: both sides key their hashes alike.
HASH_KEY = "per-user-tests-token-hash-key-" + "k" * 30
PER_USER = {"MTSAI_AUTH": "true", "AUTH_TYPE": "DB", "KODIFY_TOKEN_HASH_KEY": HASH_KEY}
REDIS = bool(os.environ.get("REDIS_URL"))
# The rule: a revoked or expired token or a disabled user is refused within 1 s.
# The margin covers the requests' own time on a busy machine.
REFUSED_WITHIN_S = 1.5
POLL_DEADLINE_S = 3.0
CONSECUTIVE = 5


def chat(model: str | None = "fake-model", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], **extra}
    if model is not None:
        body["model"] = model
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_user(**fields: Any) -> tuple[ApiUser, ApiToken, str]:
    user = services.create_user(username=f"user-{uuid.uuid4().hex[:10]}", **fields)
    token, plain = services.issue_token(user=user, name="tests")
    return user, token, plain


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error


@pytest.fixture(autouse=True)
def same_hash_key(settings: Any) -> None:
    settings.KODIFY_TOKEN_HASH_KEY = HASH_KEY


# -- servers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_upstream() -> Iterator[FakeUpstreamServer]:
    server = FakeUpstreamServer(FakeUpstream(models=("fake-model", OTHER_MODEL))).start()
    yield server
    server.stop()


@pytest.fixture
def fake(fake_upstream: FakeUpstreamServer) -> FakeUpstream:
    return fake_upstream.fake


@pytest.fixture(scope="module")
def server(module_kodify_server: Any, fake_upstream: FakeUpstreamServer) -> KodifyServer:
    """Two workers; with REDIS_URL set their limits are shared through Redis."""
    return module_kodify_server({"KODIFY_UPSTREAMS": fake_upstream.url, **PER_USER}, workers=2)


@pytest.fixture(scope="module")
def limits_server(
    server: KodifyServer, module_kodify_server: Any, fake_upstream: FakeUpstreamServer
) -> KodifyServer:
    """The server on which a user's limits are one count: two workers through Redis, or
    one worker when the limits are kept in process."""
    if REDIS:
        return server
    return module_kodify_server({"KODIFY_UPSTREAMS": fake_upstream.url, **PER_USER}, workers=1)


# -- connections pinned to a worker ------------------------------------------------------


@dataclass
class Pinned:
    """A keep-alive connection to one worker; each use checks it is still the same one."""

    client: httpx.Client
    local_addr: Any = None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        addr = response.extensions["network_stream"].get_extra_info("client_addr")
        if self.local_addr is None:
            self.local_addr = addr
        assert addr == self.local_addr, "the connection was reopened (maybe to another worker)"
        return response

    def post(self, path: str, token: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        return self.request("POST", path, json=body, headers={**bearer(token), **headers})

    def outstanding(self) -> int:
        return sum(u["outstanding"] for u in self.request("GET", "/health").json()["upstreams"])


def hold_request(
    server: KodifyServer, token: str, fake: FakeUpstream, delay: float
) -> socket.socket:
    """A request in flight until the returned socket is closed (or ``delay`` passes)."""
    tag = uuid.uuid4().hex
    payload = orjson.dumps(chat(user=tag, fake={"first_byte_delay": delay}))
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    if not fake.wait_for(lambda f: any(r.body.get("user") == tag for r in f.records)):
        sock.close()
        raise AssertionError("the held request never reached the upstream")
    return sock


@pytest.fixture
def clients(server: KodifyServer) -> Iterator[Callable[[], Pinned]]:
    opened: list[httpx.Client] = []

    def open_client(target: KodifyServer = server) -> Pinned:
        client = httpx.Client(base_url=target.url, timeout=30)
        opened.append(client)
        return Pinned(client)

    yield open_client
    for client in opened:
        client.close()


def pin_workers(
    server: KodifyServer, clients: Callable[..., Pinned], fake: FakeUpstream, token: str
) -> tuple[socket.socket, Pinned, Pinned]:
    """``(held, same, other)``: a request held in flight with ``token`` on one worker, a
    connection to that worker and one to the other."""
    held = hold_request(server, token, fake, delay=10)
    same = other = None
    for _ in range(60):
        candidate = clients(server)
        if candidate.outstanding():
            same = same or candidate
        else:
            other = other or candidate
        if same and other:
            return held, same, other
    held.close()
    raise AssertionError("60 new connections all reached the same worker")


@pytest.fixture
def probe_token() -> str:
    """A token without limits, for requests that only find the workers."""
    return new_user(requests_per_minute=0, max_concurrent=0)[2]


# -- tokens -------------------------------------------------------------------------------


def test_a_valid_token_is_served_and_bad_ones_get_401_never_500(server: KodifyServer) -> None:
    _, token, plain = new_user()
    ok = httpx.post(server.url + CHAT, json=chat(), headers=bearer(plain), timeout=30)
    assert ok.status_code == 200, ok.text
    assert ok.json()["choices"][0]["message"]["content"]
    assert httpx.get(server.url + "/health").json()["auth_mode"] == "per-user"

    prefix, secret = plain[:12], plain[13:]
    other_secret = ("B" if secret[0] == "A" else "A") + secret[1:]
    never_issued = "kdf_" + uuid.uuid4().hex[:8] + "_" + "C" * 32
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "missing_api_key"),
        ({"Authorization": plain}, "invalid_api_key"),  # no scheme
        ({"Authorization": f"Basic {plain}"}, "invalid_api_key"),
        (bearer("garbage"), "invalid_api_key"),
        (bearer(plain + "x"), "invalid_api_key"),
        (bearer(f"{prefix}_{other_secret}"), "invalid_api_key"),  # wrong secret, real prefix
        (bearer(never_issued), "invalid_api_key"),  # unknown prefix
        ({"Authorization": f"Bearer {prefix}_{'é' * 32}".encode("latin-1")}, "invalid_api_key"),
        ({"Authorization": b"Bearer \xff\xfe" + plain.encode()}, "invalid_api_key"),
    ]
    for headers, code in cases:
        response = httpx.post(server.url + CHAT, json=chat(), headers=headers, timeout=30)
        assert_error(response, 401, code)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert secret not in response.text
    models = httpx.get(server.url + "/v1/models", headers=bearer(never_issued))
    assert_error(models, 401, "invalid_api_key")
    assert token.prefix == prefix
    assert secret not in server.log()


def _revoke(user: ApiUser, token: ApiToken) -> None:
    services.revoke_token(token=token)


def _expire(user: ApiUser, token: ApiToken) -> None:
    # What the clock does to a token (no service moves an expiry into the past).
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def _disable(user: ApiUser, token: ApiToken) -> None:
    services.set_user_active(user=user, active=False)


@pytest.mark.parametrize(
    ("change", "code"),
    [(_revoke, "token_revoked"), (_expire, "token_expired"), (_disable, "user_disabled")],
)
def test_a_withdrawn_token_is_refused_on_every_worker_within_a_second(
    server: KodifyServer,
    clients: Callable[..., Pinned],
    fake: FakeUpstream,
    probe_token: str,
    change: Callable[[ApiUser, ApiToken], None],
    code: str,
) -> None:
    # No limits: the polling below sends hundreds of requests a second.
    user, token, plain = new_user(requests_per_minute=0, max_concurrent=0)
    held, first, second = pin_workers(server, clients, fake, probe_token)
    held.close()
    workers = (first, second)
    for pinned in workers:  # both workers have the token in their cache now
        for _ in range(3):
            assert pinned.post(CHAT, plain, chat()).status_code == 200

    changed_at = time.monotonic()
    change(user, token)
    streak_started: dict[int, float | None] = {0: None, 1: None}
    streak = [0, 0]
    deadline = changed_at + POLL_DEADLINE_S
    while min(streak) < CONSECUTIVE:
        assert time.monotonic() < deadline, f"still served after {POLL_DEADLINE_S} s: {streak}"
        for index, pinned in enumerate(workers):
            sent_at = time.monotonic()
            response = pinned.post(CHAT, plain, chat())
            if response.status_code == 200:
                streak[index], streak_started[index] = 0, None
                continue
            assert_error(response, 401, code)
            if not streak[index]:
                streak_started[index] = sent_at
            streak[index] += 1
    for started in streak_started.values():
        assert started is not None
        assert started - changed_at <= REFUSED_WITHIN_S
    assert plain not in server.log()


def test_a_token_past_its_expiry_is_refused_at_once(server: KodifyServer) -> None:
    user, _, _ = new_user()
    expires = timezone.now() + timedelta(seconds=1)
    _, plain = services.issue_token(user=user, name="short", expires_at=expires)
    first = httpx.post(server.url + CHAT, json=chat(), headers=bearer(plain), timeout=30)
    assert first.status_code == 200, first.text
    deadline = time.monotonic() + POLL_DEADLINE_S
    while True:  # the cached record holds the expiry: no database change is needed
        response = httpx.post(server.url + CHAT, json=chat(), headers=bearer(plain), timeout=30)
        if response.status_code != 200:
            break
        assert time.monotonic() < deadline, "served after its expiry"
    assert timezone.now() >= expires
    assert_error(response, 401, "token_expired")


def test_last_use_and_user_agent_are_recorded_in_batches(
    kodify_server: Any, fake_upstream: FakeUpstreamServer
) -> None:
    server = kodify_server({"KODIFY_UPSTREAMS": fake_upstream.url, **PER_USER})
    _, token, plain = new_user()
    headers = {**bearer(plain), "User-Agent": "kodify-tests/1.0 (vscode)"}
    before = timezone.now()
    for _ in range(3):
        response = httpx.post(server.url + CHAT, json=chat(), headers=headers, timeout=30)
        assert response.status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is None  # not written per request: every 5 s at most
    server.stop()  # the shutdown writes what is pending
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert before <= token.last_used_at <= timezone.now()
    assert token.last_used_user_agent == "kodify-tests/1.0 (vscode)"


# -- allowed models ---------------------------------------------------------------------


def test_allowed_models_refuse_the_others_and_hide_them(server: KodifyServer) -> None:
    _, _, plain = new_user(allowed_models=["fake-model"])

    def post(body: dict[str, Any], path: str = CHAT) -> httpx.Response:
        return httpx.post(server.url + path, json=body, headers=bearer(plain), timeout=30)

    assert post(chat("fake-model")).status_code == 200
    assert post(chat(None)).status_code == 200  # the default model is fake-model
    refused = post(chat(OTHER_MODEL))
    check(document(), refused, CHAT)  # as the OpenAPI document says
    error = assert_error(refused, 403, "model_not_allowed")
    assert error["type"] == "permission_error"
    assert error["param"] == "model"
    assert OTHER_MODEL in error["message"]
    completion = post({"model": OTHER_MODEL, "prompt": "x"}, COMPLETIONS)
    check(document(), completion, COMPLETIONS)
    assert_error(completion, 403, "model_not_allowed")
    # A model nobody serves is refused the same way: no hint of what exists.
    assert_error(post(chat("no-such-model")), 403, "model_not_allowed")
    listed = httpx.get(server.url + "/v1/models", headers=bearer(plain)).json()
    assert [card["id"] for card in listed["data"] if "kodify_action" not in card] == ["fake-model"]
    # The action models only of the models the user may use.
    assert {card["parent"] for card in listed["data"] if "kodify_action" in card} == {"fake-model"}
    assert_error(post(chat(f"{OTHER_MODEL}:explain")), 403, "model_not_allowed")

    _, _, everything = new_user()  # empty: every model
    listed = httpx.get(server.url + "/v1/models", headers=bearer(everything)).json()
    served = sorted(card["id"] for card in listed["data"] if "kodify_action" not in card)
    assert served == ["fake-model", OTHER_MODEL]
    response = httpx.post(server.url + CHAT, json=chat(OTHER_MODEL), headers=bearer(everything))
    assert response.status_code == 200


def test_the_default_model_counts_as_asked_for(server: KodifyServer) -> None:
    _, _, plain = new_user(allowed_models=[OTHER_MODEL])
    response = httpx.post(server.url + CHAT, json=chat(None), headers=bearer(plain), timeout=30)
    error = assert_error(response, 403, "model_not_allowed")
    assert "fake-model" in error["message"]
    ok = httpx.post(server.url + CHAT, json=chat(OTHER_MODEL), headers=bearer(plain), timeout=30)
    assert ok.status_code == 200


# -- limits -------------------------------------------------------------------------------


def two_connections(
    target: KodifyServer, clients: Callable[..., Pinned], fake: FakeUpstream, probe: str
) -> tuple[Pinned, Pinned]:
    """Connections to both workers when the limits are shared, else to the only one."""
    if not REDIS:
        return clients(target), clients(target)
    held, first, second = pin_workers(target, clients, fake, probe)
    held.close()
    return first, second


def assert_rate_limited(response: httpx.Response, code: str) -> int:
    check(document(), response, CHAT)
    error = assert_error(response, 429, code)
    assert error["type"] == "rate_limit_error"
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    return retry_after


def test_requests_per_minute_of_a_user(
    limits_server: KodifyServer,
    clients: Callable[..., Pinned],
    fake: FakeUpstream,
    probe_token: str,
) -> None:
    _, _, plain = new_user(requests_per_minute=3, max_concurrent=0)
    first, second = two_connections(limits_server, clients, fake, probe_token)
    for pinned in (first, second, first):
        assert pinned.post(CHAT, plain, chat()).status_code == 200
    for pinned in (second, first):
        retry_after = assert_rate_limited(pinned.post(CHAT, plain, chat()), "rate_limit_exceeded")
        assert 50 <= retry_after <= 60
    _, _, neighbour = new_user(requests_per_minute=3)
    assert first.post(CHAT, neighbour, chat()).status_code == 200  # a count of its own


def test_concurrent_requests_of_a_user(
    limits_server: KodifyServer,
    clients: Callable[..., Pinned],
    fake: FakeUpstream,
    probe_token: str,
) -> None:
    _, _, plain = new_user(max_concurrent=1, requests_per_minute=0)
    first, second = two_connections(limits_server, clients, fake, probe_token)

    # A slow request in flight on the first connection's worker: the other is refused.
    with ThreadPoolExecutor(1) as pool:
        tag = uuid.uuid4().hex
        slow = pool.submit(first.post, CHAT, plain, chat(user=tag, fake={"first_byte_delay": 1}))
        assert fake.wait_for(lambda f: any(r.body.get("user") == tag for r in f.records))
        refused = second.post(CHAT, plain, chat())
        assert assert_rate_limited(refused, "too_many_concurrent_requests") == 1
        assert slow.result(timeout=30).status_code == 200
    # Freed before the client saw the end of the answer: the very next request passes.
    assert second.post(CHAT, plain, chat()).status_code == 200

    # A client that goes away frees its slot too.
    held = hold_request(limits_server, plain, fake, delay=10)
    assert_rate_limited(second.post(CHAT, plain, chat()), "too_many_concurrent_requests")
    held.close()
    deadline = time.monotonic() + POLL_DEADLINE_S
    while (response := second.post(CHAT, plain, chat())).status_code != 200:
        assert_rate_limited(response, "too_many_concurrent_requests")
        assert time.monotonic() < deadline, "the slot of a cancelled request was never freed"
    assert fake.wait_for(lambda f: f.count("disconnected") >= 1)


def test_health_and_models_take_no_slot(
    limits_server: KodifyServer, clients: Callable[..., Pinned], fake: FakeUpstream
) -> None:
    _, _, plain = new_user(max_concurrent=1, requests_per_minute=2)
    held = hold_request(limits_server, plain, fake, delay=10)
    try:
        client = clients(limits_server)
        for _ in range(3):
            models = client.request("GET", "/v1/models", headers=bearer(plain))
            assert models.status_code == 200
            assert client.request("GET", "/health").status_code == 200
        assert_rate_limited(client.post(CHAT, plain, chat()), "too_many_concurrent_requests")
    finally:
        held.close()


def database_sessions() -> int:
    """Sessions ever opened to the test database (as far as PostgreSQL has counted)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def test_made_up_tokens_do_not_each_open_a_database_connection(
    kodify_server: Any, fake_upstream: FakeUpstreamServer
) -> None:
    from accounts import tokens

    # A server of its own, where no other test's failures count against this address, and
    # no limit on failures: what is measured is the pool alone.
    server = kodify_server(
        {"KODIFY_UPSTREAMS": fake_upstream.url, **PER_USER, "KODIFY_AUTH_FAILURES_PER_MINUTE": "0"},
        workers=2,
    )
    key = tokens.hash_key(HASH_KEY)
    before = database_sessions()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(40):
            made_up = tokens.generate(key).plain  # well-formed, in no database
            assert_error(
                client.post(CHAT, json=chat(), headers=bearer(made_up)), 401, "invalid_api_key"
            )
    # Without a pool each lookup was a session of its own (40); with one, the two workers
    # reuse a few each.  Sessions still open may not be counted yet: that only lowers it.
    assert database_sessions() - before <= 12
