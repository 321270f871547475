"""Tabby's completion events: recorder → writer → ``Event`` rows, outages, the dashboard's
acceptance numbers and the request page's list of events."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from django import db
from django.test import Client
from django.urls import reverse

from accounts.roles import AUDITORS
from journal import dashboards, recorder, selectors
from journal import writer as writer_module
from journal.events import EVENT_PAYLOAD_MAX_BYTES, event_row
from journal.models import ROLLUPS, TIMINGS, Entry, Event
from journal.record import EventRecord, Record
from journal.rollups import COUNTERS, rebuild
from journal.router import journal_database
from journal.tests.conftest import PrivateCluster
from journal.tests.entries import console_account, make_entry, make_event
from journal.tests.test_outage import private_alias  # noqa: F401 - a fixture
from journal.tests.test_writer import new_record, simple_row, wait_until, writers
from journal.writer import JournalWriter
from kodify_site.testing import WAIT_S

DASH = "\N{EN DASH}"  # what the pages show for "none"
TABBY_AGENT = "Node.js/v20.11.0 tabby-agent/1.7.0 Visual-Studio-Code/1.90.0"


def new_event(response_id: str = "cmpl-1", kind: str = "view", **fields: Any) -> EventRecord:
    values: dict[str, Any] = {
        "username": "ann",
        "user_id": 7,
        "user_agent": TABBY_AGENT,
        "payload": {"view_id": uuid.uuid4().hex, "elapsed": 120},
        **fields,
    }
    return EventRecord(kind, response_id, 0, **values)


def completion_record(response_id: str, **fields: Any) -> Record:
    """A Tabby completion as the gateway records it, its answer carrying ``response_id``."""
    answer = {"id": response_id, "object": "text_completion", "choices": [{"text": "x)"}]}
    values: dict[str, Any] = {
        "request_id": uuid.uuid4().hex,
        "endpoint": "/v1/completions",
        "feature": "completion",
        "model": "qwen-coder",
        "language": "python",
        "username": "ann",
        "user_id": 7,
        "status": 200,
        "request_body": b'{"prompt": "def f(", "language": "python"}',
        "response_chunks": [orjson.dumps(answer)],
        **fields,
    }
    return Record(**values)


def spooled_events(spool_dir: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for path in sorted((spool_dir / "events").glob("spool-*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


def stored_events() -> list[tuple[str, str]]:
    return sorted(Event.objects.values_list("response_id", "kind"))


# -- the rows -----------------------------------------------------------------------------


@pytest.mark.smoke
def test_an_event_becomes_an_event_row() -> None:
    row = event_row(
        new_event(
            "cmpl-9",
            "select",
            created_at=1_800_000_000.123456,
            payload={"elapsed": 900, "select_kind": "line", "language": "rust"},
        )
    )
    assert row["created_at"] == dt.datetime(2027, 1, 15, 8, 0, 0, 123456, tzinfo=dt.UTC)
    assert (row["kind"], row["response_id"], row["choice_index"]) == ("select", "cmpl-9", 0)
    assert (row["user_id"], row["username"]) == (7, "ann")
    assert row["client_name"] == "tabby-agent (VS Code)"
    assert row["language"] == "rust"  # from the payload when the event names none
    assert row["payload"] == {"elapsed": 900, "select_kind": "line", "language": "rust"}
    assert event_row(new_event(language="go", payload={"language": "rust"}))["language"] == "go"
    assert event_row(new_event(user_agent=""))["client_name"] == ""


@pytest.mark.smoke
def test_an_event_row_fits_its_columns() -> None:
    row = event_row(
        new_event(
            "cmpl-" + "x" * 100,
            username="u" * 300,
            payload={"view_id": "v" * 10_000, "elapsed": 5, "nested": {"a": [1, 2]}},
        )
    )
    assert len(row["response_id"]) == 64 and len(row["username"]) == 150
    payload = row["payload"]
    assert payload["truncated"] is True and payload["elapsed"] == 5
    assert len(payload["view_id"]) < 300 and "nested" not in payload
    assert len(orjson.dumps(payload)) <= EVENT_PAYLOAD_MAX_BYTES
    # What JSON cannot hold as such is kept as text rather than failing the event.
    assert event_row(new_event(payload={"at": dt.date(2026, 1, 2)}))["payload"] == {
        "at": "2026-01-02"
    }


# -- recorder and writer --------------------------------------------------------------------


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def journal_on(settings: Any, spool_dir: Path) -> Iterator[Any]:
    settings.LOGS = True
    settings.KODIFY_JOURNAL_CONVERTER = "thread"  # the helper process has its own tests
    settings.KODIFY_JOURNAL_SPOOL_DIR = spool_dir
    # A minute: only flush() can make the writer store anything within a test.
    settings.KODIFY_JOURNAL_FLUSH_SECONDS = 60.0
    recorder.reset_for_tests()
    yield settings
    recorder.reset_for_tests()


@pytest.fixture
def make_writer(spool_dir: Path) -> Iterator[Callable[..., JournalWriter]]:
    # No timed flush: these tests say when the writer stores.
    with writers(spool_dir, flush_seconds=60.0) as factory:
        yield factory


class Outage:
    """Both of a writer's stores fail, as with a lost server, while ``down``."""

    def __init__(self, writer: JournalWriter) -> None:
        self.down = False
        self.entries, self.events = writer._store, writer._event_store
        writer._store = self  # type: ignore[assignment]
        writer._event_store = _EventSide(self)  # type: ignore[assignment]

    def _check(self) -> None:
        if self.down:
            raise db.OperationalError("connection refused")

    def insert(self, rows: list[dict[str, Any]], *, skip_stored: bool) -> None:
        self._check()
        self.entries.insert(rows, skip_stored=skip_stored)

    def probe(self) -> None:
        self._check()
        self.entries.probe()

    def close(self) -> None:
        self.entries.close()


class _EventSide:
    def __init__(self, outage: Outage) -> None:
        self.outage = outage

    def insert(self, rows: list[dict[str, Any]], *, skip_stored: bool) -> None:
        self.outage._check()
        self.outage.events.insert(rows, skip_stored=skip_stored)

    def close(self) -> None:
        self.outage.events.close()


@pytest.fixture
def probe_every_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that lost its database probes it on every turn, so that the turn a flush
    waits for is also the one that replays."""
    monkeypatch.setattr(writer_module, "PROBE_FIRST_SECONDS", 0.0)
    monkeypatch.setattr(writer_module, "PROBE_MAX_SECONDS", 0.0)


@pytest.mark.smoke
@pytest.mark.django_db(transaction=True)
def test_recorded_events_are_stored_beside_their_completion_once_flushed(journal_on) -> None:
    rec = completion_record("cmpl-abc")
    recorder.record(rec)
    recorder.record_event(new_event("cmpl-abc", "view", payload={"view_id": "v1"}))
    recorder.record_event(
        new_event("cmpl-abc", "select", payload={"elapsed": 1500, "select_kind": "line"})
    )
    assert recorder.flush(WAIT_S)

    # No waiting: the writer's timer is a minute away, flush promised the rows are in.
    entry = Entry.objects.get(request_id=rec.request_id)
    assert entry.response_id == "cmpl-abc"
    events = selectors.entry_detail(rec.request_id).events  # type: ignore[union-attr]
    assert [(e.kind, e.response_id) for e in events] == [
        ("view", "cmpl-abc"),
        ("select", "cmpl-abc"),
    ]
    view, select = events
    assert (view.username, view.user_id, view.client_name) == ("ann", 7, "tabby-agent (VS Code)")
    assert view.payload == {"view_id": "v1"}
    assert select.payload == {"elapsed": 1500, "select_kind": "line"}
    writer = recorder.current_writer()
    assert writer is not None and writer.stats.events_written == 2


@pytest.mark.django_db(transaction=True)
def test_record_event_does_nothing_when_the_journal_is_off(settings) -> None:
    settings.LOGS = False
    recorder.reset_for_tests()
    recorder.record_event(new_event())
    assert recorder.current_writer() is None
    assert recorder.flush(1.0)
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_full_queue_drops_events_with_a_warning_a_minute(make_writer, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="kodify.journal")
    writer = make_writer(queue_size=3, start=False)
    records = [new_record() for _ in range(2)]
    for rec in records:
        writer.submit(rec)
    kept = new_event("cmpl-kept")
    writer.submit_event(kept)
    for number in range(5):
        writer.submit_event(new_event(f"cmpl-lost-{number}"))

    assert writer.stats.events_dropped == 5
    warnings = [r.getMessage() for r in caplog.records if "completion events" in r.getMessage()]
    assert len(warnings) == 1 and "1 so far" in warnings[0]
    writer.start()
    assert writer.flush(WAIT_S)
    assert stored_events() == [("cmpl-kept", "view")]
    assert Entry.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_events_wait_in_their_spool_during_an_outage_and_are_stored_once_back(
    make_writer, spool_dir, probe_every_turn, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="kodify.journal")
    writer = make_writer(batch_size=4)
    outage = Outage(writer)
    writer.submit_event(new_event("cmpl-before"))
    assert writer.flush(WAIT_S)

    outage.down = True
    during = [new_event(f"cmpl-{n}", kind) for n in range(5) for kind in ("view", "dismiss")]
    for event in during:
        writer.submit_event(event)
    writer.submit(new_record(request_id="req-during"))
    assert writer.flush(WAIT_S)
    assert writer.down
    assert stored_events() == [("cmpl-before", "view")]
    assert sorted((row["response_id"], row["kind"]) for row in spooled_events(spool_dir)) == sorted(
        (event.response_id, event.kind) for event in during
    )
    assert writer.stats.events_spooled == 10

    outage.down = False
    assert writer.flush(WAIT_S)  # probes: the database is back
    # Replays the requests, then the events (a paced batch at a time).
    expected = sorted(
        [("cmpl-before", "view"), *((event.response_id, event.kind) for event in during)]
    )
    assert wait_until(lambda: stored_events() == expected)
    assert not writer.down
    assert Entry.objects.filter(request_id="req-during").exists()
    assert wait_until(lambda: not list((spool_dir / "events").glob("spool-*.jsonl")))
    assert writer.stats.events_replayed == 10
    assert "Journal spool replayed: 10 events." in caplog.text


@pytest.mark.django_db(transaction=True)
def test_an_event_batch_committed_without_an_acknowledgement_is_stored_once(
    make_writer, probe_every_turn
) -> None:
    writer = make_writer()
    store = writer._event_store

    class LostAck:
        calls = 0

        def insert(self, rows: list[dict[str, Any]], *, skip_stored: bool) -> None:
            LostAck.calls += 1
            store.insert(rows, skip_stored=skip_stored)
            if LostAck.calls <= 2:  # the write and its immediate retry both "fail"
                raise db.OperationalError("server closed the connection unexpectedly")

        def close(self) -> None:
            store.close()

    writer._event_store = LostAck()
    events = [new_event(f"cmpl-{n}") for n in range(6)]
    for event in events:
        writer.submit_event(event)
    assert writer.flush(WAIT_S)
    assert not writer.down
    assert writer.stats.events_spooled == 6 and writer.stats.events_replayed == 6
    assert stored_events() == sorted((event.response_id, "view") for event in events)


@pytest.mark.django_db(transaction=True)
def test_a_dead_processs_spooled_events_are_adopted_and_replayed(make_writer, spool_dir) -> None:
    rows = [event_row(new_event(f"cmpl-{n}", "select")) for n in range(3)]
    dead = spool_dir / "events" / "spool-999999-dead.jsonl"
    dead.parent.mkdir(parents=True)
    # Twice: a file replayed in part before its process died holds rows already stored.
    dead.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows + rows))
    writer = make_writer()
    assert writer.flush(WAIT_S)
    assert wait_until(lambda: not dead.exists())  # adopted at once, replayed
    assert stored_events() == [(f"cmpl-{n}", "select") for n in range(3)]
    # The requests' replay never reads the events' folder.
    assert Entry.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_refused_event_is_set_aside_and_the_rest_stored(make_writer, spool_dir) -> None:
    writer = make_writer()
    writer.submit_event(new_event("cmpl-good"))
    writer.submit_event(new_event("cmpl-bad", kind=None))  # type: ignore[arg-type]
    writer.submit_event(new_event("cmpl-good-too"))
    assert writer.flush(WAIT_S)
    assert stored_events() == [("cmpl-good", "view"), ("cmpl-good-too", "view")]
    (rejected,) = spool_dir.glob("rejected-*.jsonl")
    assert orjson.loads(rejected.read_bytes())["event"]["response_id"] == "cmpl-bad"
    assert not writer.down


@pytest.mark.django_db(transaction=True)
def test_stop_spools_the_events_it_cannot_store(make_writer, spool_dir) -> None:
    writer = make_writer(start=False)
    writer.submit_event(new_event("cmpl-late"))
    writer.stop(WAIT_S)  # never started: what is queued goes to the spool
    assert [row["response_id"] for row in spooled_events(spool_dir)] == ["cmpl-late"]
    assert make_writer().flush(WAIT_S)  # a new writer adopts the file
    assert stored_events() == [("cmpl-late", "view")]


@pytest.mark.skipif(
    not os.environ.get("DB_URL"), reason="runs a PostgreSQL server of its own, as test_outage"
)
def test_events_survive_a_real_database_outage(
    private_postgres: PrivateCluster,
    private_alias: str,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    probe_every_turn: None,
) -> None:
    spool_dir = tmp_path / "spool"
    writer = JournalWriter(
        alias=private_alias, spool_dir=spool_dir, build_row=simple_row, flush_seconds=60.0
    )
    writer.start()

    def stored() -> list[tuple[str, str]]:
        with private_postgres.connect() as connection:
            rows = connection.execute("SELECT response_id, kind FROM journal_event").fetchall()
        return sorted((str(rid), str(kind)) for rid, kind in rows)

    try:
        writer.submit_event(new_event("cmpl-up"))
        assert writer.flush(WAIT_S)
        assert stored() == [("cmpl-up", "view")]

        private_postgres.stop()
        for number in range(20):
            writer.submit_event(new_event(f"cmpl-down-{number:02d}", "select"))
        assert writer.flush(WAIT_S)
        assert writer.down and writer.stats.events_spooled == 20

        private_postgres.start()
        assert writer.flush(WAIT_S)  # probes: the database is back
        expected = [
            *((f"cmpl-down-{number:02d}", "select") for number in range(20)),
            ("cmpl-up", "view"),
        ]
        assert wait_until(lambda: stored() == expected)  # replayed a paced batch at a time
        assert not writer.down
        assert wait_until(lambda: not list((spool_dir / "events").glob("spool-*.jsonl")))
    finally:
        writer.stop(WAIT_S)


# -- the dashboard --------------------------------------------------------------------------


@pytest.fixture
def fresh_numbers(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    monkeypatch.setattr(dashboards, "CACHE_SECONDS", 0)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def console(db: Any, fresh_numbers: None) -> Client:
    client = Client()
    client.force_login(console_account("audrey", AUDITORS))
    return client


@pytest.fixture
def week(db: Any, fresh_numbers: None, today_at_t0: dt.date) -> dt.date:
    """Completions of the last days and their events, as Tabby sends them.

    Tabby's events name no language: the completion's row does.  A completion may be
    shown several times and accepted line by line; it counts once.
    """
    today = today_at_t0
    noon = dt.datetime.combine(today, dt.time(12), tzinfo=dt.UTC)
    yesterday = noon - dt.timedelta(days=1)

    def completion(at: dt.datetime, user: str, language: str, model: str = "m-a") -> Entry:
        return make_entry(
            created_at=at, username=user, language=language, model=model, feature="completion"
        )

    def events(entry: Entry, *kinds: str, **values: Any) -> None:
        for number, kind in enumerate(kinds):
            values.setdefault("language", "")
            at = entry.created_at + dt.timedelta(seconds=1 + number)
            make_event(entry, kind=kind, created_at=at, **values)

    # ann, python: 3 shown, 2 accepted (one line by line, shown twice), 1 dismissed.
    a1 = completion(noon, "ann", "python")
    events(a1, "view", "view", "select", "select")
    a2 = completion(noon, "ann", "python")
    events(a2, "view", "select")
    a3 = completion(yesterday, "ann", "python")
    events(a3, "view", "dismiss")
    # bob, go: 2 shown, 0 accepted, 2 dismissed; his editor said the language itself.
    b1 = completion(noon, "bob", "go", model="m-b")
    events(b1, "view", "dismiss", language="go")
    b2 = completion(yesterday, "bob", "go", model="m-b")
    events(b2, "view", "dismiss")
    # cat: a completion whose row is not in the journal (yet): no language, no model.
    orphan = {"response_id": "cmpl-orphan", "username": "cat", "language": ""}
    make_event(None, kind="view", created_at=noon, **orphan)
    make_event(None, kind="select", created_at=noon + dt.timedelta(seconds=5), **orphan)
    # Not counted: an event without a completion id, and events before the period.
    make_event(None, kind="view", response_id="", username="cat", created_at=noon)
    old = completion(noon - dt.timedelta(days=30), "old", "rust")
    events(old, "view", "select")
    return today


def fates(shares: list[dashboards.Share]) -> list[tuple[str, int, int, int]]:
    return [(s.name, s.shown, s.accepted, s.dismissed) for s in shares]


@pytest.mark.smoke
def test_the_dashboard_counts_completions_not_events(week: dt.date) -> None:
    board = dashboards.dashboard(7, today=week)
    assert (board.shown, board.accepted, board.dismissed) == (6, 3, 3)
    assert board.rate == 0.5
    today, yesterday = board.per_day[-1], board.per_day[-2]
    assert (today.shown, today.accepted, today.dismissed) == (4, 3, 1)
    assert (yesterday.shown, yesterday.accepted, yesterday.dismissed) == (2, 0, 2)
    assert today.rate == 0.75 and yesterday.rate == 0.0
    assert sum(day.shown for day in board.per_day[:-2]) == 0

    # The language of the completion's row when the event has none; cat's completion
    # waits for its row to be listed under a language (and a model).
    assert fates(board.acceptance_by_language) == [("python", 3, 2, 1), ("go", 2, 0, 2)]
    assert fates(board.acceptance_by_user) == [
        ("ann", 3, 2, 1),
        ("bob", 2, 0, 2),
        ("cat", 1, 1, 0),
    ]
    by_user = {share.name: share for share in board.acceptance_by_user}
    assert by_user["ann"].requests == 3 and by_user["ann"].rate == pytest.approx(2 / 3)
    # The breakdowns by requests carry the same completions.
    assert fates(board.by_model) == [("m-a", 3, 2, 1), ("m-b", 2, 0, 2)]


def test_a_row_stored_after_its_events_brings_their_model_and_language(week: dt.date) -> None:
    noon = dt.datetime.combine(week, dt.time(12), tzinfo=dt.UTC)
    # Another process's writer stores the orphan's row after its events were counted.
    make_entry(
        response_id="cmpl-orphan",
        created_at=noon - dt.timedelta(seconds=1),
        username="cat",
        language="rust",
        model="m-c",
        feature="completion",
    )
    make_entry(response_id="cmpl-orphan-2", created_at=noon, username="cat")  # no events
    board = dashboards.dashboard(7, today=week)
    assert (board.shown, board.accepted, board.dismissed) == (6, 3, 3)  # counted once
    assert ("rust", 1, 1, 0) in fates(board.acceptance_by_language)
    assert ("m-c", 1, 1, 0) in fates(board.by_model)
    assert ("cat", 1, 1, 0) in fates(board.acceptance_by_user)


def test_the_rollups_match_a_recount_from_the_rows(week: dt.date) -> None:
    """Counted as the rows and events were stored, or recounted from them: the same."""

    def snapshot() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        rollups = sorted(
            (granularity, *row)
            for granularity, model in ROLLUPS.items()
            for row in model.objects.values_list("period_start", "dimension", "value", *COUNTERS)
        )
        timings = sorted(
            (granularity, *row)
            for granularity, timing in TIMINGS.items()
            for row in timing.objects.values_list(
                "period_start", "dimension", "value", "metric", "bucket", "count"
            )
        )
        return rollups, timings

    live = snapshot()
    assert live[0] and live[1]
    rebuild(journal_database())
    assert snapshot() == live


def test_a_one_day_period_counts_that_days_completions(week: dt.date) -> None:
    board = dashboards.dashboard(1, today=week)
    assert (board.shown, board.accepted, board.dismissed) == (4, 3, 1)
    # Equally often shown: the more often accepted first.
    assert fates(board.acceptance_by_user) == [("ann", 2, 2, 0), ("cat", 1, 1, 0), ("bob", 1, 0, 1)]


def test_the_acceptance_lists_keep_the_most_shown(
    week: dt.date, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboards, "TOP", 2)
    board = dashboards.dashboard(7, today=week)
    assert [share.name for share in board.acceptance_by_user] == ["ann", "bob"]
    assert [share.name for share in board.acceptance_by_language] == ["python", "go"]


def test_no_events_no_rate(db: Any, fresh_numbers: None, today_at_t0: dt.date) -> None:
    today = today_at_t0
    make_entry(created_at=dt.datetime.combine(today, dt.time(9), tzinfo=dt.UTC))
    board = dashboards.dashboard(7, today=today)
    assert (board.shown, board.accepted, board.dismissed, board.rate) == (0, 0, 0, None)
    assert board.acceptance_by_language == [] and board.acceptance_by_user == []


@pytest.mark.smoke
@pytest.mark.usefixtures("week")
def test_the_dashboard_page_has_an_acceptance_section(
    console: Client, today_at_t0: dt.date
) -> None:
    html = console.get(reverse("journal:dashboard"), {"days": "7"}).content.decode()
    section = html.split('id="acceptance"', 1)[1].split('id="by-models"', 1)[0]
    assert "Autocompletion acceptance" in section
    for name, value in (("shown", "6"), ("accepted", "3"), ("dismissed", "3"), ("rate", "50%")):
        assert re.search(rf'id="total-{name}">{value}<', section), name
    by_language = section.split('id="acceptance-by-language"', 1)[1].split("</table>", 1)[0]
    cells = re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", by_language.split("<tbody>", 1)[1])
    assert cells[:5] == ["python", "3", "2", "1", "66.7%"]
    assert 'id="acceptance-by-user"' in section and ">cat<" in section
    per_day = html.split('id="per-day"', 1)[1]
    row = per_day.split(f'data-day="{today_at_t0:%Y-%m-%d}"', 1)[1]
    # requests, users, errors, tokens, latency p50, p95, then the completions' fate.
    assert re.findall(r'<td class="num">([^<]*)</td>', row.split("</tr>", 1)[0])[6:] == [
        "4",
        "3",
        "1",
        "75%",
    ]


@pytest.mark.smoke
def test_the_request_page_lists_its_events(console: Client) -> None:
    entry = make_entry(request_id="with-events", response_id="cmpl-detail")
    make_event(entry, kind="view", payload={"view_id": "v1"})
    make_event(
        entry,
        kind="select",
        created_at=entry.created_at + dt.timedelta(seconds=2),
        payload={"elapsed": 1500, "select_kind": "line"},
    )
    make_event(
        entry,
        kind="select",
        created_at=entry.created_at + dt.timedelta(seconds=3),
        payload={"elapsed": 2100},
    )
    make_event(None, kind="view", response_id="cmpl-other")
    html = console.get(reverse("journal:detail", args=["with-events"])).content.decode()
    table = html.split('id="journal-events"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr class="journal-event-(\w+)">(.*?)</tr>', table, re.S)
    assert [kind for kind, _ in rows] == ["view", "select", "select"]
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", cells) for _, cells in rows]
    assert [row[1:5] for row in cells] == [
        ["Shown", "0", DASH, DASH],
        ["Accepted", "0", "line", "1500 ms"],
        ["Accepted", "0", "whole", "2100 ms"],
    ]


@pytest.mark.smoke
def test_a_request_without_events_says_so(console: Client) -> None:
    make_entry(request_id="no-events", response_id="cmpl-none")
    html = console.get(reverse("journal:detail", args=["no-events"])).content.decode()
    assert 'id="journal-no-events"' in html
