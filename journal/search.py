"""Full-text search over the journal's prompts and answers.

PostgreSQL: a stored generated ``tsvector`` column (``search_document``, migration 0002)
with a GIN index, queried with ``websearch_to_tsquery`` (quotes, ``or``, ``-word`` as in a
search engine).  Stored rather than an index over the expression: when PostgreSQL walks the
time index to fill a page (a common word, or search plus another filter), an expression
index leaves it recomputing ``to_tsvector`` for every row it passes (measured: 0.85 s for a
word in 1-2 % of 100,000 rows); a stored document is only compared.  The ``simple``
configuration keeps code identifiers whole and does no stemming, which is what people
searching code expect.  The column is not a model field: Django never reads or writes it.
Other databases fall back to a plain substring search.
"""

from __future__ import annotations

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
