"""Tabby's API: its completion and event bodies, its health and its settings.

Tabby's IDE plugins (tabby-agent) call ``/v1/health`` on start and refuse to complete
when ``model`` or ``device`` is empty; they read ``/v1beta/server_setting`` for whether
to send telemetry.  Kodify answers both in Tabby's shape.

Completions (``POST /v1/completions`` with ``segments``) and events (``POST /v1/events``)
are checked against their Structs (gateway/api_schema/requests.py, which the OpenAPI
document is generated from) and turned into the requests below; bad input gets an
OpenAI error body naming the field, as every other endpoint does.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, get_args

from accounts.auth import Principal
from gateway.api_schema.requests import (
    EventKind,
    TabbyCompletionRequest,
    TabbyDebugOptions,
    TabbyEvent,
    TabbyEventQuery,
    TabbySnippet,
)
from gateway.api_schema.validation import convert
from gateway.completion_ids import check_given_to, new_completion_id
from gateway.fim.prompt import Segments, Snippet
from gateway.upstreams import UpstreamTable
from kodify_site import __version__

# Tabby clients only display the device, and want it non-empty.
UNKNOWN_DEVICE = "unknown"
SERVER_SETTING = {"disable_client_side_telemetry": False}


def completion_model(table: UpstreamTable) -> str:
    """The model Tabby-shape completions go to: ``tabby.model_name``, else the first one."""
    if table.tabby_model_name:
        return table.tabby_model_name
    models = table.served_models()
    return str(models[0]["id"]) if models else ""


def device(table: UpstreamTable, model: str) -> str:
    """What the replicas of ``model`` run on, as they told it (``learn_devices``): one
    device, several joined, or "unknown" when none said."""
    devices = sorted({u.device for u in table.replicas(model) if u.device}) if model else []
    return ", ".join(devices) or UNKNOWN_DEVICE


def health_report(table: UpstreamTable) -> dict[str, Any]:
    models = [str(card["id"]) for card in table.served_models()]
    model = completion_model(table)
    return {
        "model": model or "unavailable",
        "chat_model": next((name for name in models if name != model), model) or None,
        "device": device(table, model),
        "arch": platform.machine() or "unknown",
        "cpu_info": cpu_info(),
        "cpu_count": os.cpu_count() or 1,
        "cuda_devices": [],
        "version": _version(),
    }


@cache
def cpu_info() -> str:
    """This machine's processor model (Tabby's health reports it; so does the bench)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@cache
def _version() -> dict[str, str]:
    started = datetime.now(UTC)
    return {
        "build_date": started.date().isoformat(),
        "build_timestamp": started.isoformat(timespec="seconds"),
        "git_sha": "",
        "git_describe": f"kodify-{__version__}",
    }


# -- completions ------------------------------------------------------------------------

# Tabby's snippet lists, in the order their snippets are worth a place in the prompt.
_SNIPPET_LISTS = (
    ("declarations", "declaration"),
    ("relevant_snippets_from_changed_files", "changed_file"),
    ("relevant_snippets_from_recently_opened_files", "recent_file"),
)
# More snippets than any prompt budget holds are not worth reading.
MAX_SNIPPETS_READ = 64


@dataclass(slots=True)
class DebugOptions:
    raw_prompt: str | None = None
    return_snippets: bool = False
    return_prompt: bool = False
    disable_context: bool = False  # Tabby's disable_retrieval_augmented_code_completion

    @property
    def wanted(self) -> bool:
        return self.return_snippets or self.return_prompt


@dataclass(slots=True)
class CompletionRequest:
    """A checked Tabby completion request."""

    segments: Segments
    language: str = ""
    model: str | None = None  # not Tabby's; honoured when a client names one
    user: str = ""
    temperature: float | None = None
    seed: int | None = None
    mode: str = ""
    debug: DebugOptions = field(default_factory=DebugOptions)
    # Signed for the caller (gateway/completion_ids.py): only they may post its events.
    completion_id: str = field(default_factory=lambda: new_completion_id(None))


def parse_completion(body: dict[str, Any], principal: Principal | None = None) -> CompletionRequest:
    """Check a Tabby body against ``TabbyCompletionRequest`` (gateway/api_schema/requests.py);
    its completion's id is signed for ``principal``, the caller."""
    request = convert(body, TabbyCompletionRequest)
    segments = request.segments
    snippets: list[Snippet] = []
    for key, kind in _SNIPPET_LISTS:
        items: list[TabbySnippet] = getattr(segments, key) or []
        snippets.extend(
            Snippet(filepath=item.filepath, body=item.body, kind=kind)
            for item in items[:MAX_SNIPPETS_READ]
        )
    clipboard = segments.clipboard
    if clipboard and clipboard.strip():
        snippets.append(Snippet(filepath="", body=clipboard, kind="clipboard"))
    debug = request.debug_options or TabbyDebugOptions()
    return CompletionRequest(
        segments=Segments(
            prefix=segments.prefix,
            suffix=segments.suffix or "",
            filepath=segments.filepath or "",
            git_url=segments.git_url or "",
            snippets=snippets,
        ),
        language=request.language or "",
        model=request.model,
        user=request.user or "",
        temperature=None if request.temperature is None else float(request.temperature),
        seed=None if request.seed is None else int(request.seed),
        mode=request.mode or "",
        debug=DebugOptions(
            raw_prompt=debug.raw_prompt,
            return_snippets=debug.return_snippets,
            return_prompt=debug.return_prompt,
            disable_context=debug.disable_retrieval_augmented_code_completion,
        ),
        completion_id=new_completion_id(principal),
    )


# -- events -----------------------------------------------------------------------------

EVENT_KINDS = frozenset(get_args(EventKind))


@dataclass(slots=True)
class CompletionEvent:
    kind: str
    completion_id: str
    choice_index: int | None
    payload: dict[str, Any]


def parse_event(
    body: dict[str, Any], query: dict[str, str], principal: Principal | None = None
) -> CompletionEvent:
    """Check a Tabby event against ``TabbyEvent`` and its query string against
    ``TabbyEventQuery`` (gateway/api_schema/requests.py): a 400 naming the field if not;
    then a 404 unless its completion was given to ``principal`` (gateway/completion_ids.py)."""
    event = convert(body, TabbyEvent)
    # An empty parameter is one not sent (openapi-fetch's clients leave undefined ones out).
    select_kind = convert({k: v for k, v in query.items() if v}, TabbyEventQuery).select_kind
    check_given_to(event.completion_id, principal)
    payload: dict[str, Any] = {}
    if event.view_id is not None:
        payload["view_id"] = event.view_id
    if event.elapsed is not None:
        payload["elapsed"] = event.elapsed
    if select_kind:
        payload["select_kind"] = select_kind
    return CompletionEvent(
        kind=event.type,
        completion_id=event.completion_id,
        choice_index=None if event.choice_index is None else int(event.choice_index),
        payload=payload,
    )
