"""Token generation, keyed hashing and parsing (pure functions)."""

from __future__ import annotations

import pytest

from accounts import tokens

pytestmark = pytest.mark.smoke

KEY = tokens.hash_key("server-secret")


def test_generated_tokens_have_the_documented_shape_and_are_unique() -> None:
    made = [tokens.generate(KEY) for _ in range(200)]
    assert len({t.plain for t in made}) == 200
    for new in made[:20]:
        assert new.plain.startswith("kdf_")
        assert len(new.plain) == tokens.TOKEN_LENGTH
        assert new.prefix == new.plain[: tokens.PREFIX_LENGTH]
        assert tokens.prefix_of(new.plain.encode()) == new.prefix
        assert new.plain not in new.digest and len(new.digest) == 64


def test_only_the_right_token_matches_its_digest() -> None:
    new = tokens.generate(KEY)
    assert tokens.matches(KEY, new.plain.encode(), new.digest)
    # One character changed (never to itself: the last one is random, "x" one time in 62).
    changed = new.plain[:-1] + ("y" if new.plain.endswith("x") else "x")
    assert not tokens.matches(KEY, changed.encode(), new.digest)
    # the digest is keyed: the same token under another server secret does not match
    assert not tokens.matches(tokens.hash_key("other"), new.plain.encode(), new.digest)


@pytest.mark.parametrize(
    "candidate",
    [
        b"",
        b"kdf_",
        b"sk-" + b"a" * 42,
        b"kdf_abcdefgh-" + b"a" * 32,  # wrong separator
        b"kdf_abcdefgh_" + b"a" * 31,  # too short
        b"kdf_abcdefgh_" + b"a" * 33,  # too long
        b"kdf_abc\xffefgh_" + b"a" * 32,
        b"kdf_abcdefgh_" + b"a" * 31 + b"!",
    ],
)
def test_things_that_are_not_kodify_tokens_have_no_prefix(candidate: bytes) -> None:
    assert tokens.prefix_of(candidate) is None
