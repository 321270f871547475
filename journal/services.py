"""Writes to the journal that are not the request path: retention."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Model
from django.utils import timezone

from journal.models import Entry, Event
from journal.router import journal_database

logger = logging.getLogger("kodify.journal")

PURGE_BATCH = 5000


def purge_expired(
    *, days: int | None = None, now: datetime | None = None, batch_size: int = PURGE_BATCH
) -> int:
    """Delete journal rows and events older than ``days`` (JOURNAL_RETENTION_DAYS).

    In batches of ``batch_size`` rows, each its own short statement, so a first purge of
    millions of rows never holds long locks or one huge transaction.  Returns the number
    of journal rows deleted; 0 days keeps everything.
    """
    days = settings.JOURNAL_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted = _delete_before(Entry, cutoff, batch_size)
    events = _delete_before(Event, cutoff, batch_size)
    if deleted or events:
        logger.info(
            "journal retention (%d days): deleted %d rows and %d events", days, deleted, events
        )
    return deleted


def _delete_before(model: type[Model], cutoff: datetime, batch_size: int) -> int:
    manager = model._default_manager.db_manager(journal_database())
    total = 0
    while True:
        ids = list(
            manager.filter(created_at__lt=cutoff)
            .order_by("created_at", "id")
            .values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            return total
        manager.filter(id__in=ids).delete()
        total += len(ids)
