"""Writes to the journal that are not the request path: retention."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Model
from django.utils import timezone

from journal.models import ROLLUPS, TIMINGS, CompletionFate, Entry, Event, Granularity
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
    _delete_counted_before(cutoff, batch_size)
    if deleted or events:
        logger.info(
            "journal retention (%d days): deleted %d rows and %d events", days, deleted, events
        )
    return deleted


def _delete_counted_before(cutoff: datetime, batch_size: int) -> None:
    """The rollups of the periods that ended before the cutoff, and the completions'
    fates: the journal keeps no count of what it no longer holds."""
    _delete_before(CompletionFate, cutoff, batch_size)
    lengths = {Granularity.HOUR: timedelta(hours=1), Granularity.DAY: timedelta(days=1)}
    for granularity, length in lengths.items():
        for model in (ROLLUPS[granularity], TIMINGS[granularity]):
            manager = model._default_manager.db_manager(journal_database())
            expired = manager.filter(period_start__lte=cutoff - length)
            while True:
                ids = list(expired.values_list("id", flat=True)[:batch_size])
                if not ids:
                    break
                manager.filter(id__in=ids).delete()


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
