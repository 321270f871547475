"""JOURNAL_RETENTION_DAYS: old rows go, in batches, through the Celery task."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from journal import services
from journal.models import CompletionFate, DailyRollup, DailyTiming, Entry, Event, HourlyRollup
from journal.tasks import purge_expired
from journal.tests.entries import make_entry, make_event

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]


def make_entries(ages_in_days: list[float]) -> None:
    now = timezone.now()
    Entry.objects.bulk_create(
        Entry(
            created_at=now - timedelta(days=age),
            request_id=f"retention{index}",
            endpoint="/v1/completions",
            feature="completion",
            status=200,
            latency_ms=10,
        )
        for index, age in enumerate(ages_in_days)
    )
    Event.objects.bulk_create(
        Event(created_at=now - timedelta(days=age), kind="view") for age in ages_in_days
    )


def test_rows_older_than_the_retention_are_deleted_in_batches(settings: Any) -> None:
    settings.JOURNAL_RETENTION_DAYS = 30
    make_entries([1, 29.9, 30.1, 45, 400, 31, 60])
    assert services.purge_expired(batch_size=2) == 5
    assert sorted(Entry.objects.values_list("request_id", flat=True)) == [
        "retention0",
        "retention1",
    ]
    assert Event.objects.count() == 2


def test_zero_days_keeps_everything(settings: Any) -> None:
    settings.JOURNAL_RETENTION_DAYS = 0
    make_entries([1, 1000])
    assert services.purge_expired() == 0
    assert Entry.objects.count() == 2


def test_the_periodic_task_applies_the_setting(settings: Any) -> None:
    settings.JOURNAL_RETENTION_DAYS = 10
    make_entries([1, 11, 12])
    assert purge_expired.apply().get() == 2
    assert settings.CELERY_BEAT_SCHEDULE["journal-retention"]["task"] == purge_expired.name


def test_the_command_takes_an_explicit_number_of_days(capsys: Any) -> None:
    make_entries([1, 3, 5])
    call_command("kodify_journal_purge", "--days", "2")
    assert "Deleted 2 journal rows." in capsys.readouterr().out


def test_the_counts_of_expired_periods_go_with_their_rows(settings: Any) -> None:
    settings.JOURNAL_RETENTION_DAYS = 30
    now = timezone.now()
    for age in (1, 45):
        entry = make_entry(created_at=now - timedelta(days=age), response_id=f"cmpl-{age}")
        make_event(entry, kind="view")
    services.purge_expired(now=now)
    kept = {at.date() for at in DailyRollup.objects.values_list("period_start", flat=True)}
    assert kept == {(now - timedelta(days=1)).date()}
    assert {at.date() for at in DailyTiming.objects.values_list("period_start", flat=True)} == kept
    hours = set(HourlyRollup.objects.values_list("period_start", flat=True))
    assert hours and all(at > now - timedelta(days=30) for at in hours)
    assert list(CompletionFate.objects.values_list("response_id", flat=True)) == ["cmpl-1"]
