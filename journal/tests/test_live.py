"""The live view's WebSocket (/ws/journal/): who may listen, what a batch looks like.

Each scenario is a coroutine run from the test's thread (``async_to_sync``): the
consumer's database checks then run on this thread too, inside the test's transaction
(so the tests need no flushed, transactional database).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

import channels.db
import pytest
from asgiref.sync import async_to_sync
from channels.auth import AuthMiddlewareStack
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.roles import ADMINISTRATORS, AUDITORS
from journal import live
from journal.routing import websocket_urlpatterns
from journal.tests.entries import console_account

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

PATH = "/ws/journal/"
RECEIVE_TIMEOUT_S = 5
# As asgi.py stacks it, less the origin check (tested by Channels itself).
application = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))

T = TypeVar("T")


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def run(awaitable: Awaitable[T]) -> T:
    return async_to_sync(_awaited)(awaitable)


@pytest.fixture(autouse=True)
def keep_the_test_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    # database_sync_to_async closes a connection that is inside a transaction (as after
    # a request); here that transaction is the test's, so the connection must stay.
    # Django's own test clients do the same for their requests.
    monkeypatch.setattr(channels.db, "close_old_connections", lambda: None)


@pytest.fixture(autouse=True)
def private_channel_layer(settings: Any) -> None:
    """A layer of this test's own: on Redis, other test runs broadcast to the same group."""
    default: dict[str, Any] = dict(django_settings.CHANNEL_LAYERS["default"])
    if "CONFIG" in default:
        default["CONFIG"] = {**default["CONFIG"], "prefix": f"kodify-test-{uuid.uuid4().hex}"}
    settings.CHANNEL_LAYERS = {"default": default}


def cookie_of(account: Any) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(account)
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    return [(b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={session}".encode())]


def row(**values: Any) -> dict[str, Any]:
    """A row as the journal writer inserts it: Entry field names, Python values."""
    fields: dict[str, Any] = {
        "created_at": dt.datetime(2026, 11, 20, 12, 0, 1, 500000, tzinfo=dt.UTC),
        "request_id": "req-live-1",
        "username": "dev1",
        "user_id": 1,
        "client_name": "vscode",
        "endpoint": "/v1/chat/completions",
        "feature": "chat",
        "model": "qwen-coder",
        "status": 200,
        "cancelled": False,
        "ttft_ms": 12.5,
        "latency_ms": 80.0,
        "prompt_tokens": 5,
        "completion_tokens": 9,
        "request_body": '{"messages": "the prompt is not sent"}',
        "response_text": "first line\nsecond line",
    }
    fields.update(values)
    return fields


@pytest.mark.parametrize("group", [AUDITORS, ADMINISTRATORS])
def test_a_reader_receives_each_batch_as_it_is_broadcast(group: str) -> None:
    headers = cookie_of(console_account("reader", group))

    async def scenario() -> dict[str, Any]:
        communicator = WebsocketCommunicator(application, PATH, headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        await live.broadcast([row(), row(request_id="req-live-2", status=502, cancelled=True)])
        message = await communicator.receive_json_from(timeout=RECEIVE_TIMEOUT_S)
        assert await communicator.receive_nothing()  # one batch, one message
        await communicator.disconnect()
        return message

    message = run(scenario())
    first, second = message["rows"]
    assert first == {
        "request_id": "req-live-1",
        "created_at": "2026-11-20T12:00:01.500000+00:00",
        "username": "dev1",
        "client_name": "vscode",
        "endpoint": "/v1/chat/completions",
        "feature": "chat",
        "model": "qwen-coder",
        "status": 200,
        "cancelled": False,
        "ttft_ms": 12.5,
        "latency_ms": 80.0,
        "prompt_tokens": 5,
        "completion_tokens": 9,
        "preview": "first line second line",
    }
    assert (second["request_id"], second["status"], second["cancelled"]) == (
        "req-live-2",
        502,
        True,
    )


def test_a_superuser_may_listen() -> None:
    headers = cookie_of(get_user_model().objects.create_superuser("root", password="x" * 20))

    async def scenario() -> bool:
        communicator = WebsocketCommunicator(application, PATH, headers=headers)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert run(scenario())


@pytest.mark.parametrize("who", ["anonymous", "staff without the permission", "not staff"])
def test_others_are_refused(who: str, monkeypatch: pytest.MonkeyPatch) -> None:
    headers: list[tuple[bytes, bytes]] = []
    if who == "staff without the permission":
        headers = cookie_of(console_account("nobody"))
    elif who == "not staff":
        headers = cookie_of(console_account("outsider", AUDITORS))
        get_user_model().objects.filter(username="outsider").update(is_staff=False)
    layer = get_channel_layer()
    assert layer is not None
    joined: list[str] = []
    group_add = layer.group_add

    async def spy(group: str, channel: str) -> None:
        joined.append(group)
        await group_add(group, channel)

    monkeypatch.setattr(layer, "group_add", spy)

    async def scenario() -> tuple[bool, int | None]:
        communicator = WebsocketCommunicator(application, PATH, headers=headers)
        connected, code = await communicator.connect()
        return bool(connected), code

    assert run(scenario()) == (False, live.REFUSED)
    assert joined == []  # a refused socket never hears a batch


def test_a_closed_page_leaves_the_group() -> None:
    headers = cookie_of(console_account("reader", AUDITORS))

    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, PATH, headers=headers)
        assert (await communicator.connect())[0]
        await communicator.disconnect()
        other = WebsocketCommunicator(application, PATH, headers=headers)
        assert (await other.connect())[0]
        await live.broadcast([row()])
        assert (await other.receive_json_from(timeout=RECEIVE_TIMEOUT_S))["rows"]
        await other.disconnect()

    run(scenario())


def test_a_summary_is_small_json_with_a_one_line_preview() -> None:
    summary = live.summarize(
        row(response_text="  lots\n\tof   space " + "y" * 300, request_body="x" * 10_000)
    )
    assert summary["preview"].startswith("lots of space yyy")
    assert len(summary["preview"]) == 120 and summary["preview"].endswith("…")
    assert "request_body" not in summary and "response_text" not in summary
    assert len(json.dumps(summary)) < 600
    failed = live.summarize(row(response_text="", error="upstream timed out", status=504))
    assert failed["preview"] == "upstream timed out"


def test_a_failing_channel_layer_does_not_fail_the_writer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    layer = get_channel_layer()
    assert layer is not None

    async def broken(group: str, message: dict[str, Any]) -> None:
        raise ConnectionError("redis is away")

    monkeypatch.setattr(layer, "group_send", broken)
    run(live.broadcast([row()]))  # no exception
    assert "could not send 1 rows" in caplog.text


def test_an_empty_batch_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = get_channel_layer()
    assert layer is not None
    sent: list[Any] = []

    async def record(group: str, message: dict[str, Any]) -> None:
        sent.append(message)

    monkeypatch.setattr(layer, "group_send", record)
    run(live.broadcast([]))
    assert sent == []
