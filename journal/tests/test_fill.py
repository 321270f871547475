"""``manage.py kodify_journal_fill``: a realistic mix of rows, events that refer to them,
and (on PostgreSQL) every index back in place after the bulk load."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection

from journal.fill import CHAT_MODELS, COMPLETION_MODELS
from journal.models import Entry, Event

ROWS = 2000


def index_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('journal_entry', 'journal_event')"
        )
        return {name for (name,) in cursor.fetchall()}


@pytest.mark.django_db
def test_fill_adds_a_realistic_journal() -> None:
    indexes = index_names() if connection.vendor == "postgresql" else set()
    out = io.StringIO()
    call_command("kodify_journal_fill", rows=ROWS, days=10, users=20, seed=3, stdout=out)

    assert f"Added {ROWS:,} journal rows" in out.getvalue()
    entries = list(Entry.objects.order_by("id"))
    assert len(entries) == ROWS
    assert all(e.request_id.startswith("fill") for e in entries)
    times = [e.created_at for e in entries]
    assert times == sorted(times)  # ids follow time, as the gateway writes them
    now = datetime.now(UTC)
    assert now - timedelta(days=10, minutes=1) <= times[0] and times[-1] <= now

    features = Counter(e.feature for e in entries)
    assert 0.6 < features["completion"] / ROWS < 0.8 and features["chat"] > 0
    statuses = Counter(e.status for e in entries)
    assert 0.9 < statuses[200] / ROWS < 0.99 and len(statuses) >= 4
    assert all(e.cancelled == (e.status == 499) for e in entries)
    assert {e.model for e in entries} == set(COMPLETION_MODELS) | set(CHAT_MODELS)
    assert len({e.client_name for e in entries}) >= 5
    users = Counter(e.username for e in entries)
    assert len(users) > 10 and users.most_common(1)[0][1] > 3 * ROWS / 20  # some busier
    assert all(e.username == f"user{e.user_id:03d}" for e in entries)

    completion = next(e for e in entries if e.feature == "completion" and e.status == 200)
    prompt = json.loads(completion.request_body)["prompt"]
    assert prompt.startswith("<|fim_prefix|>") and 200 <= len(prompt) <= 3100
    assert json.loads(completion.request_body)["model"] == completion.model
    assert completion.ttft_ms is not None and completion.latency_ms > completion.ttft_ms
    assert completion.prompt_tokens and completion.completion_tokens is not None
    chat = next(e for e in entries if e.endpoint == "/v1/chat/completions" and e.status == 200)
    assert json.loads(chat.request_body)["messages"][1]["role"] == "user"
    failed = next(e for e in entries if e.status >= 500)
    assert failed.error and failed.ttft_ms is None and failed.response_id == ""

    events = list(Event.objects.all())
    kinds = Counter(e.kind for e in events)
    assert kinds["view"] > 0 and kinds["select"] > 0 and kinds["dismiss"] > 0
    answered = {e.response_id: e for e in entries if e.response_id}
    assert all(event.response_id in answered for event in events)
    assert all(answered[ev.response_id].feature == "completion" for ev in events)
    assert kinds["view"] >= kinds["select"] + kinds["dismiss"]

    if connection.vendor == "postgresql":
        assert index_names() == indexes  # dropped for the load, built again


@pytest.mark.django_db
def test_a_second_fill_adds_rows_with_new_request_ids() -> None:
    call_command("kodify_journal_fill", rows=300, days=2, seed=3, stdout=io.StringIO())
    call_command("kodify_journal_fill", rows=300, days=2, seed=3, stdout=io.StringIO())
    assert Entry.objects.values("request_id").distinct().count() == 600
