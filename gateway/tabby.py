"""Tabby's API: its completion and event bodies, its health and its settings.

Tabby's IDE plugins (tabby-agent) call ``/v1/health`` on start and refuse to complete
when ``model`` or ``device`` is empty; they read ``/v1beta/server_setting`` for whether
to send telemetry.  Kodify answers both in Tabby's shape.

Completions (``POST /v1/completions`` with ``segments``) and events (``POST /v1/events``)
are checked here into typed requests; bad input gets an OpenAI error body naming the
field, as every other endpoint does.
"""

from __future__ import annotations

import os
import platform
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from gateway.errors import bad_request
from gateway.fim.prompt import Segments, Snippet
from gateway.upstreams import UpstreamTable
from kodify_site import __version__

# The model servers behind Kodify are vLLM on GPUs; Tabby only displays this field.
DEVICE = "cuda"
SERVER_SETTING = {"disable_client_side_telemetry": False}


def completion_model(table: UpstreamTable) -> str:
    """The model Tabby-shape completions go to: ``tabby.model_name``, else the first one."""
    if table.tabby_model_name:
        return table.tabby_model_name
    models = table.served_models()
    return str(models[0]["id"]) if models else ""


def health_report(table: UpstreamTable) -> dict[str, Any]:
    models = [str(card["id"]) for card in table.served_models()]
    model = completion_model(table)
    return {
        "model": model or "unavailable",
        "chat_model": next((name for name in models if name != model), model) or None,
        "device": DEVICE,
        "arch": platform.machine() or "unknown",
        "cpu_info": _cpu_info(),
        "cpu_count": os.cpu_count() or 1,
        "cuda_devices": [],
        "version": _version(),
    }


@cache
def _cpu_info() -> str:
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
    completion_id: str = field(default_factory=lambda: f"cmpl-{uuid.uuid4()}")


def parse_completion(body: dict[str, Any]) -> CompletionRequest:
    segments = body.get("segments")
    if not isinstance(segments, dict):
        raise bad_request(
            "'segments' must be an object with 'prefix' (and optionally 'suffix').",
            param="segments",
            code="invalid_type",
        )
    prefix = segments.get("prefix")
    if prefix is None:
        raise bad_request(
            "'segments.prefix' is required: the text before the cursor.",
            param="segments.prefix",
            code="missing_required_parameter",
        )
    snippets: list[Snippet] = []
    for key, kind in _SNIPPET_LISTS:
        snippets.extend(_snippets(segments, key, kind))
    clipboard = _string(segments, "clipboard", "segments.")
    if clipboard and clipboard.strip():
        snippets.append(Snippet(filepath="", body=clipboard, kind="clipboard"))
    parsed = Segments(
        prefix=_string(segments, "prefix", "segments."),
        suffix=_string(segments, "suffix", "segments."),
        filepath=_string(segments, "filepath", "segments."),
        git_url=_string(segments, "git_url", "segments."),
        snippets=snippets,
    )
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise bad_request("'model' must be a non-empty string.", param="model")
    return CompletionRequest(
        segments=parsed,
        language=_string(body, "language"),
        model=model,
        user=_string(body, "user"),
        temperature=_temperature(body),
        seed=_seed(body),
        mode=_string(body, "mode"),
        debug=_debug_options(body.get("debug_options")),
    )


def _string(data: dict[str, Any], key: str, where: str = "") -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_request(
            f"'{where}{key}' must be a string.", param=f"{where}{key}", code="invalid_type"
        )
    return value


def _snippets(segments: dict[str, Any], key: str, kind: str) -> list[Snippet]:
    items = segments.get(key)
    if items is None:
        return []
    where = f"segments.{key}"
    if not isinstance(items, list):
        raise bad_request(f"'{where}' must be an array.", param=where, code="invalid_type")
    found: list[Snippet] = []
    for index, item in enumerate(items[:MAX_SNIPPETS_READ]):
        if not isinstance(item, dict):
            raise bad_request(
                f"'{where}[{index}]' must be an object with 'filepath' and 'body'.",
                param=where,
                code="invalid_type",
            )
        body = item.get("body")
        filepath = item.get("filepath", "")
        if not isinstance(body, str) or not isinstance(filepath, str):
            raise bad_request(
                f"'{where}[{index}]': 'filepath' and 'body' must be strings.",
                param=where,
                code="invalid_type",
            )
        found.append(Snippet(filepath=filepath, body=body, kind=kind))
    return found


def _temperature(body: dict[str, Any]) -> float | None:
    value = body.get("temperature")
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise bad_request(
            "'temperature' must be a number.", param="temperature", code="invalid_type"
        )
    if not 0 <= value <= 2:
        raise bad_request("'temperature' must be between 0 and 2.", param="temperature")
    return float(value)


def _seed(body: dict[str, Any]) -> int | None:
    value = body.get("seed")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request("'seed' must be an integer.", param="seed", code="invalid_type")
    return value


def _debug_options(value: Any) -> DebugOptions:
    if value is None:
        return DebugOptions()
    if not isinstance(value, dict):
        raise bad_request(
            "'debug_options' must be an object.", param="debug_options", code="invalid_type"
        )
    flags = {}
    for key in ("return_snippets", "return_prompt", "disable_retrieval_augmented_code_completion"):
        flag = value.get(key, False)
        if not isinstance(flag, bool):
            raise bad_request(
                f"'debug_options.{key}' must be true or false.",
                param=f"debug_options.{key}",
                code="invalid_type",
            )
        flags[key] = flag
    raw_prompt = value.get("raw_prompt")
    if raw_prompt is not None and not isinstance(raw_prompt, str):
        raise bad_request(
            "'debug_options.raw_prompt' must be a string.",
            param="debug_options.raw_prompt",
            code="invalid_type",
        )
    return DebugOptions(
        raw_prompt=raw_prompt,
        return_snippets=flags["return_snippets"],
        return_prompt=flags["return_prompt"],
        disable_context=flags["disable_retrieval_augmented_code_completion"],
    )


# -- events -----------------------------------------------------------------------------

EVENT_KINDS = frozenset({"view", "select", "dismiss"})


@dataclass(slots=True)
class CompletionEvent:
    kind: str
    completion_id: str
    choice_index: int | None
    payload: dict[str, Any]


def parse_event(body: dict[str, Any], query: dict[str, str]) -> CompletionEvent:
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in EVENT_KINDS:
        raise bad_request(
            "'type' must be one of view, select, dismiss.", param="type", code="invalid_value"
        )
    completion_id = body.get("completion_id")
    if not isinstance(completion_id, str) or not completion_id or len(completion_id) > 64:
        raise bad_request(
            "'completion_id' must be the id of a completion (a string of at most 64 characters).",
            param="completion_id",
        )
    choice_index = body.get("choice_index")
    if choice_index is not None and (
        not isinstance(choice_index, int) or isinstance(choice_index, bool) or choice_index < 0
    ):
        raise bad_request(
            "'choice_index' must be a non-negative integer.",
            param="choice_index",
            code="invalid_type",
        )
    payload: dict[str, Any] = {}
    view_id = body.get("view_id")
    if view_id is not None:
        if not isinstance(view_id, str):
            raise bad_request("'view_id' must be a string.", param="view_id", code="invalid_type")
        payload["view_id"] = view_id[:128]
    elapsed = body.get("elapsed")
    if elapsed is not None:
        if not isinstance(elapsed, int | float) or isinstance(elapsed, bool) or elapsed < 0:
            raise bad_request(
                "'elapsed' must be a non-negative number of milliseconds.",
                param="elapsed",
                code="invalid_type",
            )
        payload["elapsed"] = elapsed
    select_kind = query.get("select_kind")
    if select_kind:
        payload["select_kind"] = select_kind[:16]
    return CompletionEvent(
        kind=kind, completion_id=completion_id, choice_index=choice_index, payload=payload
    )
