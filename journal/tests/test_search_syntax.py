"""The journal's search: the same syntax, and the same rows found, on PostgreSQL and SQLite.

The suite runs once on each database (``make test``): the table below, run through the
console's list, is what proves the two agree.  The translation of the syntax for FTS5
(``journal.search_syntax``) is tested on its own, and on PostgreSQL against
``websearch_to_tsquery`` itself.
"""

from __future__ import annotations

import datetime as dt
import importlib
import itertools
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journal import services
from journal.models import Entry
from journal.router import journal_database
from journal.search import FTS5_TABLE, FTS5_TOKENIZER, FTS5_TRIGGERS, SEARCH_PREFIX
from journal.search_syntax import Fts5Query, Term, parse_websearch, to_fts5
from journal.selectors import Cursor, EntryFilters, entry_page
from journal.tests.entries import T0, make_entry

POSTGRES = bool(os.environ.get("DB_URL"))
on_postgres = pytest.mark.skipif(not POSTGRES, reason="PostgreSQL only (DB_URL)")
on_sqlite = pytest.mark.skipif(POSTGRES, reason="SQLite only (no DB_URL)")

# name: (prompt, answer).  No row holds the words "and", "near" or "or".
CORPUS = {
    "invoice": (
        '{"prompt": "def parse_invoice(user_id):"}',
        "Raise KeyError when user_id is missing",
    ),
    "config": ("max_tokens: 512 in config.yaml", "Restart the server after editing config.yaml"),
    "totals": ("grand totals per invoice", "The grand total is computed twice"),
    "scattered": ("grand plans", "total recall"),
    "answer": ('{"prompt": ""}', "Use os.path.join; don't concatenate strings"),
    "client": ("class HttpClient:", "HTTPClient retries on a TimeoutError"),
    "sql": ("SELECT user_id FROM users", "the total is small"),
    "accents": ("Ça dépend", "naïve café"),
    "empty": ("", ""),
}
EVERY_ROW = frozenset(CORPUS)

SAME_ON_BOTH = [
    # Identifiers: "_" separates words, an identifier is the phrase of its words.
    ("parse_invoice", {"invoice"}),
    ("PARSE_INVOICE", {"invoice"}),
    ("invoice", {"invoice", "totals"}),
    ("user_id", {"invoice", "sql"}),
    ("user", {"invoice", "sql"}),
    ("users", {"sql"}),
    ("max_tokens:", {"config"}),
    ("tokens:512", {"config"}),  # a colon separates two terms
    ("512", {"config"}),
    # Dots, apostrophes and case, searched as written.
    ("config.yaml", {"config"}),
    ("os.path.join", {"answer"}),
    ("don't", {"answer"}),
    ("KeyError", {"invoice"}),
    ("keyerror", {"invoice"}),
    ("HTTPCLIENT", {"client"}),
    ("prompt", {"invoice", "answer"}),
    ("concatenate", {"answer"}),  # in the answer only
    # Accents are kept, case is not.
    ("ÇA", {"accents"}),
    ("ca", set()),
    ("NAÏVE café", {"accents"}),
    ("cafe", set()),
    # Words, phrases, alternatives, exclusions.
    ("grand total", {"totals", "scattered"}),
    ('"grand total"', {"totals"}),
    ('"grand total', {"totals"}),  # an unclosed quote runs to the end
    ('"don\'t concatenate"', {"answer"}),
    ("total -grand", {"sql"}),
    ("total -grand or restart", {"sql", "config"}),
    ("grand or recall", {"totals", "scattered"}),
    ("recall or timeouterror keyerror", {"scattered"}),  # AND binds tighter
    ("recall OR timeouterror", {"scattered", "client"}),
    ('retries -"grand total"', {"client"}),
    ("--grand", {"totals", "scattered"}),
    # A query of exclusions only finds every row without them, the empty one included.
    ("-zebra", EVERY_ROW),
    ("-grand -total", EVERY_ROW - {"totals", "scattered", "sql"}),
    ('-"grand total"', EVERY_ROW - {"totals"}),
    ("-grand or keyerror", EVERY_ROW - {"totals", "scattered"}),
    # Without a word to search for: nothing.
    ('"', set()),
    ('""', set()),
    ("***", set()),
    ("-", set()),
    ("-***", set()),
    ("()", set()),
    # Operators of FTS5 or tsquery are words or nothing.
    ("grand AND total", set()),
    ("NEAR(grand total)", set()),
    ("(grand | recall)", {"scattered"}),
    ("!grand", {"totals", "scattered"}),
    ("grand*", {"totals", "scattered"}),
    ("grand:*", {"totals", "scattered"}),
    ("^grand +total", {"totals", "scattered"}),
    ("total -", {"totals", "scattered", "sql"}),
    ('user_id -"', {"invoice", "sql"}),
    # "or" first, last or alone is the word.
    ("or", set()),
    ("restart or", set()),
    ("or restart", set()),
]

# PostgreSQL's parser keeps a dotted name (and a file name, a URL, a number with a point)
# as one word, SQLite's tokenizer splits it: a part of it is found on SQLite only.
DIFFERENT = [
    ("path", {"postgresql": set(), "sqlite": {"answer"}}),
    ("yaml", {"postgresql": set(), "sqlite": {"config"}}),
]


@pytest.fixture
def corpus(db: None) -> dict[int, str]:
    """The rows, one a second, by id."""
    return {
        make_entry(
            created_at=T0 + dt.timedelta(seconds=second), request_body=body, response_text=answer
        ).pk: name
        for second, (name, (body, answer)) in enumerate(CORPUS.items())
    }


def found(q: str, names: dict[int, str] | None = None) -> set[Any]:
    rows = entry_page(EntryFilters(q=q), limit=100).rows
    return {names[row["id"]] if names else row["id"] for row in rows}


def vendor() -> str:
    return connections[journal_database()].vendor


@pytest.mark.smoke
@pytest.mark.parametrize(("q", "expected"), SAME_ON_BOTH)
def test_the_list_finds_the_same_rows_on_both_databases(
    corpus: dict[int, str], q: str, expected: set[str]
) -> None:
    assert found(q, corpus) == expected


@pytest.mark.parametrize(("q", "expected"), DIFFERENT)
def test_parts_of_a_dotted_name_are_found_on_sqlite_only(
    corpus: dict[int, str], q: str, expected: dict[str, set[str]]
) -> None:
    assert found(q, corpus) == expected[vendor()]


@pytest.mark.django_db
def test_a_searchs_pages_neither_overlap_nor_skip() -> None:
    matching = [
        make_entry(created_at=T0 + dt.timedelta(seconds=second), response_text="needle").pk
        for second in range(7)
    ]
    make_entry(created_at=T0 + dt.timedelta(seconds=3), response_text="hay")
    matching.append(make_entry(created_at=T0, response_text="needle").pk)  # the same time
    filters = EntryFilters(q="needle")

    pages = [entry_page(filters, limit=3)]
    while pages[-1].older:
        pages.append(entry_page(filters, before=Cursor.decode(pages[-1].older), limit=3))

    newest_first = Entry.objects.filter(pk__in=matching).order_by("-created_at", "-id")
    listed = [row["id"] for page in pages for row in page.rows]
    assert listed == list(newest_first.values_list("id", flat=True))
    assert [len(page.rows) for page in pages] == [3, 3, 2]


# -- the index follows the rows ------------------------------------------------------------


@pytest.mark.django_db
def test_rows_inserted_updated_or_deleted_enter_and_leave_the_index() -> None:
    kept, edited, gone = (make_entry(response_text="alpha") for _ in range(3))
    Entry.objects.bulk_create(
        Entry(
            request_id=f"bulk{number}",
            created_at=T0,
            endpoint="/v1/completions",
            feature="completion",
            status=200,
            latency_ms=1.0,
            response_text="omega",
        )
        for number in range(3)
    )
    edited.response_text = "beta"
    edited.save()
    Entry.objects.filter(pk=kept.pk).update(request_body="gamma")
    Entry.objects.filter(pk=gone.pk).delete()

    assert found("alpha") == {kept.pk}
    assert found("beta") == {edited.pk}
    assert found("gamma alpha") == {kept.pk}
    assert len(found("omega")) == 3
    assert_index_sound()


@pytest.mark.django_db
def test_updates_in_a_batch_and_the_retentions_deletes_follow() -> None:
    old = [
        make_entry(created_at=T0 - dt.timedelta(days=40, seconds=n), response_text="ancient")
        for n in range(5)
    ]
    recent = make_entry(created_at=T0, response_text="ancient")
    with connections[journal_database()].cursor() as cursor:
        cursor.executemany(
            "UPDATE journal_entry SET response_text = %s WHERE id = %s",
            [(f"ancient renamed{n}", entry.pk) for n, entry in enumerate(old[:2])],
        )
    assert found("renamed0") == {old[0].pk}

    assert services.purge_expired(days=30, now=T0, batch_size=2) == 5

    assert found("ancient") == {recent.pk}
    assert found("renamed0") == set()
    assert_index_sound()


@pytest.mark.django_db
def test_only_the_first_characters_of_each_text_are_searched() -> None:
    filler = "x" * (SEARCH_PREFIX - len(" inside"))  # "inside" ends the indexed part
    both = make_entry(request_body=filler + " inside beyond", response_text=filler + " within past")
    assert found("inside") == found("within") == {both.pk}
    assert found("beyond") == found("past") == set()
    both.delete()
    assert found("inside") == set()
    assert_index_sound()


def assert_index_sound() -> None:
    """SQLite: FTS5's own check of its index (PostgreSQL's column needs none)."""
    connection = connections[journal_database()]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {FTS5_TABLE} ({FTS5_TABLE}) VALUES ('integrity-check')")


@on_sqlite
@pytest.mark.django_db
def test_the_triggers_are_there_after_every_migration() -> None:
    """Django rebuilds a SQLite table to alter it, and the rebuild drops its triggers: a
    migration that does so to journal_entry must create them again (journal.search)."""
    with connections[journal_database()].cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s",
            [Entry._meta.db_table],
        )
        triggers = {name for (name,) in cursor.fetchall()}
    assert set(FTS5_TRIGGERS) <= triggers


class _SchemaEditor:
    """What the migration's functions use of a schema editor.  Django's own refuses to
    open on SQLite inside the test's transaction."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection

    def execute(self, sql: str) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(sql)


@on_sqlite
@pytest.mark.django_db
def test_the_migration_indexes_the_rows_already_there_and_its_reverse_removes_it() -> None:
    migration = importlib.import_module("journal.migrations.0005_search_fts5")
    editor = _SchemaEditor(connections[journal_database()])
    migration.drop_search_fts5(None, editor)
    with pytest.raises(OperationalError, match="no such table"):
        found("earlier")
    before = make_entry(response_text="earlier")

    migration.create_search_fts5(None, editor)

    assert found("earlier") == {before.pk}
    after = make_entry(response_text="earlier")
    assert found("earlier") == {before.pk, after.pk}
    assert_index_sound()


# -- the translation for FTS5 ----------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("a b", Fts5Query('("a" AND "b")')),
        ('"a b" or c', Fts5Query('("a b") OR ("c")')),
        ("a b or c", Fts5Query('("a" AND "b") OR ("c")')),
        ("a -b -c", Fts5Query('(("a") NOT ("b" OR "c"))')),
        ("-a", Fts5Query(None, ('"a"',))),
        ("-a -b", Fts5Query(None, ('"a" OR "b"',))),
        ("a or -b", Fts5Query('("a")', ('"b"',))),
        ("--a", Fts5Query('("a")')),
        ("user_id foo.bar", Fts5Query('("user_id" AND "foo.bar")')),
        ('say "hi', Fts5Query('("say" AND "hi")')),
        ("a:*", Fts5Query('("a")')),
        ("a AND b", Fts5Query('("a" AND "AND" AND "b")')),
        ("NEAR(a b)", Fts5Query('("NEAR" AND "a" AND "b")')),
        ("or a", Fts5Query('("or" AND "a")')),
        ("a or", Fts5Query('("a" AND "or")')),
        ("a or or b", Fts5Query('("a") OR ("or" AND "b")')),
        ("a\0b", Fts5Query('("a" AND "b")')),
    ],
)
def test_the_syntax_as_fts5_expressions(q: str, expected: Fts5Query) -> None:
    assert to_fts5(q) == expected


@pytest.mark.parametrize("q", ["", "   ", '"', '""', "***", "-", "--", "-***", "()", ":*", "_"])
def test_a_query_without_words_finds_nothing(q: str) -> None:
    assert to_fts5(q).finds_nothing


def test_terms_and_groups() -> None:
    assert parse_websearch('x -"a b" or y') == (
        (Term("x"), Term("a b", excluded=True)),
        (Term("y"),),
    )


@pytest.fixture(scope="module")
def fts5() -> Iterator[sqlite3.Connection]:
    """An FTS5 table of the journal's kind, in memory."""
    connection = sqlite3.connect(":memory:")
    connection.execute(
        f"CREATE VIRTUAL TABLE t USING fts5(document, content='', tokenize='{FTS5_TOKENIZER}')"
    )
    connection.execute("INSERT INTO t (rowid, document) VALUES (1, 'a b or and near')")
    yield connection
    connection.close()


# Pieces that are operators, or special, to one of the two syntaxes.
_PIECES = st.sampled_from(
    [*"\"-*:^+(){},!&|<>'\\\0 ab_é\U0001e900", "or", "OR", "AND", "NOT", "NEAR"]
)
_QUERIES = st.one_of(st.text(), st.lists(_PIECES, max_size=12).map("".join))


@given(q=_QUERIES)
@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fts5_accepts_whatever_was_typed(fts5: sqlite3.Connection, q: str) -> None:
    query = to_fts5(q)
    for expression in filter(None, (query.matching, *query.lacking)):
        fts5.execute("SELECT rowid FROM t WHERE t MATCH ?", [expression]).fetchall()


# Queries over a few words, and documents of up to three of them in every order.
_WORDS = ["a", "b", "c", "or"]
_DOCUMENTS = [" ".join(words) for n in range(4) for words in itertools.product(_WORDS, repeat=n)]
_SYNTAX = st.lists(
    st.sampled_from([*_WORDS, "OR", " ", " ", "-", '"', "!", "(", "|", ":", "*", "_", "'"]),
    max_size=10,
).map("".join)


@on_postgres
@pytest.mark.django_db
@given(q=_SYNTAX)
@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_the_terms_are_those_of_websearch_to_tsquery(q: str) -> None:
    """The documents PostgreSQL's own parse of the query finds, and those its terms as
    parse_websearch reads them find, are the same."""
    conditions = []
    params: list[str] = []
    for group in parse_websearch(q):
        terms = []
        for term in group:
            negation = "NOT " if term.excluded else ""
            terms.append(f"{negation}(v @@ phraseto_tsquery('simple', %s))")
            params.append(term.text)
        conditions.append(f"({' AND '.join(terms)})")
    mine = " OR ".join(conditions) or "false"
    rows = ", ".join(["(%s, to_tsvector('simple', %s))"] * len(_DOCUMENTS))
    sql = (
        "SELECT coalesce(array_agg(i ORDER BY i) FILTER "
        "(WHERE v @@ websearch_to_tsquery('simple', %s)), '{}'), "
        f"coalesce(array_agg(i ORDER BY i) FILTER (WHERE {mine}), '{{}}') "
        f"FROM (VALUES {rows}) AS documents (i, v)"
    )
    values = [value for pair in enumerate(_DOCUMENTS) for value in pair]
    with connections[journal_database()].cursor() as cursor:
        cursor.execute(sql, [q, *params, *values])
        by_postgresql, by_terms = cursor.fetchone()
    assert by_terms == by_postgresql
