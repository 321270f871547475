"""The journal's periodic tasks (Celery beat; see CELERY_BEAT_SCHEDULE in settings)."""

from celery import shared_task

from journal import services


@shared_task(name="journal.purge_expired")
def purge_expired() -> int:
    """Enforce JOURNAL_RETENTION_DAYS; returns the number of journal rows deleted."""
    return services.purge_expired()
