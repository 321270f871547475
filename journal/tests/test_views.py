"""The journal's console pages: who may see them, the list, a request, the CSV, dashboards."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Permission
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client
from django.urls import reverse

from accounts.models import ApiToken, ApiUser
from accounts.roles import ADMINISTRATORS, AUDITORS
from journal import charts, dashboards, selectors
from journal.tests.entries import T0, console_account, make_entry, make_event

pytestmark = pytest.mark.django_db

PAGES = [
    reverse("journal:list"),
    reverse("journal:detail", args=["req-x"]),
    reverse("journal:export"),
    reverse("journal:live"),
    reverse("journal:dashboard"),
]


@pytest.fixture(autouse=True)
def fresh_numbers(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    # Cached for a minute in production; each test here writes rows and reads them at once.
    monkeypatch.setattr(selectors, "CHOICES_CACHE_SECONDS", 0)
    monkeypatch.setattr(dashboards, "CACHE_SECONDS", 0)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def auditor() -> Any:
    return console_account("audrey", AUDITORS)


@pytest.fixture
def console(auditor: Any) -> Client:
    client = Client()
    client.force_login(auditor)
    return client


def rows_of(html: str) -> list[str]:
    """The request ids of the list's rows, top to bottom."""
    return re.findall(r'<tr data-request-id="([^"]+)"', html)


def link(query: str) -> str:
    """A page link as the browser follows it: the query string on the list's path."""
    return reverse("journal:list") + query.replace("&amp;", "&")


# -- who may look --------------------------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.parametrize("url", PAGES)
def test_anonymous_visitors_are_sent_to_the_admin_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login") + "?next=")


@pytest.mark.smoke
@pytest.mark.parametrize("url", PAGES)
def test_staff_without_the_permission_are_refused(url: str) -> None:
    client = Client()
    client.force_login(console_account("nobody"))
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", PAGES)
def test_accounts_that_are_not_staff_must_log_in_as_staff(url: str) -> None:
    client = Client()
    account = console_account("outsider", AUDITORS)
    account.is_staff = False
    account.save()
    client.force_login(account)
    assert client.get(url).status_code == 302


@pytest.mark.smoke
@pytest.mark.parametrize("group", [AUDITORS, ADMINISTRATORS])
def test_auditors_and_administrators_see_every_page(group: str) -> None:
    entry = make_entry(request_id="req-x")
    client = Client()
    client.force_login(console_account("reader", group))
    for url in PAGES:
        assert client.get(url).status_code == 200, url
    assert entry.request_id in client.get(reverse("journal:list")).content.decode()


def test_pages_only_read() -> None:
    client = Client()
    client.force_login(console_account("reader", AUDITORS))
    assert client.post(reverse("journal:list")).status_code == 405


@pytest.mark.smoke
def test_the_admin_home_page_links_the_journal_for_those_who_may_read_it(console: Client) -> None:
    page = console.get(reverse("admin:index")).content.decode()
    for name in ("list", "live", "dashboard"):
        assert f'href="{reverse(f"journal:{name}")}"' in page
    others = Client()
    others.force_login(console_account("nobody"))
    assert 'id="journal-console-links"' not in others.get(reverse("admin:index")).content.decode()


# -- the list ------------------------------------------------------------------------------


@pytest.mark.smoke
def test_the_list_filters_and_searches_from_the_query_string(console: Client) -> None:
    make_entry(request_id="chat-ok", response_text="all good")
    make_entry(request_id="chat-boom", status=502, response_text="the upstream fell over")
    make_entry(request_id="done-boom", status=500, feature="completion", response_text="fell")
    make_entry(request_id="old-boom", status=503, created_at=T0 - dt.timedelta(days=3))

    def listed(**query: str) -> list[str]:
        response = console.get(reverse("journal:list"), query)
        assert response.status_code == 200
        return rows_of(response.content.decode())

    assert listed() == ["done-boom", "chat-boom", "chat-ok", "old-boom"]
    assert listed(status="5xx", feature="chat") == ["chat-boom", "old-boom"]
    assert listed(status="5xx", since=str(T0.date())) == ["done-boom", "chat-boom"]
    assert listed(q="upstream") == ["chat-boom"]


@pytest.mark.smoke
def test_the_unfiltered_list_tells_the_size_and_a_filtered_one_does_not_count(
    console: Client,
) -> None:
    for _ in range(3):
        make_entry()
    assert "3 requests in the journal" in console.get(reverse("journal:list")).content.decode()
    filtered = console.get(reverse("journal:list"), {"model": "qwen-coder"}).content.decode()
    assert "in the journal" not in filtered and "Matching requests" in filtered


def test_wrong_filters_show_no_rows_and_say_why(console: Client) -> None:
    make_entry(request_id="one")
    response = console.get(
        reverse("journal:list"), {"status": "teapot", "since": "2026-11-01", "until": "2026-10-01"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    # "one" is within the valid "since": still not listed, as the filters asked for less.
    assert rows_of(html) == []
    note = re.search(r'<p class="errornote" id="journal-filter-errors">(.*?)</p>', html, re.S)
    assert note is not None
    assert note.group(1).startswith("No requests shown: Status — &#x27;teapot&#x27; is not a")
    assert "Until — The end date is before the start date." in note.group(1)
    assert "in the journal" not in html and "Matching requests" not in html
    # The inline errors stay beside their fields.
    assert 'class="journal-filter errors field-status"' in html


def test_one_wrong_filter_hides_the_rows_the_others_would_show(console: Client) -> None:
    make_entry(request_id="match", model="m1")
    assert rows_of(console.get(reverse("journal:list"), {"model": "m1"}).content.decode()) == [
        "match"
    ]
    html = console.get(reverse("journal:list"), {"model": "m1", "status": "abc"}).content.decode()
    assert rows_of(html) == []
    assert "No requests shown: Status — &#x27;abc&#x27; is not a status" in html
    bad_date = console.get(reverse("journal:list"), {"since": "2026-13-45"}).content.decode()
    assert rows_of(bad_date) == [] and "No requests shown: Since — Enter a valid date" in bad_date


def test_a_broken_cursor_is_a_bad_request(console: Client) -> None:
    assert console.get(reverse("journal:list"), {"before": "yesterday"}).status_code == 400


def test_the_older_and_newer_links_keep_the_filters(console: Client) -> None:
    for number in range(60):
        make_entry(request_id=f"r{number:03d}", created_at=T0 + dt.timedelta(seconds=number))
    make_entry(request_id="other-model", model="other")
    first = console.get(reverse("journal:list"), {"model": "qwen-coder"}).content.decode()
    assert rows_of(first)[0] == "r059" and len(rows_of(first)) == selectors.PAGE_SIZE
    older = re.search(r'href="([^"]+)" id="journal-older"', first)
    assert older is not None and 'id="journal-newer"' not in first
    second = console.get(link(older.group(1))).content.decode()
    assert rows_of(second) == [f"r{n:03d}" for n in range(9, -1, -1)]
    assert 'id="journal-older"' not in second
    newer = re.search(r'href="([^"]+)" id="journal-newer"', second)
    assert newer is not None and "model=qwen-coder" in newer.group(1)
    back = console.get(link(newer.group(1))).content.decode()
    assert rows_of(back) == rows_of(first)


@pytest.mark.smoke
def test_journal_text_is_escaped_everywhere(console: Client) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    entry = make_entry(
        request_id="evil",
        username="<b>mallory</b>",
        model="<i>m</i>",
        request_body=evil,
        response_text=evil,
        error=evil,
    )
    make_event(entry, username="<b>mallory</b>", language="<u>py</u>")
    for url in (reverse("journal:list"), reverse("journal:detail", args=["evil"])):
        html = console.get(url).content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html and "<b>mallory" not in html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert (
        "&lt;u&gt;py&lt;/u&gt;"
        in console.get(reverse("journal:detail", args=["evil"])).content.decode()
    )


# -- one request ---------------------------------------------------------------------------


@pytest.mark.smoke
def test_the_detail_page_shows_the_whole_request_and_its_events(console: Client) -> None:
    entry = make_entry(
        request_id="full",
        request_body='{"model":"qwen-coder","messages":[{"role":"user","content":"Привет"}]}',
        response_text="line 1\nline 2",
        status=200,
        ttft_ms=12.5,
        latency_ms=345.25,
        prompt_tokens=11,
        completion_tokens=22,
        client_ip="10.0.0.7",
        upstream="http://vllm-1:8000",
    )
    make_event(entry, kind="view")
    make_event(entry, kind="select", created_at=entry.created_at + dt.timedelta(seconds=3))
    html = console.get(reverse("journal:detail", args=["full"])).content.decode()
    # The body indented, non-Latin text as written.
    assert "{\n  &quot;model&quot;: &quot;qwen-coder&quot;,\n  &quot;messages&quot;: [" in html
    assert "Привет" in html
    assert "line 1\nline 2</pre>" in html
    for fact in ("12.5 ms", "345.3 ms", ">11<", ">22<", "10.0.0.7", "http://vllm-1:8000"):
        assert fact in html, fact
    events = re.findall(r'<tr class="journal-event-(\w+)">', html)
    assert events == ["view", "select"]


def test_a_truncated_body_is_shown_as_stored(console: Client) -> None:
    make_entry(request_id="cut", request_body='{"messages": [{"role": "us', truncated=True)
    html = console.get(reverse("journal:detail", args=["cut"])).content.decode()
    assert "{&quot;messages&quot;: [{&quot;role&quot;: &quot;us</pre>" in html
    assert "Truncated" in html


def test_the_detail_page_is_found_by_and_shows_the_clients_request_id(console: Client) -> None:
    make_entry(request_id="own-id", client_request_id="trace:1.a")
    html = console.get(reverse("journal:detail", args=["trace:1.a"])).content.decode()
    assert "Client's request id" in html and "<code>trace:1.a</code>" in html
    assert "<code>own-id</code>" in html
    plain = console.get(reverse("journal:detail", args=["own-id"])).content.decode()
    assert "trace:1.a" in plain


# The token and user as an auditor reads them: named, linked, or said to be gone.


@pytest.fixture
def owned() -> tuple[ApiUser, ApiToken]:
    user = ApiUser.objects.create(username="ada")
    token = ApiToken.objects.create(
        user=user, name="laptop VS Code", prefix="kdf_AbCd1234", digest="0" * 64
    )
    make_entry(
        request_id="owned",
        user_id=user.pk,
        username="ada",
        token_id=token.pk,
        auth_mode="per-user",
        response_id="",
    )
    return user, token


def fact(html: str, name: str) -> str:
    found = re.search(rf'<dd id="journal-{name}">(.*?)</dd>', html, re.S)
    assert found is not None, name
    return " ".join(found.group(1).split())


def test_the_detail_page_names_the_token_and_links_it_and_the_user(
    console: Client, owned: tuple[ApiUser, ApiToken]
) -> None:
    user, token = owned
    html = console.get(reverse("journal:detail", args=["owned"])).content.decode()
    token_url = reverse("admin:accounts_apitoken_change", args=[token.pk])
    user_url = reverse("admin:accounts_apiuser_change", args=[user.pk])
    assert fact(html, "token").startswith(
        f'<a href="{token_url}">laptop VS Code (kdf_AbCd1234…)</a>'
    )
    assert "per-user" in fact(html, "token")
    assert fact(html, "user").startswith(f'<a href="{user_url}">ada</a>')
    # An auditor may open both pages the links lead to.
    assert console.get(token_url).status_code == 200
    assert console.get(user_url).status_code == 200


def test_a_renamed_user_and_a_revoked_token_say_so(
    console: Client, owned: tuple[ApiUser, ApiToken]
) -> None:
    user, token = owned
    ApiUser.objects.filter(pk=user.pk).update(username="ada.lovelace")
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=T0)
    html = console.get(reverse("journal:detail", args=["owned"])).content.decode()
    assert '>ada</a> <span class="quiet">(now ada.lovelace)</span>' in fact(html, "user")
    assert '(kdf_AbCd1234…)</a> <span class="quiet">(revoked)</span>' in fact(html, "token")


def test_without_the_accounts_permissions_the_names_are_not_links(
    owned: tuple[ApiUser, ApiToken],
) -> None:
    reader = console_account("journal-only")
    reader.user_permissions.add(Permission.objects.get(codename="view_entry"))
    client = Client()
    client.force_login(reader)
    html = client.get(reverse("journal:detail", args=["owned"])).content.decode()
    assert fact(html, "token").startswith("laptop VS Code (kdf_AbCd1234…)")
    assert fact(html, "user").startswith("ada <span")
    assert "<a href" not in fact(html, "token") + fact(html, "user")


def test_a_deleted_token_and_user_show_their_ids(console: Client) -> None:
    make_entry(request_id="gone", user_id=424242, username="bob", token_id=434343)
    html = console.get(reverse("journal:detail", args=["gone"])).content.decode()
    assert fact(html, "token").startswith("id 434343 (deleted)")
    assert fact(html, "user") == 'bob <span class="quiet">(id 424242)</span> (deleted)'


def test_no_token_and_no_user_is_a_dash(console: Client) -> None:
    make_entry(request_id="anyone", user_id=None, username="", token_id=None, auth_mode="dummy")
    html = console.get(reverse("journal:detail", args=["anyone"])).content.decode()
    assert fact(html, "token") == '\N{EN DASH} <span class="quiet">dummy</span>'
    assert fact(html, "user") == "\N{EN DASH}"


def test_the_token_and_its_user_are_one_query(
    owned: tuple[ApiUser, ApiToken], django_assert_num_queries: Any
) -> None:
    user, token = owned
    with django_assert_num_queries(2):  # the entry, the token with its user
        found = selectors.entry_detail("owned")
        assert found is not None and found.token is not None and found.api_user is not None
        assert (found.token.name, found.api_user.username, found.token.state) == (
            "laptop VS Code",
            "ada",
            "active",
        )
    ApiToken.objects.filter(pk=token.pk).delete()
    with django_assert_num_queries(3):  # the token gone: its user looked up by the id
        found = selectors.entry_detail("owned")
        assert found is not None and found.token is None
        assert found.api_user == user


# Chat requests read as a conversation; the JSON a click away.


def test_a_chat_request_is_shown_as_its_messages_and_the_answer(console: Client) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Fix:\ndef f():\n    return  1"},
                {"type": "image_url", "image_url": {"url": "data:..."}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lint", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "<script>alert(1)</script>"},
    ]
    make_entry(
        request_id="chat",
        request_body=json.dumps({"model": "m", "messages": messages}),
        response_text="def f():\n    return 1",
    )
    html = console.get(reverse("journal:detail", args=["chat"])).content.decode()
    blocks = re.findall(
        r'<div class="journal-message journal-role-(\w+)[^"]*">\s*'
        r'<div class="journal-message-role">(.*?)</div>\s*'
        r'(?:<pre class="journal-text"[^>]*>(.*?)</pre>)',
        html,
        re.S,
    )
    assert [(style, role.split(" <")[0]) for style, role, _ in blocks] == [
        ("system", "system"),
        ("user", "user"),
        ("assistant", "assistant"),
        ("tool", "tool"),
        ("assistant", "assistant"),
    ]
    texts = [text for _, _, text in blocks]
    assert texts[0] == "You are terse."
    assert texts[1] == "Fix:\ndef f():\n    return  1\n[image_url part not shown]"
    assert texts[2] == "[tool call] lint({})"
    assert texts[3] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert "answers c1" in blocks[3][1]
    assert texts[4] == "def f():\n    return 1" and "the answer" in blocks[4][1]
    assert "<script>alert" not in html
    # The body as stored, indented, behind a toggle.
    raw = re.search(r'<details class="journal-raw" id="journal-raw">(.*?)</details>', html, re.S)
    assert raw is not None and "<summary>Raw JSON</summary>" in raw.group(1)
    assert "{\n  &quot;model&quot;: &quot;m&quot;,\n  &quot;messages&quot;: [" in raw.group(1)


@pytest.mark.parametrize(
    "body",
    [
        '{"model": "m", "prompt": "def add(a, b):"}',
        '{"language": "python", "segments": {"prefix": "x = ", "suffix": ""}}',
        '{"messages": [{"role": "user", "content": "cut sh',
    ],
)
def test_other_bodies_are_shown_as_before(console: Client, body: str) -> None:
    make_entry(request_id="plain", request_body=body, response_text="42")
    html = console.get(reverse("journal:detail", args=["plain"])).content.decode()
    assert 'id="journal-conversation"' not in html and "<details" not in html
    assert "<h2>Request body</h2>" in html
    assert '<pre class="journal-text" id="journal-response-text">42</pre>' in html


def test_an_unknown_request_is_404(console: Client) -> None:
    assert console.get(reverse("journal:detail", args=["nope"])).status_code == 404


# -- CSV -----------------------------------------------------------------------------------


def read_csv(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


@pytest.fixture
def tricky() -> None:
    make_entry(request_id="plain", model="m1")
    make_entry(
        request_id="tricky",
        model="m1",
        username='o\'neil, "the" dev',
        request_body='{"a": "comma, quote \\" and\nnewline"}',
        response_text='=HYPERLINK("http://evil","click")\r\nsecond line, with "quotes"',
        created_at=T0 + dt.timedelta(seconds=1),
    )
    make_entry(request_id="other", model="m2")


@pytest.mark.smoke
@pytest.mark.usefixtures("tricky")
def test_csv_export_streams_the_filtered_rows_intact(console: Client) -> None:
    response = console.get(reverse("journal:export"), {"model": "m1"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="journal-\d{8}-\d{6}\.csv"', response["Content-Disposition"]
    )
    assert isinstance(response, StreamingHttpResponse)
    content = b"".join(cast(Iterator[bytes], response.streaming_content))
    assert content.startswith(b"\xef\xbb\xbf")  # the BOM spreadsheets need for UTF-8
    rows = read_csv(content)
    assert [row["request_id"] for row in rows] == ["tricky", "plain"]
    tricky = rows[0]
    assert tricky["username"] == 'o\'neil, "the" dev'
    assert tricky["request_body"] == '{"a": "comma, quote \\" and\nnewline"}'
    # A formula is neutralised for spreadsheets, the rest kept as it was.
    assert (
        tricky["response_text"]
        == '\'=HYPERLINK("http://evil","click")\r\nsecond line, with "quotes"'
    )
    assert tricky["created_at"] == "2026-11-20T12:00:01.000+00:00"
    assert tricky["stream"] == "false" and tricky["status"] == "200"


def test_csv_times_are_rounded_for_a_spreadsheet(console: Client) -> None:
    make_entry(
        request_id="timed",
        created_at=T0 + dt.timedelta(microseconds=123_456),
        ttft_ms=12.345678901234,
        latency_ms=1234.56789,
    )
    make_entry(request_id="no-first-token", ttft_ms=None, latency_ms=0.04)
    response = console.get(reverse("journal:export"))
    assert isinstance(response, StreamingHttpResponse)
    rows = read_csv(b"".join(cast(Iterator[bytes], response.streaming_content)))
    timed, untimed = sorted(rows, key=lambda row: row["request_id"] != "timed")
    assert timed["created_at"] == "2026-11-20T12:00:00.123+00:00"
    assert (timed["ttft_ms"], timed["latency_ms"]) == ("12.3", "1234.6")
    assert (untimed["ttft_ms"], untimed["latency_ms"]) == ("", "0.0")


@pytest.mark.usefixtures("tricky")
def test_csv_export_under_asgi_streams_an_async_iterator(auditor: Any) -> None:
    async def download() -> tuple[Any, bytes]:
        client = AsyncClient()
        await client.aforce_login(auditor)
        response = await client.get(reverse("journal:export"), {"model": "m2"})
        assert isinstance(response, StreamingHttpResponse)
        pieces = cast(AsyncIterator[bytes], response.streaming_content)
        return response, b"".join([chunk async for chunk in pieces])

    # Called from this thread, the view's database work runs on it too (asgiref's
    # thread-sensitive mode), inside the test's transaction.
    response, content = async_to_sync(download)()
    assert response.status_code == 200
    assert response.is_async  # else Django buffers the export and warns
    assert [row["request_id"] for row in read_csv(content)] == ["other"]


def test_the_export_link_carries_the_current_filters(console: Client) -> None:
    html = console.get(reverse("journal:list"), {"model": "m1", "q": "a b"}).content.decode()
    link = re.search(r'href="([^"]+)" id="journal-export"', html)
    assert link is not None
    assert link.group(1).replace("&amp;", "&") == reverse("journal:export") + "?model=m1&q=a+b"


def test_an_export_with_a_wrong_filter_is_refused(console: Client) -> None:
    make_entry(request_id="not-exported", model="m1")
    response = console.get(reverse("journal:export"), {"model": "m1", "status": "teapot"})
    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    text = response.content.decode()
    assert text.startswith("No requests exported: Status — 'teapot' is not a status")
    assert "not-exported" not in text


# -- dashboards ----------------------------------------------------------------------------


@pytest.fixture
def fortnight(today_at_t0: dt.date) -> dt.date:
    """Two days of traffic in the last fortnight, one before it; events on some answers."""
    today = today_at_t0
    noon = dt.datetime.combine(today, dt.time(12), tzinfo=dt.UTC)
    yesterday = noon - dt.timedelta(days=1)
    a1 = make_entry(created_at=noon, username="ann", model="m-a", ttft_ms=10, latency_ms=100)
    a2 = make_entry(created_at=noon, username="ann", model="m-a", ttft_ms=20, latency_ms=200)
    b1 = make_entry(
        created_at=noon,
        username="bob",
        model="m-b",
        client_name="vim",
        language="go",
        ttft_ms=None,
        latency_ms=300,
    )
    c1 = make_entry(created_at=yesterday, username="cat", model="m-a", ttft_ms=40, latency_ms=400)
    make_entry(created_at=noon - dt.timedelta(days=20), username="old", model="m-old")
    # m-a: 3 shown, 2 accepted; m-b: 1 shown, 0 accepted.
    for entry in (a1, a2, c1):
        make_event(entry, kind="view")
    make_event(a1, kind="select")
    make_event(c1, kind="select")
    make_event(b1, kind="view")
    make_event(b1, kind="dismiss")
    return today


@pytest.mark.smoke
def test_dashboard_numbers(fortnight: dt.date) -> None:
    board = dashboards.dashboard(14, today=fortnight)
    assert (board.requests, board.users, board.shown, board.accepted) == (4, 3, 4, 2)
    assert board.rate == 0.5
    assert len(board.per_day) == 14 and board.per_day[-1].day == fortnight
    today, yesterday = board.per_day[-1], board.per_day[-2]
    assert (today.requests, today.users, today.shown, today.accepted) == (3, 2, 3, 1)
    assert (yesterday.requests, yesterday.users, yesterday.shown, yesterday.accepted) == (
        1,
        1,
        1,
        1,
    )
    assert sum(day.requests for day in board.per_day[:-2]) == 0

    def table(shares: list[dashboards.Share]) -> list[tuple[str, int, int, int]]:
        return [(s.name, s.requests, s.shown, s.accepted) for s in shares]

    assert table(board.by_model) == [("m-a", 3, 3, 2), ("m-b", 1, 1, 0)]
    assert table(board.by_user) == [("ann", 2, 2, 1), ("bob", 1, 1, 0), ("cat", 1, 1, 1)]
    assert table(board.by_client) == [("vscode", 3, 3, 2), ("vim", 1, 1, 0)]
    assert table(board.by_language) == [("python", 3, 3, 2), ("go", 1, 1, 0)]
    # percentile_cont's ranks, read from the histograms: within 5 % of the exact values
    # (20, 250, 38, 385); TTFT skips the row without one.
    timing = board.timing
    close = functools.partial(pytest.approx, rel=0.05)
    assert (timing.ttft_p50, timing.latency_p50) == (close(20.0), close(250.0))
    assert timing.ttft_p95 == close(38.0)
    assert timing.latency_p95 == close(385.0)
    by_model = {t.name: t for t in board.timing_by_model}
    assert by_model["m-a"].requests == 3 and by_model["m-a"].latency_p50 == close(200.0)
    assert by_model["m-b"].ttft_p50 is None and by_model["m-b"].latency_p95 == close(300.0)
    # Per day too, and tokens and errors.
    assert today.latency_p50 == close(200.0) and yesterday.ttft_p50 == close(40.0)
    assert (board.prompt_tokens, board.completion_tokens, board.errors) == (20, 28, 0)


def test_a_shorter_period_leaves_older_days_out(fortnight: dt.date) -> None:
    board = dashboards.dashboard(1, today=fortnight)
    assert (board.requests, board.shown, board.accepted) == (3, 3, 1)
    assert [share.name for share in board.by_model] == ["m-a", "m-b"]


def test_dashboards_are_computed_once_a_minute(
    fortnight: dt.date, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    monkeypatch.setattr(dashboards, "CACHE_SECONDS", 60)
    today = fortnight
    first = dashboards.dashboard(14, today=today)
    make_entry(created_at=dt.datetime.combine(today, dt.time(1), tzinfo=dt.UTC))
    assert dashboards.dashboard(14, today=today) == first


CHARTS = 6  # requests, users, errors, tokens, latency, acceptance


@pytest.mark.smoke
@pytest.mark.usefixtures("fortnight")
def test_the_dashboard_page_draws_its_charts_without_scripts(console: Client) -> None:
    response = console.get(reverse("journal:dashboard"), {"days": "7"})
    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'id="total-requests">4<', html)
    assert re.search(r'id="total-rate">50%<', html)
    assert html.count('class="journal-chart-bar"') == CHARTS * 7  # a column a day
    assert "<title>" in html and "m-a" in html
    # No chart library: the page's own content has no script (the theme's frame has its).
    content = html.split('id="content-main"', 1)[1].split('id="modal-overlay"', 1)[0]
    assert "<script" not in content
    # Nothing loaded from elsewhere (a CDN): every address is on this server.
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)


def test_a_silly_period_falls_back_or_is_capped(console: Client) -> None:
    assert console.get(reverse("journal:dashboard"), {"days": "x"}).status_code == 200
    html = console.get(reverse("journal:dashboard"), {"days": "100000"}).content.decode()
    assert f"<strong>{dashboards.MAX_DAYS}</strong>" not in html  # not a listed choice
    assert html.count('class="journal-chart-bar"') == CHARTS * dashboards.MAX_DAYS


@pytest.mark.smoke
def test_a_day_opens_by_the_hour_and_lines_link_to_their_rows(
    console: Client, fortnight: dt.date
) -> None:
    page = console.get(reverse("journal:dashboard"), {"days": "7"}).content.decode()
    # Each day's column and line open that day's hours.
    assert f'href="?day={fortnight:%Y-%m-%d}"' in page
    # A user's line lists that user's requests of the period.
    listed = f"{reverse('journal:list')}?since={fortnight - dt.timedelta(days=6):%Y-%m-%d}"
    assert f'href="{listed}&amp;until={fortnight:%Y-%m-%d}&amp;user=ann"' in page

    hours = console.get(reverse("journal:dashboard"), {"day": f"{fortnight:%Y-%m-%d}"})
    html = hours.content.decode()
    assert hours.status_code == 200
    assert html.count('class="journal-chart-bar"') == CHARTS * 24
    assert re.search(r'id="total-requests">3<', html)  # that day only
    noon = re.search(r'<tr data-day="[^"]+" data-hour="12">(.*?)</tr>', html, re.S)
    assert noon and re.findall(r'class="num">([^<]*)<', noon.group(1))[:2] == ["3", "2"]
    # An hour's column lists that day's requests.
    day = f"{fortnight:%Y-%m-%d}"
    assert f'href="{reverse("journal:list")}?since={day}&amp;until={day}"' in html
    # A day that is not a date falls back to the last days.
    assert console.get(reverse("journal:dashboard"), {"day": "nope"}).status_code == 200


def test_rates_are_drawn_against_a_hundred_percent() -> None:
    chart = charts.column_chart([("a", 10.0), ("b", 20.0)], unit="%", top=100)
    assert chart.top == "100%"
    assert chart.columns[1].height == pytest.approx(chart.height * 0.2)
    # Without a top, the highest value is the top.
    assert charts.column_chart([("a", 10.0), ("b", 20.0)]).top == "20"


def test_a_model_nobody_serves_is_not_listed_among_the_models(fortnight: dt.date) -> None:
    noon = dt.datetime.combine(fortnight, dt.time(12), tzinfo=dt.UTC)
    make_entry(created_at=noon, username="ann", model="gpt-typo", status=404)
    board = dashboards.dashboard(14, today=fortnight)
    assert [share.name for share in board.by_model] == ["m-a", "m-b"]
    assert board.requests == 5 and board.errors == 1
    assert ("404", 1) in [(share.name, share.requests) for share in board.by_status]
