"""Fixtures shared by the gateway's tests of its database records and console."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.core.cache import cache

from gateway.snapshot import CONFIG_VERSION_KEY, HEALTH_VERSION_KEY

Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]


@pytest.fixture
def fresh_stamps() -> Iterator[None]:
    """No version stamp before or after: Redis is shared between runs (and with a
    gateway under test)."""
    cache.delete_many([CONFIG_VERSION_KEY, HEALTH_VERSION_KEY])
    yield
    cache.delete_many([CONFIG_VERSION_KEY, HEALTH_VERSION_KEY])


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Capture) -> Callable[[], Any]:
    """Run a block as if its transaction committed (the test's own never does)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)
