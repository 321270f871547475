"""What the gateway hands to the journal: the raw facts of one request or event.

Building a :class:`Record` costs the request a few attribute stores and list appends;
everything expensive (decoding the bodies, reassembling a stream, counting tokens,
masking secrets) happens later in the journal writer's thread (``journal/rows.py``).
An :class:`EventRecord` is what a Tabby client's ``POST /v1/events`` becomes; the writer
stores it as a ``journal.models.Event``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Record:
    request_id: str
    endpoint: str  # the API path, e.g. "/v1/chat/completions"
    feature: str  # journal.models.Feature value
    client_request_id: str = ""  # the client's own X-Request-Id, kept when well-formed
    started_at: float = field(default_factory=time.time)  # wall clock, for created_at
    started: float = field(default_factory=time.perf_counter)  # for the durations
    auth_mode: str = ""
    user_id: int | None = None
    username: str = ""
    token_id: int | None = None
    client_ip: str | None = None
    user_agent: str = ""
    model: str = ""
    upstream: str = ""
    language: str = ""
    stream: bool = False
    request_body: bytes = b""
    # The answer as the upstream sent it: one whole JSON body, or the SSE chunks as they
    # arrived (split anywhere).  The usage chunk Kodify asked for is among them.
    response_chunks: list[bytes] = field(default_factory=list)
    status: int = 0
    error: str = ""
    first_byte_at: float | None = None  # perf_counter
    finished_at: float | None = None  # perf_counter
    cancelled: bool = False


@dataclass(slots=True)
class EventRecord:
    kind: str  # journal.models.EventKind value
    response_id: str  # the completion's id, "cmpl-…"; its journal Entry has the same one
    choice_index: int | None = None
    created_at: float = field(default_factory=time.time)
    user_id: int | None = None
    username: str = ""
    user_agent: str = ""  # the writer turns it into Event.client_name
    language: str = ""
    payload: dict[str, Any] = field(default_factory=dict)  # view_id, elapsed, select_kind…
