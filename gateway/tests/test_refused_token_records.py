"""A request refused for a withdrawn token, in process: its journal record names whose
token it was and the model asked for, which a made-up token's does not.

The authenticator is the per-user one over an in-memory stand-in for the database, so
this runs on any database; the records are taken where the gateway hands them over.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from django.test import override_settings

from accounts import tokens
from accounts.auth import PerUserAuthenticator
from accounts.tokens import TokenRecord
from gateway import consumers
from gateway.tests.in_process import call, fresh_gateway
from journal import recorder
from journal.record import Record

pytestmark = pytest.mark.smoke

KEY = tokens.hash_key("refused-token-records")
CHAT = "/v1/chat/completions"
BODY = {"model": "secret-project-model", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Record]]:
    """The records the gateway hands to the journal (LOGS on)."""
    handed: list[Record] = []
    monkeypatch.setattr(recorder, "record", handed.append)
    with override_settings(LOGS=True):
        fresh_gateway()
        yield handed
    fresh_gateway()


def per_user(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> str:
    """A per-user gateway knowing one token (with ``changes``); its plain text."""
    new = tokens.generate(KEY)
    record = TokenRecord(
        token_id=41,
        digest=new.digest,
        user_id=17,
        username="ada",
        revoked=False,
        expires_at=None,
        user_active=True,
        allowed_models=frozenset(),
        requests_per_minute=None,
        max_concurrent=None,
    )
    known = {new.prefix: replace(record, **changes)}

    async def lookup(prefix: str) -> TokenRecord | None:
        return known.get(prefix)

    authenticator = PerUserAuthenticator(KEY, 1.0, lookup)
    monkeypatch.setattr(consumers, "get_authenticator", lambda: authenticator)
    return new.plain


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"revoked": True}, "token_revoked"),
        ({"expires_at": time.time() - 60}, "token_expired"),
        ({"user_active": False}, "user_disabled"),
    ],
)
async def test_a_withdrawn_tokens_refusal_is_recorded_as_its_owners(
    records: list[Record], monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any], code: str
) -> None:
    plain = per_user(monkeypatch, **changes)
    answer = await call("POST", CHAT, BODY, {"authorization": f"Bearer {plain}"})
    assert (answer.status, answer.error()["code"]) == (401, code)
    [record] = records
    assert (record.status, record.endpoint) == (401, CHAT)
    assert (record.auth_mode, record.user_id, record.username, record.token_id) == (
        "per-user",
        17,
        "ada",
        41,
    )
    assert record.model == "secret-project-model"


async def test_a_made_up_tokens_refusal_names_nobody(
    records: list[Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = per_user(monkeypatch, revoked=True)
    wrong = plain[:-4] + ("aaaa" if not plain.endswith("aaaa") else "bbbb")  # same prefix
    for token, body in ((wrong, BODY), (plain, b'{"model": 7, "messages": []}')):
        answer = await call("POST", CHAT, body, {"authorization": f"Bearer {token}"})
        assert answer.status == 401
    guessed, bad_model = records
    assert (guessed.user_id, guessed.username, guessed.token_id, guessed.model) == (
        None,
        "",
        None,
        "",
    )
    # Recognised, but a model that is not a string is not taken for one.
    assert (bad_model.token_id, bad_model.model) == (41, "")
