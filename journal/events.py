"""Tabby's completion events as ``journal.models.Event`` rows.

An event's payload is whatever the client sent (``POST /v1/events``): its size is the
client's choice, so a large one is cut down to a few short fields rather than stored
whole, and each text is cut to what its column holds, since a longer one would make the
database refuse the whole event.

The journal writer stores events with the ORM (a few per completion: not worth COPY or
the helper process), from the queue that also carries the requests.  What is guaranteed
for them:

* A full queue drops them (counted in the writer's ``stats.events_dropped``, a warning at
  most once a minute); requests are spooled instead.  An event is worth less than a
  request, and spooling costs a disk write on the event loop.
* Once queued, an outage does not lose them: they wait in a spool of their own
  (``<spool>/events/``, same files, locks and adoption of dead processes' files as the
  requests'), replayed when the database returns.  A process killed before its queue
  reaches the spool loses that queue, as it does for requests.
* Replay skips events already stored, recognised by (time to the microsecond, kind,
  response id, choice), so a batch whose commit was acknowledged too late is not stored
  twice.  Events have no unique key in the table: the same event sent twice by a client
  is stored twice (the dashboards count distinct completions, so it moves no number).
* An event the database refuses is set aside in ``rejected-<pid>.jsonl`` like a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson

from journal.clients import parse_user_agent
from journal.record import EventRecord
from journal.spool import Row
from journal.store import describe, rows_or_reasons

# Tabby's payload is a few short fields; the rest of a larger one is not kept.
EVENT_PAYLOAD_MAX_BYTES = 4096
EVENT_PAYLOAD_MAX_FIELDS = 32
EVENT_PAYLOAD_MAX_TEXT = 256


def event_row(event: EventRecord) -> Row:
    """The ``journal.models.Event`` fields of an event, each text cut to what its column
    holds (a longer one would be refused, and the whole event with it)."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    language = event.language or payload.get("language") or ""
    row: Row = {
        "created_at": datetime.fromtimestamp(event.created_at, UTC),
        "kind": event.kind,
        "response_id": event.response_id or "",
        "choice_index": event.choice_index,
        "user_id": event.user_id,
        "username": event.username or "",
        "client_name": parse_user_agent(event.user_agent)[0] if event.user_agent else "",
        "language": language if isinstance(language, str) else "",
        "payload": storable_payload(payload),
    }
    for name, limit in _event_text_limits():
        value = row.get(name)
        if isinstance(value, str) and len(value) > limit:
            row[name] = value[:limit]
    return row


def storable_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as JSON holds it; past EVENT_PAYLOAD_MAX_BYTES only its first short
    scalar fields, marked ``"truncated": true`` (its size is the client's choice)."""
    data = orjson.dumps(payload, default=str, option=orjson.OPT_NON_STR_KEYS)
    if len(data) <= EVENT_PAYLOAD_MAX_BYTES:
        loaded: dict[str, Any] = orjson.loads(data)
        return loaded
    kept: dict[str, Any] = {"truncated": True}
    for key, value in payload.items():
        if len(kept) > EVENT_PAYLOAD_MAX_FIELDS:
            break
        if isinstance(value, str):
            kept[str(key)[:EVENT_PAYLOAD_MAX_TEXT]] = value[:EVENT_PAYLOAD_MAX_TEXT]
        elif value is None or isinstance(value, bool | int | float):
            kept[str(key)[:EVENT_PAYLOAD_MAX_TEXT]] = value
    return kept


def event_rows(events: Sequence[EventRecord]) -> tuple[list[Row], list[Row]]:
    """The rows of ``events``; and the events that could not become one, as
    ``{"error": …, "event": fields}``, to be set aside."""
    return rows_or_reasons(events, event_row, kind="event", fields=asdict)


def decode_event_rows(rows: list[Row]) -> tuple[list[Row], list[Row]]:
    """Event rows read back from the spool, where their time is an ISO string; and the
    rows that do not decode, as ``{"error": …, "event": row}``."""
    decoded: list[Row] = []
    failed: list[Row] = []
    for row in rows:
        try:
            created_at = row.get("created_at")
            if isinstance(created_at, str):
                row["created_at"] = datetime.fromisoformat(created_at)
            decoded.append(row)
        except (TypeError, ValueError) as exc:
            failed.append({"error": describe(exc), "event": row})
    return decoded, failed


@cache
def _event_text_limits() -> tuple[tuple[str, int], ...]:
    from journal.models import Event

    return tuple(
        (field.attname, field.max_length)
        for field in Event._meta.concrete_fields
        if field.get_internal_type() == "CharField" and field.max_length
    )
