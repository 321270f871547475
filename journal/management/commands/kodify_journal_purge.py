"""``manage.py kodify_journal_purge``: apply the journal's retention now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from journal import services


class Command(BaseCommand):
    help = "Delete journal rows older than JOURNAL_RETENTION_DAYS (or --days), in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, help="Override JOURNAL_RETENTION_DAYS.")

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = services.purge_expired(days=options["days"])
        self.stdout.write(f"Deleted {deleted} journal rows.")
