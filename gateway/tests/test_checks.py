"""The start-up's "no upstream" warning (kodify.W101): said when Kodify has none, not
printed by every command when the console has one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import OperationalError
from django.test import override_settings

from gateway import checks, config_file
from gateway.models import SOURCE_CONSOLE, UpstreamServer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_upstream_in_the_configuration() -> Iterator[None]:
    with override_settings(KODIFY_UPSTREAMS=[], KODIFY_CONFIG=None):
        config_file.gateway_config.cache_clear()
        yield
    config_file.gateway_config.cache_clear()


def warnings() -> list[str]:
    return [message.id for message in checks.upstream_configuration()]


def test_no_upstream_anywhere_is_warned() -> None:
    UpstreamServer.objects.all().delete()
    assert warnings() == ["kodify.W101"]


def test_an_enabled_console_upstream_silences_the_warning() -> None:
    UpstreamServer.objects.create(url="http://10.0.0.1:8000", source=SOURCE_CONSOLE)
    assert warnings() == []


def test_a_disabled_console_upstream_does_not() -> None:
    UpstreamServer.objects.create(url="http://10.0.0.1:8000", source=SOURCE_CONSOLE, enabled=False)
    assert warnings() == ["kodify.W101"]


def test_a_database_that_cannot_say_keeps_the_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    UpstreamServer.objects.create(url="http://10.0.0.1:8000", source=SOURCE_CONSOLE)

    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("no such table: gateway_upstreamserver")

    monkeypatch.setattr(UpstreamServer.objects, "filter", unreadable)
    assert warnings() == ["kodify.W101"]
