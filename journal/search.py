"""Full-text search over the journal's prompts and answers, with one syntax and the same
results on PostgreSQL and SQLite: the search box reads like ``websearch_to_tsquery``
(quotes make a phrase, ``or`` alternatives, ``-word`` excludes, words are all required).

PostgreSQL: a stored generated ``tsvector`` column (``search_document``, migration 0002)
with a GIN index, queried with ``websearch_to_tsquery``.  Stored rather than an index over
the expression: when PostgreSQL walks the time index to fill a page (a common word, or
search plus another filter), an expression index leaves it recomputing ``to_tsvector`` for
every row it passes (measured: 0.85 s for a word in 1-2 % of 100,000 rows); a stored
document is only compared.  The ``simple`` configuration does no stemming and finds an
identifier as the phrase of its words (``user_id``), which is what people searching code
expect.  The column is not a model field: Django never reads or writes it.

SQLite: an FTS5 table (migration 0005) over the same document, kept in step by triggers
on the journal table, queried with what ``journal.search_syntax`` makes of the query.
Its tokenizer is ``unicode61`` with diacritics kept, which splits text where PostgreSQL's
parser does for most code (``user_id`` and ``don't`` are two words, ``KeyError`` is
``keyerror``, ``café`` is not ``cafe``) but, unlike it, also splits what that parser
keeps whole: dotted names and file names (``os.path``, ``config.yaml``), numbers with a
point or a sign (``3.14``, ``-5``), e-mail addresses and URLs; and it indexes the words of
HTML tags and entities, which PostgreSQL skips.  Searching for such a thing as written
finds it on both; a part of it (``path`` in ``os.path``) is found on SQLite only.

Django rebuilds a SQLite table to alter most of its columns, which drops the table's
triggers: a later migration that does so to ``journal_entry`` must run
``create_fts5_sql()`` again (a test checks that the triggers are there).

Other databases fall back to a plain substring search.
"""

from __future__ import annotations

from collections.abc import Sequence

# Only the first SEARCH_PREFIX characters of each text are indexed: a tsvector is capped
# at 1 MB, and an insert whose document overflowed it would fail.
SEARCH_PREFIX = 100_000
SEARCH_COLUMN = "search_document"
SEARCH_DOCUMENT_SQL = (
    "to_tsvector('simple'::regconfig, "
    f"left(COALESCE(\"request_body\", ''), {SEARCH_PREFIX}) || ' ' || "
    f"left(COALESCE(\"response_text\", ''), {SEARCH_PREFIX}))"
)
SEARCH_MATCH_SQL = f"\"{SEARCH_COLUMN}\" @@ websearch_to_tsquery('simple'::regconfig, %s)"
SEARCH_INDEX_NAME = "journal_entry_search"


def create_search_sql(table: str = "journal_entry") -> list[str]:
    """The statements that add the search column and its index (PostgreSQL)."""
    return [
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {SEARCH_COLUMN} tsvector "
        f"GENERATED ALWAYS AS ({SEARCH_DOCUMENT_SQL}) STORED",
        f"CREATE INDEX IF NOT EXISTS {SEARCH_INDEX_NAME} ON {table} USING gin ({SEARCH_COLUMN})",
    ]


def drop_search_sql(table: str = "journal_entry") -> list[str]:
    return [
        f"DROP INDEX IF EXISTS {SEARCH_INDEX_NAME}",
        f"ALTER TABLE {table} DROP COLUMN IF EXISTS {SEARCH_COLUMN}",
    ]


# -- SQLite: FTS5 ----------------------------------------------------------------------

FTS5_TABLE = "journal_entry_fts"
# Diacritics kept, as PostgreSQL's "simple" keeps them; "_" and "'" separate words there
# as in PostgreSQL's parser.  No "tokenchars" for "." or "-": they would keep a sentence's
# full stop, or a dash, on the word before it.
FTS5_TOKENIZER = "unicode61 remove_diacritics 0"
FTS5_TRIGGERS = ("journal_entry_fts_insert", "journal_entry_fts_delete", "journal_entry_fts_update")
# Table and column names only in these statements, never input: the S608 below are noise.
_FTS5_ROWIDS_SQL = f"SELECT rowid FROM {FTS5_TABLE} WHERE {FTS5_TABLE} MATCH %s"  # noqa: S608


def _fts5_document(row: str) -> str:
    """The text indexed for a row: PostgreSQL's document, SEARCH_DOCUMENT_SQL."""
    return (
        f"substr(COALESCE({row}.request_body, ''), 1, {SEARCH_PREFIX}) || ' ' || "
        f"substr(COALESCE({row}.response_text, ''), 1, {SEARCH_PREFIX})"
    )


def _fts5_add(row: str) -> str:
    values = f"{row}.id, {_fts5_document(row)}"
    return f"INSERT INTO {FTS5_TABLE} (rowid, document) VALUES ({values});"  # noqa: S608


def _fts5_remove(row: str) -> str:
    # A contentless table forgets a row when told the text it indexed for it.
    return (
        f"INSERT INTO {FTS5_TABLE} ({FTS5_TABLE}, rowid, document) "  # noqa: S608
        f"VALUES ('delete', {row}.id, {_fts5_document(row)});"
    )


def create_fts5_sql(table: str = "journal_entry") -> list[str]:
    """The statements that create the FTS5 index, its triggers and index every row.

    Contentless (``content=''``): the index keeps no copy of the texts, and refers to no
    table.  Not external content: the texts it would read back (to rebuild, or check) are
    the first SEARCH_PREFIX characters, so it would need a view, and a view over
    ``journal_entry`` makes SQLite refuse the table rebuilds Django's migrations do
    ("error in view").  Not contentless-delete: that needs SQLite 3.43, newer than many
    Pythons ship.  So the triggers pass the indexed text back to delete a row.
    """
    insert, delete, update = FTS5_TRIGGERS
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS5_TABLE} USING fts5("
        f"document, content='', tokenize='{FTS5_TOKENIZER}')",
        f"CREATE TRIGGER IF NOT EXISTS {insert} AFTER INSERT ON {table} "
        f"BEGIN {_fts5_add('new')} END",
        f"CREATE TRIGGER IF NOT EXISTS {delete} AFTER DELETE ON {table} "
        f"BEGIN {_fts5_remove('old')} END",
        # Only when a text changes: saving a row through the ORM writes every column.
        f"CREATE TRIGGER IF NOT EXISTS {update} AFTER UPDATE OF id, request_body, "
        f"response_text ON {table} WHEN old.id IS NOT new.id "
        "OR old.request_body IS NOT new.request_body "
        "OR old.response_text IS NOT new.response_text "
        f"BEGIN {_fts5_remove('old')} {_fts5_add('new')} END",
        *rebuild_fts5_sql(table),
    ]


def rebuild_fts5_sql(table: str = "journal_entry") -> list[str]:
    """The statements that index every row again (FTS5's own "rebuild" needs content)."""
    return [
        f"INSERT INTO {FTS5_TABLE} ({FTS5_TABLE}) VALUES ('delete-all')",  # noqa: S608
        f"INSERT INTO {FTS5_TABLE} (rowid, document) "  # noqa: S608
        f"SELECT id, {_fts5_document(table)} FROM {table}",
    ]


def drop_fts5_sql() -> list[str]:
    return [
        *(f"DROP TRIGGER IF EXISTS {trigger}" for trigger in FTS5_TRIGGERS),
        f"DROP TABLE IF EXISTS {FTS5_TABLE}",
    ]


def fts5_match_sql(
    matching: str | None, lacking: Sequence[str], table: str = "journal_entry"
) -> tuple[str, list[str]]:
    """The condition on ``table``'s rows, and its parameters, for a query that
    ``journal.search_syntax.to_fts5`` wrote (at least one expression)."""
    conditions = []
    params = []
    if matching is not None:
        conditions.append(f'"{table}"."id" IN ({_FTS5_ROWIDS_SQL})')
        params.append(matching)
    for expression in lacking:
        conditions.append(f'"{table}"."id" NOT IN ({_FTS5_ROWIDS_SQL})')
        params.append(expression)
    return f"({' OR '.join(conditions)})", params
