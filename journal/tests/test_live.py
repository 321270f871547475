"""The live view's WebSocket (/ws/journal/): who may listen, from which pages, for how
long, what a batch looks like.

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
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.sessions.models import Session
from django.test import Client

from accounts.roles import ADMINISTRATORS, AUDITORS
from journal import live
from journal.routing import websocket_application
from journal.tests.entries import console_account

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

PATH = "/ws/journal/"
RECEIVE_TIMEOUT_S = 5
CLOSED = {"type": "websocket.close", "code": live.REFUSED}
# What asgi.py serves: the origin check, the session login, the route.
application = websocket_application()
# What a browser on the console page sends with the handshake.
CONSOLE_PAGE = [(b"host", b"testserver"), (b"origin", b"http://testserver")]

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


@pytest.fixture
def joins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The groups that sockets join: none for a refused socket."""
    layer = get_channel_layer()
    assert layer is not None
    joined: list[str] = []
    group_add = layer.group_add

    async def spy(group: str, channel: str) -> None:
        joined.append(group)
        await group_add(group, channel)

    monkeypatch.setattr(layer, "group_add", spy)
    return joined


def cookie_of(account: Any, page: list[tuple[bytes, bytes]] = CONSOLE_PAGE) -> Any:
    """The handshake's headers of a page that ``account`` (in a browser of its own) opens."""
    client = Client()
    client.force_login(account)
    return headers_of(client, page)


def headers_of(client: Client, page: list[tuple[bytes, bytes]] = CONSOLE_PAGE) -> Any:
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    return [*page, (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={session}".encode())]


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
def test_others_are_refused(who: str, joins: list[str]) -> None:
    headers: list[tuple[bytes, bytes]] = CONSOLE_PAGE
    if who == "staff without the permission":
        headers = cookie_of(console_account("nobody"))
    elif who == "not staff":
        headers = cookie_of(console_account("outsider", AUDITORS))
        get_user_model().objects.filter(username="outsider").update(is_staff=False)

    async def scenario() -> tuple[bool, int | None]:
        communicator = WebsocketCommunicator(application, PATH, headers=headers)
        connected, code = await communicator.connect()
        return bool(connected), code

    assert run(scenario()) == (False, live.REFUSED)
    assert joins == []  # a refused socket never hears a batch


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
    # With REDIS_URL, one "Redis at … unreachable" warning (accounts.redis_outage).
    assert "could not send 1 rows" in caplog.text or " unreachable: " in caplog.text


def test_an_empty_batch_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = get_channel_layer()
    assert layer is not None
    sent: list[Any] = []

    async def record(group: str, message: dict[str, Any]) -> None:
        sent.append(message)

    monkeypatch.setattr(layer, "group_send", record)
    run(live.broadcast([]))
    assert sent == []


# --- Which pages may open the socket: the console's own --------------------------------


async def handshake(
    headers: list[tuple[bytes, bytes]], scheme: str = "ws"
) -> tuple[bool, int | None]:
    communicator = WebsocketCommunicator(application, PATH, headers=headers)
    communicator.scope["scheme"] = scheme  # the server's, as uvicorn sets it
    connected, code = await communicator.connect(timeout=RECEIVE_TIMEOUT_S)
    if connected:
        await communicator.disconnect()
    return bool(connected), code


@pytest.mark.parametrize(
    "origin",
    [
        b"https://evil.example",  # cross-site WebSocket hijacking
        b"null",  # a sandboxed frame, a file:// page, a data: URL
        None,  # not a browser: the socket is the console page's only
        b"http://testserver.evil.example",
        b"http://evil.example/http://testserver",
        b"https://testserver",  # another scheme,
        b"http://testserver:8080",  # or port, of the same host is another origin
        b"http://.testserver",
        b"*",
    ],
)
def test_a_page_of_another_origin_may_not_listen(origin: bytes | None, joins: list[str]) -> None:
    page = [(b"host", b"testserver")] + ([(b"origin", origin)] if origin is not None else [])
    headers = cookie_of(console_account("reader", AUDITORS), page)
    connected, _ = run(handshake(headers))
    assert not connected
    assert joins == []  # refused before the consumer: it never hears a batch


def test_a_host_outside_allowed_hosts_has_no_origin_of_its_own(
    settings: Any, joins: list[str]
) -> None:
    # DNS rebinding: evil.example resolves to Kodify; the page's origin is the Host's own.
    settings.ALLOWED_HOSTS = ["kodify.example.com"]
    account = console_account("reader", AUDITORS)
    evil = [(b"host", b"evil.example"), (b"origin", b"http://evil.example")]
    assert not run(handshake(cookie_of(account, evil)))[0]
    assert joins == []
    console = [(b"host", b"kodify.example.com"), (b"origin", b"http://kodify.example.com")]
    assert run(handshake(cookie_of(account, console)))[0]


@pytest.mark.parametrize(
    ("scheme", "host", "origin", "trusted"),
    [
        ("ws", b"testserver", b"http://testserver", []),
        ("ws", b"127.0.0.1:8000", b"http://127.0.0.1:8000", []),
        ("ws", b"[::1]:8000", b"http://[::1]:8000", []),
        ("ws", b"testserver:80", b"http://testserver", []),
        ("wss", b"testserver", b"https://testserver", []),
        ("wss", b"testserver", b"https://testserver:443", []),
        # Behind a proxy that ends TLS: the console's forms need the same setting.
        ("ws", b"kodify:8000", b"https://kodify.example.com", ["https://kodify.example.com"]),
        ("ws", b"kodify:8000", b"https://console.example.org", ["https://*.example.org"]),
    ],
)
def test_the_consoles_own_pages_may_listen(
    scheme: str, host: bytes, origin: bytes, trusted: list[str], settings: Any
) -> None:
    settings.CSRF_TRUSTED_ORIGINS = trusted
    page = [(b"host", host), (b"origin", origin)]
    headers = cookie_of(console_account("reader", AUDITORS), page)
    assert run(handshake(headers, scheme)) == (True, None)


def test_trusted_origins_are_those_named_only(settings: Any) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://kodify.example.com", "https://*.example.org"]
    account = console_account("reader", AUDITORS)
    for origin in (b"http://kodify.example.com", b"https://kodify.example.com:8443"):
        page = [(b"host", b"kodify:8000"), (b"origin", origin)]
        assert not run(handshake(cookie_of(account, page)))[0], origin


# --- How long a socket may listen: no longer than the right to read the journal ----------


async def connected(headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, PATH, headers=headers)
    assert (await communicator.connect(timeout=RECEIVE_TIMEOUT_S))[0]
    return communicator


async def still_listening(communicator: WebsocketCommunicator) -> bool:
    await live.broadcast([row()])
    message = await communicator.receive_json_from(timeout=RECEIVE_TIMEOUT_S)
    return bool(message["rows"])


async def closed_without_rows(
    communicator: WebsocketCommunicator, witness: WebsocketCommunicator
) -> bool:
    """Closed as "not allowed", and the batch broadcast afterwards, which reached the
    ``witness`` (another user's page), did not reach it."""
    closed = await communicator.receive_output(timeout=RECEIVE_TIMEOUT_S) == CLOSED
    await live.broadcast([row()])
    assert (await witness.receive_json_from(timeout=RECEIVE_TIMEOUT_S))["rows"]
    return closed and await communicator.receive_nothing()


def test_logging_out_closes_the_sockets_of_that_session() -> None:
    account = console_account("reader", AUDITORS)
    browser = Client()
    browser.force_login(account)
    other_browser = cookie_of(account)

    async def scenario() -> None:
        page = await connected(headers_of(browser))
        other = await connected(other_browser)
        response = await database_sync_to_async(browser.post)("/admin/logout/")
        assert response.status_code == 200
        # The same user's page in another browser, still logged in, still listens.
        assert await closed_without_rows(page, witness=other)
        await page.disconnect()
        await other.disconnect()

    run(scenario())


def _auditors() -> Any:
    return Group.objects.get(name=AUDITORS)


def _deactivate(account: Any) -> None:
    account.is_active = False
    account.save()


def _demote(account: Any) -> None:
    account.is_staff = False
    account.save()


def _change_password(account: Any) -> None:
    account.set_password("another-long-password-8")
    account.save()


TAKEN_AWAY = {
    "role removed": lambda account: account.groups.remove(_auditors()),
    "roles cleared": lambda account: account.groups.clear(),
    "taken off the role": lambda account: _auditors().user_set.remove(account),
    "role emptied": lambda account: _auditors().user_set.clear(),
    "role lost the permission": lambda account: _auditors().permissions.remove(
        Permission.objects.get(content_type__app_label="journal", codename="view_entry")
    ),
    "role deleted": lambda account: _auditors().delete(),
    "deactivated": _deactivate,
    "no longer staff": _demote,
    "password changed": _change_password,
    "deleted": lambda account: account.delete(),
}


@pytest.mark.parametrize("change", list(TAKEN_AWAY))
def test_losing_the_right_to_read_closes_the_socket(
    change: str, django_capture_on_commit_callbacks: Any
) -> None:
    account = console_account("reader", AUDITORS)
    reader = cookie_of(account)
    bystander = cookie_of(console_account("bystander", ADMINISTRATORS))

    @database_sync_to_async
    def take_away() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            TAKEN_AWAY[change](account)

    async def scenario() -> None:
        page = await connected(reader)
        other = await connected(bystander)
        await take_away()
        assert await closed_without_rows(page, witness=other)
        await page.disconnect()
        await other.disconnect()

    run(scenario())


def test_a_change_that_takes_nothing_away_leaves_the_socket_open(
    django_capture_on_commit_callbacks: Any,
) -> None:
    account = console_account("reader", AUDITORS)
    reader = cookie_of(account)

    @database_sync_to_async
    def change() -> None:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            account.groups.add(Group.objects.get(name=ADMINISTRATORS))
            account.first_name = "Audrey"
            account.save()
        assert callbacks  # the save did ask the sockets to check again

    async def scenario() -> None:
        page = await connected(reader)
        await change()
        assert await still_listening(page)
        await page.disconnect()

    run(scenario())


MISSED = {
    # Nothing tells the sockets: changes made without Django's signals.
    "session deleted": lambda account: Session.objects.all().delete(),
    "deactivated": lambda account: (
        type(account).objects.filter(pk=account.pk).update(is_active=False)
    ),
}


@pytest.mark.parametrize("change", list(MISSED))
def test_a_missed_revocation_stops_the_rows_at_the_next_check(
    change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = console_account("reader", AUDITORS)
    reader = cookie_of(account)

    async def scenario() -> None:
        page = await connected(reader)
        await database_sync_to_async(MISSED[change])(account)
        assert await still_listening(page)  # checked at connect, less than RECHECK_S ago
        monkeypatch.setattr(live, "RECHECK_S", 0.0)
        await live.broadcast([row()])
        assert await page.receive_output(timeout=RECEIVE_TIMEOUT_S) == CLOSED
        assert await page.receive_nothing()  # the batch that found it out was not sent
        await page.disconnect()

    run(scenario())


def test_a_batch_is_not_held_up_by_a_check_while_the_last_one_is_recent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader = cookie_of(console_account("reader", AUDITORS))
    checks: list[str] = []
    reader_of = live.reader_of

    def counted(session_key: str) -> Any:
        checks.append(session_key)
        return reader_of(session_key)

    monkeypatch.setattr(live, "reader_of", counted)

    async def scenario() -> None:
        page = await connected(reader)
        assert await still_listening(page)
        assert await still_listening(page)
        assert checks == []  # checked at connect, less than RECHECK_S ago
        monkeypatch.setattr(live, "RECHECK_S", 0.0)
        assert await still_listening(page)
        assert len(checks) == 1
        await page.disconnect()

    run(scenario())
