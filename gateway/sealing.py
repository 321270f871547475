"""Upstream API keys encrypted at rest: plain in Python, sealed in the database.

A key Kodify sends to an upstream cannot be hashed like a user's token: it must be read
back.  It is sealed with Fernet (``cryptography``: authenticated encryption, the library
everyone audits) under a key derived from KODIFY_TOKEN_HASH_KEY, else KODIFY_SECRET_KEY,
so a copy of the database alone does not give the upstreams' keys away.

Changing that secret makes the stored keys unreadable: they then read as empty (the
default key is sent) and a warning says to enter them again in the console.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import models

logger = logging.getLogger("kodify.upstreams")

PREFIX = "fernet:"


@cache
def _fernet(secret: str) -> Fernet:
    digest = hashlib.sha256(b"kodify.upstream-api-keys.v1:" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _current() -> Fernet:
    return _fernet(settings.KODIFY_TOKEN_HASH_KEY or settings.SECRET_KEY)


def seal(plain: str) -> str:
    return PREFIX + _current().encrypt(plain.encode()).decode("ascii")


def unseal(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored  # written before keys were sealed
    try:
        return _current().decrypt(stored[len(PREFIX) :].encode("ascii")).decode()
    except (InvalidToken, ValueError):
        logger.warning(
            "An upstream API key in the database cannot be read: KODIFY_SECRET_KEY (or "
            "KODIFY_TOKEN_HASH_KEY) changed since it was saved. Enter it again in the "
            "console (Upstreams); until then the default key is sent."
        )
        return ""


class SealedTextField(models.TextField):
    """Text stored sealed; lookups on it are meaningless (every seal differs)."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return unseal(value) if value else value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return seal(value) if value else value
