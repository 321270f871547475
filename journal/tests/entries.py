"""Journal rows and console accounts for the console's tests (made with the ORM)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import router, transaction

from journal.models import Entry, Event, Feature
from journal.rollups import count_entries, count_events

PASSWORD = "a-long-console-password-7"
T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
_numbers = itertools.count(1)


def make_entry(**values: Any) -> Entry:
    number = next(_numbers)
    fields: dict[str, Any] = {
        "created_at": T0,
        "request_id": f"req{number:08d}",
        "username": "dev1",
        "user_id": 1,
        "client_name": "vscode",
        "client_version": "1.2.3",
        "endpoint": "/v1/chat/completions",
        "feature": Feature.CHAT,
        "model": "qwen-coder",
        "language": "python",
        "request_body": '{"messages": [{"role": "user", "content": "hello"}]}',
        "response_text": "Hello there",
        "response_id": f"cmpl-{number}",
        "status": 200,
        "latency_ms": 100.0,
        "ttft_ms": 10.0,
        "prompt_tokens": 5,
        "completion_tokens": 7,
    }
    fields.update(values)
    # As the journal's stores do (in one transaction), so the dashboards see it.
    with transaction.atomic(using=router.db_for_write(Entry)):
        entry = Entry.objects.create(**fields)
        count_entries(entry._state.db or "default", [_columns(entry)])
    return entry


def make_event(entry: Entry | None = None, **values: Any) -> Event:
    fields: dict[str, Any] = {
        "created_at": entry.created_at + dt.timedelta(seconds=1) if entry else T0,
        "kind": "view",
        "response_id": entry.response_id if entry else "",
        "choice_index": 0,
        "username": entry.username if entry else "dev1",
        "user_id": entry.user_id if entry else 1,
        "client_name": entry.client_name if entry else "vscode",
        "language": entry.language if entry else "python",
    }
    fields.update(values)
    with transaction.atomic(using=router.db_for_write(Event)):
        event = Event.objects.create(**fields)
        count_events(event._state.db or "default", [_columns(event)])
    return event


def _columns(row: Entry | Event) -> dict[str, Any]:
    return {field.attname: getattr(row, field.attname) for field in row._meta.concrete_fields}


def console_account(username: str, group: str | None = None, **extra: Any) -> Any:
    account = get_user_model().objects.create_user(
        username, password=PASSWORD, is_staff=True, **extra
    )
    if group:
        account.groups.add(Group.objects.get(name=group))
    return account
