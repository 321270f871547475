"""``POST /v1/events`` at the door, in process: every field checked by type and bounds
before the 200 (the database must never be the one to refuse an event), and an event
taken only from the API token its completion was given to (gateway/completion_ids.py).

Tabby's real events (a view, a line-select, a dismiss of a completion the same token got)
must keep working in every auth mode; tabby-agent's own run is test_tabby_agent.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import override_settings

from accounts import auth, services
from accounts.auth import AuthMode, Principal
from gateway import completion_ids, following, upstreams
from gateway.completion_ids import given_to, new_completion_id
from gateway.http_client import close_upstream_session
from gateway.tests.fake_upstream import FakeUpstreamServer
from gateway.tests.in_process import Answer, call, fresh_gateway
from journal import recorder
from journal.record import EventRecord

pytestmark = pytest.mark.smoke

KEY = "sk-one-token-for-the-events"
TABBY = {"language": "python", "segments": {"prefix": "def add(a, b):\n    ", "suffix": "\n"}}
ID = re.compile(
    r"^cmpl-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}-[0-9a-f]{20}$"
)
ONE_TOKEN = Principal(mode=AuthMode.ONE_TOKEN)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def event(completion_id: str, kind: str = "view", **fields: Any) -> dict[str, Any]:
    return {"type": kind, "completion_id": completion_id, "choice_index": 0, **fields}


@pytest.fixture
def journaled(monkeypatch: pytest.MonkeyPatch) -> list[EventRecord]:
    """The events the gateway hands to the journal's queue."""
    events: list[EventRecord] = []
    monkeypatch.setattr(recorder, "record_event", events.append)
    return events


@pytest.fixture
async def gateway(
    module_fake_upstream: FakeUpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FakeUpstreamServer]:
    """This process's gateway in front of the fake vLLM (dummy mode unless a test's
    settings say otherwise), following no database."""
    monkeypatch.setattr(following, "_database", None)
    monkeypatch.setattr(auth, "get_token_usage", lambda: None)  # no flush task left behind
    with override_settings(
        KODIFY_UPSTREAMS=[module_fake_upstream.url], KODIFY_CONFIG=None, LOGS=False
    ):
        fresh_gateway()
        yield module_fake_upstream
        await upstreams.get_table().close()
        await close_upstream_session()
    fresh_gateway()


async def completion_id(headers: dict[str, str] | None = None) -> str:
    answer = await call("POST", "/v1/completions", TABBY, headers)
    assert answer.status == 200, answer.body
    found: str = answer.json()["id"]
    return found


def refused(answer: Answer, status: int, code: str, param: str) -> str:
    assert answer.status == status, answer.body
    error = answer.error()  # OpenAI's body: message, type, param, code
    assert (error["code"], error["param"]) == (code, param)
    assert error["type"] == "invalid_request_error"
    message: str = error["message"]
    return message


# -- part 1: each field within what the journal stores ----------------------------------

BAD_EVENTS = [
    # (body, query string, param): each the database would refuse after a 200.
    (event("cmpl-1", choice_index=151333010468), "", "choice_index"),
    (event("cmpl-1", choice_index=2**31), "", "choice_index"),
    (event("cmpl-1", choice_index=-1), "", "choice_index"),
    (event("cmpl-1", choice_index="0"), "", "choice_index"),
    (event("cmpl-1\x00"), "", "completion_id"),
    (event("cmpl-" + "1" * 60), "", "completion_id"),
    (event("cmpl-1", view_id="view\x00"), "", "view_id"),
    (event("cmpl-1", view_id="v" * 129), "", "view_id"),
    (event("cmpl-1", elapsed=2**32), "", "elapsed"),
    (event("cmpl-1", elapsed=1e300), "", "elapsed"),
    (event("cmpl-1", kind="launch"), "", "type"),
    (event("cmpl-1", kind="select"), "?select_kind=line%00", "select_kind"),
    (event("cmpl-1", kind="select"), "?select_kind=%00", "select_kind"),
    (event("cmpl-1", kind="select"), "?select_kind=" + "l" * 300, "select_kind"),
]


@pytest.mark.parametrize(("body", "query", "param"), BAD_EVENTS)
async def test_a_field_the_database_would_refuse_gets_a_400_and_no_event(
    gateway: FakeUpstreamServer,
    journaled: list[EventRecord],
    body: dict[str, Any],
    query: str,
    param: str,
) -> None:
    answer = await call("POST", "/v1/events" + query, body)
    code = "invalid_type" if body.get(param) == "0" else "invalid_value"
    refused(answer, 400, code, param)
    assert journaled == []


async def test_tabby_s_own_events_are_taken_as_they_come(
    gateway: FakeUpstreamServer, journaled: list[EventRecord]
) -> None:
    with override_settings(VLLM_API_KEY=KEY):
        auth.get_authenticator.cache_clear()
        given = await completion_id(bearer(KEY))
        answers = [
            await call("POST", "/v1/events", event(given, view_id="view-1"), bearer(KEY)),
            await call(
                "POST",
                "/v1/events?select_kind=line",
                event(given, "select", view_id="view-1", elapsed=1500, select_kind="line"),
                bearer(KEY),
            ),
            await call("POST", "/v1/events", event(given, "dismiss", elapsed=2.5), bearer(KEY)),
        ]
    assert [(answer.status, answer.body) for answer in answers] == [(200, b"")] * 3
    assert [(e.kind, e.response_id, e.choice_index) for e in journaled] == [
        ("view", given, 0),
        ("select", given, 0),
        ("dismiss", given, 0),
    ]
    assert journaled[1].payload == {"view_id": "view-1", "elapsed": 1500, "select_kind": "line"}
    assert journaled[2].payload == {"elapsed": 2.5}


# -- part 2: only from the token the completion was given to ----------------------------


async def test_a_tabby_completion_id_is_tabby_s_shape_signed(gateway: FakeUpstreamServer) -> None:
    given = await completion_id()
    assert ID.fullmatch(given) and len(given) <= 64  # the journal's response_id column


async def test_one_token_mode_takes_events_only_for_its_own_completions(
    gateway: FakeUpstreamServer, journaled: list[EventRecord]
) -> None:
    with override_settings(VLLM_API_KEY=KEY):
        auth.get_authenticator.cache_clear()
        given = await completion_id(bearer(KEY))
        tampered = given[:-1] + ("0" if given[-1] != "0" else "1")
        unsigned = given[: -completion_ids.SIGNATURE_HEX - 1]  # Tabby's own shape
        made_up = await call("POST", "/v1/events", event("cmpl-1"), bearer(KEY))
        forged = await call("POST", "/v1/events", event(tampered), bearer(KEY))
        bare = await call("POST", "/v1/events", event(unsigned), bearer(KEY))
        taken = await call("POST", "/v1/events", event(given), bearer(KEY))
    for answer in (made_up, forged, bare):
        message = refused(answer, 404, "completion_not_found", "completion_id")
        assert "given to this API token" in message
    assert taken.status == 200
    assert [e.response_id for e in journaled] == [given]


async def test_a_new_secret_key_still_takes_the_ids_signed_with_a_fallback(
    gateway: FakeUpstreamServer, journaled: list[EventRecord]
) -> None:
    with override_settings(VLLM_API_KEY=KEY, SECRET_KEY="old-key-" + "o" * 50):
        auth.get_authenticator.cache_clear()
        given = await completion_id(bearer(KEY))
    with override_settings(
        VLLM_API_KEY=KEY, SECRET_KEY="new-key-" + "n" * 50, SECRET_KEY_FALLBACKS=[]
    ):
        dropped = await call("POST", "/v1/events", event(given), bearer(KEY))
    with override_settings(
        VLLM_API_KEY=KEY,
        SECRET_KEY="new-key-" + "n" * 50,
        SECRET_KEY_FALLBACKS=["old-key-" + "o" * 50],
    ):
        kept = await call("POST", "/v1/events", event(given), bearer(KEY))
    refused(dropped, 404, "completion_not_found", "completion_id")
    assert kept.status == 200 and [e.response_id for e in journaled] == [given]


async def test_dummy_mode_takes_any_completion_s_events(
    gateway: FakeUpstreamServer, journaled: list[EventRecord]
) -> None:
    given = await completion_id()
    for completion in (given, "cmpl-1", new_completion_id(ONE_TOKEN)):
        answer = await call("POST", "/v1/events", event(completion))
        assert answer.status == 200, answer.body
    assert len(journaled) == 3


@pytest.fixture
def users(settings: Any) -> Iterator[dict[str, Any]]:
    """Ann with two tokens, Bob with one, committed where the gateway's lookups see them."""
    settings.KODIFY_TOKEN_HASH_KEY = "events-tests-token-hash-key-" + "k" * 30
    ann = services.create_user(username=f"ann-{uuid.uuid4().hex[:8]}")
    bob = services.create_user(username=f"bob-{uuid.uuid4().hex[:8]}")
    yield {
        "ann": ann,
        "bob": bob,
        "ann_ide": services.issue_token(user=ann, name="ide")[1],
        "ann_cli": services.issue_token(user=ann, name="cli")[1],
        "bob_ide": services.issue_token(user=bob, name="ide")[1],
    }


@pytest.fixture
async def lookups_closed() -> AsyncIterator[None]:
    """The token lookups' connection closed after the test (it lives in asgiref's thread,
    and would keep the test database from being dropped)."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
async def test_per_user_mode_takes_events_only_from_the_token_that_got_the_completion(
    gateway: FakeUpstreamServer,
    journaled: list[EventRecord],
    users: dict[str, Any],
    lookups_closed: None,
) -> None:
    with override_settings(MTSAI_AUTH=True, AUTH_TYPE="DB"):
        auth.get_authenticator.cache_clear()
        ann_s = await completion_id(bearer(users["ann_ide"]))
        bob_s = await completion_id(bearer(users["bob_ide"]))
        by_bob = await call("POST", "/v1/events", event(ann_s, "select"), bearer(users["bob_ide"]))
        by_ann_s_other_token = await call(
            "POST", "/v1/events", event(ann_s, "select"), bearer(users["ann_cli"])
        )
        ann_on_bob_s = await call("POST", "/v1/events", event(bob_s), bearer(users["ann_ide"]))
        by_ann = await call("POST", "/v1/events", event(ann_s, "select"), bearer(users["ann_ide"]))
        by_bob_own = await call("POST", "/v1/events", event(bob_s), bearer(users["bob_ide"]))
    for answer in (by_bob, by_ann_s_other_token, ann_on_bob_s):
        refused(answer, 404, "completion_not_found", "completion_id")
    assert (by_ann.status, by_bob_own.status) == (200, 200)
    assert [(e.response_id, e.kind, e.user_id) for e in journaled] == [
        (ann_s, "select", users["ann"].id),
        (bob_s, "view", users["bob"].id),
    ]


# -- the signature itself ----------------------------------------------------------------


def test_an_id_is_signed_for_one_caller_only() -> None:
    ann = Principal(mode=AuthMode.PER_USER, user_id=3, token_id=7, username="ann")
    ann_cli = Principal(mode=AuthMode.PER_USER, user_id=3, token_id=8, username="ann")
    bob = Principal(mode=AuthMode.PER_USER, user_id=4, token_id=9, username="bob")
    given = new_completion_id(ann)
    assert ID.fullmatch(given) and given != new_completion_id(ann)
    assert given_to(given, ann)
    assert not given_to(given, ann_cli) and not given_to(given, bob)
    assert not given_to(given, ONE_TOKEN)  # another mode: another caller
    assert given_to(new_completion_id(ONE_TOKEN), Principal(mode=AuthMode.ONE_TOKEN))
    # In dummy mode and without a principal there is no one to tell apart.
    assert given_to("cmpl-1", Principal(mode=AuthMode.DUMMY)) and given_to("cmpl-1", None)
    misplaced = given[:-21] + "_" + given[-20:]
    accented = given[:-1] + "é"
    for broken in ("", "cmpl-1", given.upper(), given + "0", "x" + given[1:], misplaced, accented):
        assert not given_to(broken, ann)
