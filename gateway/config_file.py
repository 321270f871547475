"""``config.yml``: the upstreams and the Tabby model, in the guide's format.

```yaml
upstreams:
  http://upstream1:8000:
  http://upstream2:8000:
    api_key: secret      # optional options per upstream
    weight: 2
    preprocessing: qwen  # FIM config: a name from preprocess_configs/ or a path
    max_concurrent: 64   # requests in flight from each worker; 0 (default): no limit
tabby:
  model_name: tabby_model_name
```

Found at ``KODIFY_CONFIG``, else the first of ``./config.yml``,
``/vllm-workspace/config.yml`` (where the guide's compose mounts it) and
``/opt/mtsai/config.yml``.  ``KODIFY_UPSTREAMS`` adds upstreams after the file's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings

from kodify_site.env import check_url

UPSTREAM_OPTIONS = ("api_key", "weight", "enabled", "name", "preprocessing", "max_concurrent")


class ConfigError(ValueError):
    """config.yml cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class UpstreamSpec:
    url: str
    api_key: str | None = None
    weight: float = 1.0
    enabled: bool = True
    name: str = ""
    preprocessing: str = ""  # a preprocess_configs name or path; "" = the usual choice
    max_concurrent: int = 0  # requests in flight to it from one worker; 0 = no limit
    source: str = "config.yml"


@dataclass(frozen=True)
class GatewayConfig:
    upstreams: tuple[UpstreamSpec, ...] = ()
    tabby_model_name: str | None = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def find_config_file(explicit: Path | None, search_path: Iterable[Path]) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"KODIFY_CONFIG={explicit}: no such file.")
        return explicit
    for candidate in search_path:
        if candidate.is_file():
            return candidate
    return None


def normalise_upstream_url(url: str) -> str:
    """``http://host:8000/v1/`` and ``http://host:8000`` name the same upstream."""
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


def load_config(
    explicit: Path | None,
    search_path: Iterable[Path],
    extra_urls: Iterable[str] = (),
) -> GatewayConfig:
    path = find_config_file(explicit, search_path)
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_yaml(path)
    where = str(path) if path else "config.yml"

    upstreams: list[UpstreamSpec] = []
    raw_upstreams = data.get("upstreams") or {}
    if isinstance(raw_upstreams, list):  # a plain list of URLs is accepted too
        raw_upstreams = dict.fromkeys(raw_upstreams)
    if not isinstance(raw_upstreams, dict):
        raise ConfigError(f"{where}: 'upstreams' must map upstream URLs to their options.")
    for url, options in raw_upstreams.items():
        upstreams.append(_upstream(str(url), options, where))
    for url in extra_urls:
        upstreams.append(_upstream(url, None, "KODIFY_UPSTREAMS"))

    seen: set[str] = set()
    for spec in upstreams:
        if spec.url in seen:
            raise ConfigError(f"{where}: upstream {spec.url} is listed twice.")
        seen.add(spec.url)

    tabby = data.get("tabby") or {}
    if not isinstance(tabby, dict):
        raise ConfigError(f"{where}: 'tabby' must be a mapping such as 'model_name: NAME'.")
    model_name = tabby.get("model_name")
    if model_name is not None and not isinstance(model_name, str):
        raise ConfigError(f"{where}: tabby.model_name must be a string.")

    extra = {k: v for k, v in data.items() if k not in ("upstreams", "tabby")}
    return GatewayConfig(
        upstreams=tuple(upstreams),
        tabby_model_name=model_name or None,
        path=path,
        extra=extra,
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        why = f": {problem}" if problem else ""
        raise ConfigError(f"{path}: is not valid YAML{at}{why}.") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping with 'upstreams' and 'tabby' keys.")
    return data


def _upstream(url: str, options: Any, where: str) -> UpstreamSpec:
    try:
        check_url(url, ("http", "https"))
    except ValueError as exc:
        raise ConfigError(f"{where}: upstream {url!r}: {exc}.") from None
    url = normalise_upstream_url(url)
    if options is None:
        return UpstreamSpec(url=url, source=where)
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: the options of upstream {url} must be a mapping.")
    unknown = sorted(set(options) - set(UPSTREAM_OPTIONS))
    if unknown:
        raise ConfigError(
            f"{where}: upstream {url} has unknown option(s) {', '.join(map(str, unknown))}; "
            f"known: {', '.join(UPSTREAM_OPTIONS)}."
        )
    api_key = options.get("api_key")
    weight = options.get("weight", 1)
    enabled = options.get("enabled", True)
    name = options.get("name") or ""
    preprocessing = options.get("preprocessing") or ""
    if not isinstance(preprocessing, str):
        raise ConfigError(
            f"{where}: upstream {url}: preprocessing must be a config name such as qwen "
            "or a path to a JSON file."
        )
    if api_key is not None and not isinstance(api_key, str | int):
        raise ConfigError(f"{where}: upstream {url}: api_key must be a string.")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise ConfigError(f"{where}: upstream {url}: weight must be a positive number.")
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: upstream {url}: enabled must be true or false.")
    max_concurrent = options.get("max_concurrent", 0)
    if (
        isinstance(max_concurrent, bool)
        or not isinstance(max_concurrent, int)
        or max_concurrent < 0
    ):
        raise ConfigError(
            f"{where}: upstream {url}: max_concurrent must be a whole number (0: no limit)."
        )
    return UpstreamSpec(
        url=url,
        api_key=str(api_key) if api_key is not None else None,
        weight=float(weight),
        enabled=enabled,
        name=str(name),
        preprocessing=preprocessing,
        max_concurrent=max_concurrent,
        source=where,
    )


@cache
def gateway_config() -> GatewayConfig:
    """This process's configuration, read once from the settings' sources."""
    return load_config(
        settings.KODIFY_CONFIG,
        settings.KODIFY_CONFIG_SEARCH_PATH,
        settings.KODIFY_UPSTREAMS,
    )
