"""System checks for the journal's settings (``kodify.E03x``)."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

_DB_PARTS = ("LOGS_DB_NAME", "LOGS_DB_USERNAME", "LOGS_DB_PASSWORD")


@register()
def journal_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    problems: list[Any] = []
    given = [name for name in ("LOGS_DB_HOST", *_DB_PARTS) if getattr(settings, name)]
    if not settings.LOGS:
        if given:
            problems.append(
                Warning(
                    f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} set but LOGS is "
                    "off, so the journal is off and its database is not used.",
                    id="kodify.W030",
                )
            )
        return problems
    if not settings.LOGS_DB_HOST and given:
        problems.append(
            Error(
                f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} set but LOGS_DB_HOST "
                "is not: set LOGS_DB_HOST for a journal database of its own, or unset them "
                "to keep the journal in the main database.",
                id="kodify.E030",
            )
        )
    spool = settings.KODIFY_JOURNAL_SPOOL_DIR
    if spool.exists() and not (spool.is_dir() and os.access(spool, os.W_OK | os.X_OK)):
        problems.append(
            Error(
                f"KODIFY_JOURNAL_SPOOL_DIR ({spool}) is not a writable folder; the journal "
                "keeps records there while its database is away.",
                id="kodify.E031",
            )
        )
    return problems
