"""The ids of Tabby completions, signed for the caller they were given to.

``POST /v1/events`` tells what became of a completion, by its id.  Only the caller who got
the completion may tell: an event about another user's completion would count in that
user's acceptance numbers.  The gateway must not look the completion up (no ORM on the hot
path, and the journal may not have stored it yet, or may be off), so the id carries the
proof itself::

    cmpl-<uuid4>-<20 hex digits>

The hex digits are the start (80 bits) of an HMAC-SHA256, keyed with a key derived from
``SECRET_KEY``, of the uuid and the caller's identity: the token in per-user mode (a user's
other token, or another user, cannot use the id), the shared key's mode in one-token mode
(everyone is the same caller there).  An event is taken only if the id was signed for its
caller; without the key, an id for someone else cannot be made up, and guessing costs a
request a try.  In dummy mode (no token) everyone is anyone, and events are not checked.

Ids stay Tabby's shape (``cmpl-`` and hex), 62 characters, within the journal's 64.  Every
worker and instance must share ``SECRET_KEY`` (as they must for the console's sessions);
after a change of key, ids signed with one of ``SECRET_KEY_FALLBACKS`` are still taken.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from functools import lru_cache

from django.conf import settings

from accounts.auth import AuthMode, Principal
from gateway.errors import OpenAIError

PREFIX = "cmpl-"
SIGNATURE_HEX = 20  # 80 bits of the HMAC
_UUID_LENGTH = 36
LENGTH = len(PREFIX) + _UUID_LENGTH + 1 + SIGNATURE_HEX


def new_completion_id(principal: Principal | None) -> str:
    """A fresh completion id, signed for ``principal``."""
    random_part = str(uuid.uuid4())
    return f"{PREFIX}{random_part}-{_signature(_key(settings.SECRET_KEY), random_part, principal)}"


def given_to(completion_id: str, principal: Principal | None) -> bool:
    """Whether ``completion_id`` was made by this server for ``principal``'s requests.

    True for any id in dummy mode and for no principal (no token, nothing to check).
    """
    if principal is None or principal.mode is AuthMode.DUMMY:
        return True
    if len(completion_id) != LENGTH or not completion_id.startswith(PREFIX):
        return False
    random_part = completion_id[len(PREFIX) : len(PREFIX) + _UUID_LENGTH]
    signature = completion_id[-SIGNATURE_HEX:]
    if completion_id[-SIGNATURE_HEX - 1] != "-":
        return False
    signed = signature.encode("utf-8", "replace")  # compare_digest takes only ASCII str
    for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
        expected = _signature(_key(secret), random_part, principal)
        if hmac.compare_digest(signed, expected.encode()):
            return True
    return False


def check_given_to(completion_id: str, principal: Principal | None) -> None:
    """A 404 unless ``completion_id`` was given to ``principal`` (``given_to``).

    404 rather than 403: to the caller, a completion of someone else's does not exist, and
    the answer does not tell whether it does.
    """
    if not given_to(completion_id, principal):
        raise OpenAIError(
            404,
            f"No completion '{completion_id}' was given to this API token.",
            param="completion_id",
            code="completion_not_found",
        )


def _identity(principal: Principal | None) -> bytes:
    """What a signature binds an id to: the caller as the auth mode knows them."""
    if principal is None:
        return b""
    if principal.mode is AuthMode.PER_USER:
        return f"per-user:token:{principal.token_id}:user:{principal.user_id}".encode()
    return principal.mode.value.encode()


def _signature(key: bytes, random_part: str, principal: Principal | None) -> str:
    message = random_part.encode() + b"\x00" + _identity(principal)
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:SIGNATURE_HEX]


@lru_cache(maxsize=8)
def _key(secret_key: str) -> bytes:
    """The signing key, derived from a server secret (never the secret itself)."""
    return hmac.new(secret_key.encode(), b"kodify.completion-ids.v1", hashlib.sha256).digest()
