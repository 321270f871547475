"""What Tabby clients ask a server before they complete: its health and its settings.

Tabby's IDE plugins (tabby-agent) call ``/v1/health`` on start and refuse to complete
when ``model`` or ``device`` is empty; they read ``/v1beta/server_setting`` for whether
to send telemetry.  Kodify answers both in Tabby's shape.
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from functools import cache
from typing import Any

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
