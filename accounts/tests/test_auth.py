"""The hot-path authenticators (no database involved)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from accounts.auth import (
    AuthenticationFailed,
    AuthMode,
    DummyAuthenticator,
    OneTokenAuthenticator,
    auth_mode,
    bearer_token,
)

pytestmark = pytest.mark.smoke


@pytest.mark.parametrize(
    ("header", "token"),
    [(b"Bearer abc", b"abc"), (b"bearer abc", b"abc"), (b"BEARER  abc ", b"abc")],
)
def test_bearer_token_is_read_case_insensitively(header: bytes, token: bytes) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_api_key"),
        (b"", "missing_api_key"),
        (b"Basic abc", "invalid_api_key"),
        (b"Bearer", "invalid_api_key"),
        (b"Bearer    ", "invalid_api_key"),
        (b"Token abc", "invalid_api_key"),
    ],
)
def test_bad_authorization_headers_are_refused(header: bytes | None, code: str) -> None:
    with pytest.raises(AuthenticationFailed) as failure:
        bearer_token(header)
    assert failure.value.code == code
    assert str(failure.value)


async def test_one_token_mode_accepts_only_the_key() -> None:
    authenticator = OneTokenAuthenticator("secret-key")
    principal = await authenticator.authenticate(b"Bearer secret-key")
    assert principal.mode is AuthMode.ONE_TOKEN
    for wrong in (b"Bearer secret-ke", b"Bearer secret-keyy", b"Bearer SECRET-KEY"):
        with pytest.raises(AuthenticationFailed) as failure:
            await authenticator.authenticate(wrong)
        assert "secret" not in str(failure.value)  # the key never appears in a message


async def test_dummy_mode_lets_anyone_in() -> None:
    principal = await DummyAuthenticator().authenticate(None)
    assert principal.mode is AuthMode.DUMMY


@pytest.mark.parametrize(
    ("mtsai_auth", "key", "mode"),
    [
        (False, None, AuthMode.DUMMY),
        (False, "k", AuthMode.ONE_TOKEN),
        (True, None, AuthMode.PER_USER),
        (True, "k", AuthMode.PER_USER),
    ],
)
def test_auth_mode_follows_the_guides_matrix(
    mtsai_auth: bool, key: str | None, mode: AuthMode
) -> None:
    with override_settings(MTSAI_AUTH=mtsai_auth, VLLM_API_KEY=key):
        assert auth_mode() is mode
