"""The console's reads: keyset pages, filters, search, the export, the dropdowns."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
from django.db import connections
from django.db.models.lookups import LessThan
from django.test.utils import CaptureQueriesContext

from accounts import services
from journal import keyset, selectors, windows
from journal.models import Entry
from journal.router import journal_database
from journal.search import SEARCH_INDEX_NAME
from journal.selectors import Cursor, EntryFilters, entry_page
from journal.tests.entries import T0, make_entry, make_event

pytestmark = pytest.mark.django_db
POSTGRES = bool(os.environ.get("DB_URL"))
on_postgres = pytest.mark.skipif(not POSTGRES, reason="PostgreSQL only (DB_URL)")
on_sqlite = pytest.mark.skipif(POSTGRES, reason="the fallback of databases other than PostgreSQL")


@pytest.fixture(autouse=True)
def no_choice_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selectors, "CHOICES_CACHE_SECONDS", 0)


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return [row["id"] for row in rows]


def all_pages_older(filters: EntryFilters, limit: int) -> list[list[int]]:
    pages = []
    page = entry_page(filters, limit=limit)
    pages.append(ids(page.rows))
    while page.older:
        page = entry_page(filters, before=Cursor.decode(page.older), limit=limit)
        pages.append(ids(page.rows))
    return pages


def _older_of(filters: EntryFilters, number: int) -> str:
    """The "older" link of page ``number`` (0: the first), reached through the links."""
    page = entry_page(filters, limit=3)
    for _ in range(number):
        assert page.older
        page = entry_page(filters, before=Cursor.decode(page.older), limit=3)
    assert page.older
    return page.older


# -- keyset pagination ---------------------------------------------------------------------


@pytest.mark.smoke
def test_pages_neither_overlap_nor_skip_rows_that_share_a_timestamp() -> None:
    # Seven rows in the same microsecond, between others: only the id tells them apart.
    for offset in (3, 2, 1):
        make_entry(created_at=T0 + dt.timedelta(seconds=offset))
    for _ in range(7):
        make_entry(created_at=T0)
    for offset in (1, 2):
        make_entry(created_at=T0 - dt.timedelta(seconds=offset))
    expected = list(Entry.objects.order_by("-created_at", "-id").values_list("id", flat=True))

    pages = all_pages_older(EntryFilters(), limit=3)

    assert [len(page) for page in pages] == [3, 3, 3, 3]
    assert [row for page in pages for row in page] == expected

    # And back up through the newer links from the last page: the same pages.
    last = entry_page(EntryFilters(), before=Cursor.decode(_older_of(EntryFilters(), 2)), limit=3)
    assert ids(last.rows) == pages[-1] and last.older is None
    back = [ids(last.rows)]
    page = last
    while page.newer:
        page = entry_page(EntryFilters(), after=Cursor.decode(page.newer), limit=3)
        back.append(ids(page.rows))
    assert back == list(reversed(pages))


@pytest.mark.smoke
def test_first_page_links_only_older_and_a_middle_page_both_ways() -> None:
    for second in range(5):
        make_entry(created_at=T0 + dt.timedelta(seconds=second))
    first = entry_page(EntryFilters(), limit=2)
    assert first.newer is None and first.older is not None
    middle = entry_page(EntryFilters(), before=Cursor.decode(first.older), limit=2)
    assert middle.newer is not None and middle.older is not None
    assert entry_page(EntryFilters(), after=Cursor.decode(middle.newer), limit=2).rows == first.rows


def test_cursor_round_trips_and_is_url_safe() -> None:
    cursor = Cursor(dt.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=dt.UTC), 42)
    text = cursor.encode()
    assert text == "20260102T030405.000678Z_42"
    assert Cursor.decode(text) == cursor
    for bad in ("", "nonsense", "20260102T030405.000678Z_x", "2026-01-02_4"):
        with pytest.raises(ValueError):
            Cursor.decode(bad)


@pytest.mark.smoke
def test_the_list_reads_no_texts_and_counts_nothing() -> None:
    make_entry(response_text="line one\n\n   line two " + "x" * 500, request_body="SECRET-BODY")
    with CaptureQueriesContext(connections[journal_database()]) as queries:
        page = entry_page(EntryFilters(user="dev1", model="qwen-coder"))
    sql = " ".join(query["sql"] for query in queries.captured_queries)
    assert '"request_body"' not in sql
    assert "COUNT(" not in sql.upper()
    preview = page.rows[0]["preview"]
    assert preview.startswith("line one line two xxx") and len(preview) == selectors.PREVIEW_CHARS
    assert preview.endswith("…")


# -- filters -------------------------------------------------------------------------------


@pytest.fixture
def variety() -> dict[str, Entry]:
    return {
        "chat": make_entry(),
        "other_user": make_entry(username="dev2", user_id=2),
        "completion": make_entry(
            endpoint="/v1/completions",
            feature="completion",
            model="starcoder",
            client_name="jetbrains",
        ),
        "server_error": make_entry(status=502, error="upstream went away"),
        "not_found": make_entry(status=404),
        "cancelled": make_entry(status=499, cancelled=True),
    }


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"user": "dev2"}, {"other_user"}),
        ({"user_id": 2}, {"other_user"}),
        ({"model": "starcoder"}, {"completion"}),
        ({"endpoint": "/v1/completions"}, {"completion"}),
        ({"feature": "completion"}, {"completion"}),
        ({"client": "jetbrains"}, {"completion"}),
        ({"status": "502"}, {"server_error"}),
        ({"status": "5xx"}, {"server_error"}),
        ({"status": "4xx"}, {"not_found", "cancelled"}),
        ({"status": "cancelled"}, {"cancelled"}),
        ({"status": "2xx", "user": "dev1", "model": "qwen-coder"}, {"chat"}),
    ],
)
def test_each_filter_keeps_only_its_rows(
    variety: dict[str, Entry], filters: dict[str, Any], expected: set[str]
) -> None:
    page = entry_page(EntryFilters.from_mapping(filters))
    assert set(ids(page.rows)) == {variety[name].pk for name in expected}


def test_a_user_name_of_an_api_user_finds_the_rows_made_under_an_older_name() -> None:
    user = services.create_user(username="carol")
    before_rename = make_entry(username="caroline", user_id=user.pk)
    after_rename = make_entry(username="carol", user_id=user.pk)
    make_entry(username="carol", user_id=None)  # one-token mode: no id; not this API user
    page = entry_page(EntryFilters(user="carol"))
    assert set(ids(page.rows)) == {before_rename.pk, after_rename.pk}
    # A name no API user has (any more) is matched as the journal recorded it.
    assert ids(entry_page(EntryFilters(user="caroline")).rows) == [before_rename.pk]


@pytest.mark.smoke
def test_dates_are_whole_utc_days_both_ends_included() -> None:
    day = dt.date(2026, 11, 20)
    start = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    too_early = make_entry(created_at=start - dt.timedelta(microseconds=1))
    first = make_entry(created_at=start)
    last = make_entry(created_at=start + dt.timedelta(days=2) - dt.timedelta(microseconds=1))
    too_late = make_entry(created_at=start + dt.timedelta(days=2))
    page = entry_page(EntryFilters(since=day, until=day + dt.timedelta(days=1)))
    assert ids(page.rows) == [last.pk, first.pk]
    assert ids(entry_page(EntryFilters(until=day - dt.timedelta(days=1))).rows) == [too_early.pk]
    assert ids(entry_page(EntryFilters(since=day + dt.timedelta(days=2))).rows) == [too_late.pk]


@pytest.mark.parametrize("status", ["", "abc", "600", "6xx", "50", "5x"])
def test_a_status_that_is_not_one_is_refused(status: str) -> None:
    with pytest.raises(selectors.InvalidStatus):
        selectors.parse_status(status)


# -- search --------------------------------------------------------------------------------


@pytest.fixture
def texts() -> dict[str, Entry]:
    return {
        "prompt": make_entry(
            request_body='{"prompt": "def parse_invoice(amount):"}', response_text=""
        ),
        "answer": make_entry(response_text="Use parse_invoice with a total"),
        "both": make_entry(
            request_body='{"prompt": "invoice totals"}', response_text="the grand total"
        ),
        "neither": make_entry(response_text="nothing to see"),
    }


@on_sqlite
@pytest.mark.smoke
def test_search_elsewhere_is_a_substring_match_over_prompt_and_answer(
    texts: dict[str, Entry], monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite has full text (test_search_syntax.py): the fallback, on its connection renamed.
    monkeypatch.setattr(connections[journal_database()], "vendor", "another")
    found = ids(entry_page(EntryFilters(q="PARSE_INVOICE")).rows)
    assert set(found) == {texts["prompt"].pk, texts["answer"].pk}
    assert ids(entry_page(EntryFilters(q="grand tot")).rows) == [texts["both"].pk]


@on_postgres
def test_search_on_postgresql_is_full_text_with_web_search_syntax(texts: dict[str, Entry]) -> None:
    def search(q: str) -> set[int]:
        return set(ids(entry_page(EntryFilters(q=q)).rows))

    # An identifier is a phrase of its parts: it finds itself, not its parts elsewhere.
    assert search("parse_invoice") == {texts["prompt"].pk, texts["answer"].pk}
    assert search("invoice") == {texts["prompt"].pk, texts["answer"].pk, texts["both"].pk}
    assert search("total") == {texts["answer"].pk, texts["both"].pk}
    assert search('"grand total"') == {texts["both"].pk}
    assert search("total -grand") == {texts["answer"].pk}
    assert search("grand or nothing") == {texts["both"].pk, texts["neither"].pk}


@on_postgres
@pytest.mark.parametrize("sizes", [(2, 4), (1,), (100,)])
@pytest.mark.parametrize(
    "filters",
    [EntryFilters(q="needle"), EntryFilters(status="5xx"), EntryFilters(model="m", client="vim")],
)
def test_windowed_pages_neither_overlap_nor_skip(
    monkeypatch: pytest.MonkeyPatch, sizes: tuple[int, ...], filters: EntryFilters
) -> None:
    """Pages the indexes cannot serve in order (journal.windows), window by window."""
    monkeypatch.setattr(windows, "WINDOWS", sizes)
    # Matches spread out: clustered among the newest, sparse further back, some sharing a
    # timestamp, and the oldest beyond every window.
    needle = {"response_text": "needle", "status": 502, "model": "m", "client_name": "vim"}
    for second in range(40):
        match = second % 7 == 0 or second > 35
        make_entry(created_at=T0 + dt.timedelta(seconds=second), **(needle if match else {}))
    for _ in range(3):
        make_entry(created_at=T0, **needle)
    expected = list(
        Entry.objects.filter(response_text="needle")
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)
    )
    assert not selectors._one_index_serves(filters)
    pages = all_pages_older(filters, limit=3)
    assert [row for page in pages for row in page] == expected
    assert all(len(page) == 3 for page in pages[:-1])
    # Back to the newest through the "newer" links.
    page = entry_page(filters, before=Cursor.decode(_older_of(filters, len(pages) - 2)), limit=3)
    back = [ids(page.rows)]
    while page.newer:
        page = entry_page(filters, after=Cursor.decode(page.newer), limit=3)
        back.append(ids(page.rows))
    assert back == list(reversed(pages))


@pytest.mark.parametrize(
    ("filters", "served"),
    [
        (EntryFilters(), True),
        (EntryFilters(model="m", since=dt.date(2026, 1, 1), until=dt.date(2026, 2, 1)), True),
        (EntryFilters(status="500"), True),
        (EntryFilters(user_id=3), True),
        (EntryFilters(status="5xx"), False),
        (EntryFilters(status="cancelled"), False),
        (EntryFilters(model="m", client="vim"), False),
        (EntryFilters(user="ann"), False),
        (EntryFilters(q="x"), False),
    ],
)
def test_which_pages_one_index_serves(filters: EntryFilters, served: bool) -> None:
    assert selectors._one_index_serves(filters) is served


@on_postgres
def test_search_uses_the_gin_index() -> None:
    """The query must spell the indexed expression exactly, or PostgreSQL scans the table."""
    make_entry(response_text="needle")
    query = selectors.filtered_entries(EntryFilters(q="needle")).values("id")
    connection = connections[journal_database()]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = query.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert SEARCH_INDEX_NAME in plan, plan


@on_postgres
def test_keyset_pages_walk_the_time_index() -> None:
    make_entry()
    page_query = (
        Entry.objects.filter(LessThan(keyset.key(), keyset.value(Cursor(T0, 10**9))))
        .order_by("-created_at", "-id")
        .values("id")[:51]
    )
    connection = connections[journal_database()]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = page_query.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "journal_time" in plan and "Index Cond" in plan, plan


# -- the total, the dropdowns --------------------------------------------------------------


@pytest.mark.smoke
def test_a_small_journal_is_counted_exactly() -> None:
    for _ in range(3):
        make_entry()
    assert selectors.estimated_total() == selectors.Total(3, approximate=False)


@on_postgres
def test_a_large_journal_shows_postgresqls_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selectors, "EXACT_COUNT_UP_TO", 2)
    for _ in range(5):
        make_entry()
    with connections[journal_database()].cursor() as cursor:
        cursor.execute(f"ANALYZE {Entry._meta.db_table}")
    with CaptureQueriesContext(connections[journal_database()]) as queries:
        total = selectors.estimated_total()
    assert total == selectors.Total(5, approximate=True)
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)


@pytest.mark.smoke
def test_dropdowns_list_each_value_once_without_blanks() -> None:
    for model, client in [("b-model", "vim"), ("a-model", ""), ("b-model", "vscode"), ("", "vim")]:
        make_entry(model=model, client_name=client)
    choices = selectors.filter_choices()
    assert choices["model"] == ["a-model", "b-model"]
    assert choices["client_name"] == ["vim", "vscode"]
    assert choices["endpoint"] == ["/v1/chat/completions"]


def test_dropdowns_are_cached(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    # A cache of this test's own: a shared one (Redis) would serve its value to the
    # servers other tests start on the same database.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    monkeypatch.setattr(selectors, "CHOICES_CACHE_SECONDS", 60)
    make_entry(model="cached")
    first = selectors.filter_choices()
    make_entry(model="zz-new-model")
    with CaptureQueriesContext(connections[journal_database()]) as queries:
        assert selectors.filter_choices() == first
    assert not queries.captured_queries


# -- one request, the export ---------------------------------------------------------------


@pytest.mark.smoke
def test_detail_has_the_answers_events_in_order() -> None:
    entry = make_entry()
    select = make_event(entry, kind="select", created_at=T0 + dt.timedelta(seconds=5))
    view = make_event(entry, kind="view")
    make_event(None, response_id="someone-else")
    found = selectors.entry_detail(entry.request_id)
    assert found is not None
    assert found.entry.pk == entry.pk and found.entry.request_body == entry.request_body
    assert [event.pk for event in found.events] == [view.pk, select.pk]
    assert selectors.entry_detail("no-such-request") is None


def test_detail_is_found_by_the_id_the_client_sent_too_its_latest_use_first() -> None:
    earlier = make_entry(client_request_id="client-7", created_at=T0 - dt.timedelta(hours=1))
    later = make_entry(client_request_id="client-7")
    by_own = selectors.entry_detail(earlier.request_id)
    assert by_own is not None and by_own.entry.pk == earlier.pk
    by_clients = selectors.entry_detail("client-7")
    assert by_clients is not None and by_clients.entry.pk == later.pk
    row = next(selectors.export_rows(EntryFilters()))
    assert row[selectors.EXPORT_FIELDS.index("client_request_id")] == "client-7"


def test_detail_of_an_answer_without_id_has_no_events() -> None:
    entry = make_entry(response_id="")
    make_event(None, response_id="")
    found = selectors.entry_detail(entry.request_id)
    assert found is not None and found.events == []


@pytest.mark.smoke
def test_export_rows_are_every_match_newest_first_with_the_texts() -> None:
    old = make_entry(created_at=T0 - dt.timedelta(hours=1), model="m1")
    new = make_entry(model="m1", request_body="BODY", response_text="TEXT")
    make_entry(model="m2")
    rows = list(selectors.export_rows(EntryFilters(model="m1")))
    index = selectors.EXPORT_FIELDS.index
    assert [row[index("request_id")] for row in rows] == [new.request_id, old.request_id]
    assert rows[0][index("request_body")] == "BODY"
    assert rows[0][index("response_text")] == "TEXT"
