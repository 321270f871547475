"""Send the journal's models to the ``journal`` database when one is configured.

``LOGS_DB_*`` give the journal a PostgreSQL database of its own (the settings add the
``journal`` alias); without them everything shares ``default``.  Only the journal's
tables are created in the journal database, and none of them in the main one then.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

JOURNAL_APP = "journal"
JOURNAL_ALIAS = "journal"


def journal_database() -> str:
    return JOURNAL_ALIAS if JOURNAL_ALIAS in settings.DATABASES else "default"


class JournalRouter:
    def db_for_read(self, model: type, **hints: Any) -> str | None:
        if model._meta.app_label == JOURNAL_APP:  # type: ignore[attr-defined]
            return journal_database()
        return None

    db_for_write = db_for_read

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if JOURNAL_ALIAS not in settings.DATABASES:
            return None
        if app_label == JOURNAL_APP:
            return db == JOURNAL_ALIAS
        return db != JOURNAL_ALIAS
