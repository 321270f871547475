"""API tokens: generation, keyed hashing and verification, and what the hot path knows of
a stored one (no ORM here: authentication imports this).

A token looks like ``kdf_AbCd1234_<32 more characters>``.  Its first 12 characters (the
*prefix*, ``kdf_`` and an 8-character lookup id) are stored in clear so the token can be
found and shown in the console; the whole token is stored only as an HMAC-SHA256 digest
keyed with a server secret, so a stolen database does not yield usable tokens, and it is
compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

from django.conf import settings

SCHEME = "kdf_"
LOOKUP_LENGTH = 8
SECRET_LENGTH = 32
PREFIX_LENGTH = len(SCHEME) + LOOKUP_LENGTH
TOKEN_LENGTH = PREFIX_LENGTH + 1 + SECRET_LENGTH
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class NewToken:
    """A freshly generated token: ``plain`` is shown once, the rest is stored."""

    plain: str
    prefix: str
    digest: str


def generate(key: bytes) -> NewToken:
    lookup = "".join(secrets.choice(_ALPHABET) for _ in range(LOOKUP_LENGTH))
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))
    plain = f"{SCHEME}{lookup}_{secret}"
    return NewToken(plain=plain, prefix=plain[:PREFIX_LENGTH], digest=digest(key, plain))


def digest(key: bytes, plain: str | bytes) -> str:
    data = plain.encode() if isinstance(plain, str) else plain
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def prefix_of(plain: bytes) -> str | None:
    """The lookup prefix of something that looks like a Kodify token, else None."""
    if len(plain) != TOKEN_LENGTH or not plain.startswith(SCHEME.encode()):
        return None
    if plain[PREFIX_LENGTH : PREFIX_LENGTH + 1] != b"_":
        return None
    try:
        text = plain.decode("ascii")
    except UnicodeDecodeError:
        return None
    body = text[len(SCHEME) : PREFIX_LENGTH] + text[PREFIX_LENGTH + 1 :]
    if not all(ch in _ALPHABET for ch in body):
        return None
    return text[:PREFIX_LENGTH]


def matches(key: bytes, plain: bytes, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(key, plain), stored_digest)


def hash_key(secret_key: str) -> bytes:
    """The HMAC key, derived from a server secret so it never sits beside the digests."""
    return hmac.new(secret_key.encode(), b"kodify.api-tokens.v1", hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What the hot path needs to know about one token, detached from the ORM."""

    token_id: int
    digest: str
    user_id: int
    username: str
    revoked: bool
    expires_at: float | None  # POSIX time
    user_active: bool
    allowed_models: frozenset[str]
    requests_per_minute: int | None
    max_concurrent: int | None


def token_hash_key() -> bytes:
    """The server's key for token digests (its own setting, else the secret key)."""
    return hash_key(settings.KODIFY_TOKEN_HASH_KEY or settings.SECRET_KEY)
