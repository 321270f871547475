"""``config.yml``: the upstreams and the Tabby model, in the guide's format.

```yaml
upstreams:
  http://upstream1:8000:
  http://upstream2:8000:
    api_key: secret      # optional options per upstream
    weight: 2
    preprocessing: qwen  # FIM config: a name from preprocess_configs/ or a path
    max_concurrent: 64   # requests in flight from each worker; 0 (default): no limit
    priority_scheduling: true  # vLLM runs --scheduling-policy priority: autocompletion first
tabby:
  model_name: tabby_model_name
```

Found at ``KODIFY_CONFIG``, else the first of ``./config.yml``,
``/vllm-workspace/config.yml`` (where the guide's compose mounts it) and
``/opt/mtsai/config.yml``.  ``KODIFY_UPSTREAMS`` adds upstreams after the file's.

``upstreams`` may also be a list: of URLs (``- http://upstream1:8000``) or of mappings
with a ``url`` and the options above (``- url: http://upstream1:8000``).  Every problem,
an unknown or misplaced key included, is refused with the line it is on.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from yaml.constructor import SafeConstructor

from kodify_site.env import check_url

TOP_LEVEL_KEYS = ("upstreams", "tabby")
UPSTREAM_OPTIONS = (
    "api_key",
    "weight",
    "enabled",
    "name",
    "preprocessing",
    "max_concurrent",
    "priority_scheduling",
)
TABBY_OPTIONS = ("model_name",)
MERGE_TAG = "tag:yaml.org,2002:merge"


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
    # It runs vLLM with --scheduling-policy priority: requests carry a priority (see
    # gateway/scheduling.py); without it they never do, as vLLM may refuse one.
    priority_scheduling: bool = False
    source: str = "config.yml"


@dataclass(frozen=True)
class GatewayConfig:
    upstreams: tuple[UpstreamSpec, ...] = ()
    tabby_model_name: str | None = None
    path: Path | None = None


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
    found: list[tuple[UpstreamSpec, str]] = []  # each upstream, with where it is written
    model_name = None
    if path is not None:
        document = _Document(path)
        found += document.upstreams()
        model_name = document.tabby_model_name()
    for url in extra_urls:
        where = "KODIFY_UPSTREAMS"
        found.append((_upstream(url, {}, source=where, where=where), where))

    first_at: dict[str, str] = {}
    for spec, where in found:
        if spec.url in first_at:
            raise ConfigError(
                f"{where}: upstream {spec.url} is listed twice (first at {first_at[spec.url]})."
            )
        first_at[spec.url] = where
    return GatewayConfig(
        upstreams=tuple(spec for spec, _ in found), tabby_model_name=model_name, path=path
    )


# A mapping's key, the line it is on (from 1) and the node of its value.
Entry = tuple[str, int, yaml.Node]


class _Document:
    """config.yml as YAML nodes, which know their lines, so that every problem names one.

    A key the format does not know is refused rather than ignored: a typo (``upstream:``)
    or a file whose indentation was lost in copying (each URL at the top level) would
    otherwise leave Kodify without the upstreams it was meant to have.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.constructor = SafeConstructor()
        self.sections: dict[str, tuple[int, yaml.Node]] = {}
        # By node: reading merges a mapping's merged keys into its own, and an alias
        # (*anchor) brings the same node back.
        self._entries: dict[int, list[Entry]] = {}
        root = self._compose()
        if root is None or _is_null(root):  # nothing but comments, or "~"
            return
        if not isinstance(root, yaml.MappingNode):
            raise ConfigError(f"{path}: must be a mapping with 'upstreams' and 'tabby' keys.")
        for key, line, node in self.entries(root):
            if key not in TOP_LEVEL_KEYS:
                raise ConfigError(f"{self.at(line)}: {_stray_top_level_key(key)}")
            self.sections[key] = (line, node)

    def at(self, line: int) -> str:
        return f"{self.path} line {line}"

    def _compose(self) -> yaml.Node | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot be read ({exc.strerror}).") from exc
        except UnicodeDecodeError:
            raise ConfigError(f"{self.path}: is not UTF-8 text.") from None
        try:
            return yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            raise self._invalid(exc) from exc

    def _invalid(self, exc: yaml.YAMLError) -> ConfigError:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        why = f": {problem}" if problem else ""
        return ConfigError(f"{self.path}: is not valid YAML{at}{why}.")

    def value(self, node: yaml.Node) -> Any:
        """The Python value of ``node``, as ``yaml.safe_load`` would give it."""
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise self._invalid(exc) from exc

    def entries(self, node: yaml.MappingNode) -> list[Entry]:
        """The keys of a mapping in order, each once: one written twice is refused (YAML
        would silently keep the last), one merged in (``<<: *anchor``) is not.  Called
        before the mapping's value is built, which merges its keys into its own."""
        if id(node) in self._entries:
            return self._entries[id(node)]
        lines: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key, line = str(self.value(key_node)), _line(key_node)
            if key in lines:
                raise ConfigError(
                    f'{self.at(line)}: "{key}" is written twice (first at line {lines[key]}).'
                )
            lines[key] = line
        try:
            self.constructor.flatten_mapping(node)
        except yaml.YAMLError as exc:
            raise self._invalid(exc) from exc
        found: dict[str, Entry] = {}
        for key_node, value_node in node.value:  # merged keys first, the file's own win
            key = str(self.value(key_node))
            found[key] = (key, _line(key_node), value_node)
        self._entries[id(node)] = list(found.values())
        return self._entries[id(node)]

    def upstreams(self) -> list[tuple[UpstreamSpec, str]]:
        if "upstreams" not in self.sections:
            return []
        line, node = self.sections["upstreams"]
        if isinstance(node, yaml.SequenceNode):
            return [self._listed_upstream(item) for item in node.value]
        if isinstance(node, yaml.MappingNode):
            found = []
            for url, url_line, options in self.entries(node):
                if url in UPSTREAM_OPTIONS or url == "url":
                    raise ConfigError(
                        f'{self.at(url_line)}: "{url}" is an option of an upstream, not an '
                        "upstream's URL: indent it under its upstream (the indentation may "
                        "have been lost in copying)."
                    )
                found.append(self._upstream(url, url_line, self._options(url, options)))
            return found
        if self.value(node) is None:  # "upstreams:" with nothing under it
            return []
        raise ConfigError(f"{self.at(line)}: 'upstreams' must map upstream URLs to their options.")

    def _listed_upstream(self, item: yaml.Node) -> tuple[UpstreamSpec, str]:
        """``- http://host:8000``, ``- url: http://host:8000`` with options beside it, or
        ``- http://host:8000:`` with options under it."""
        line = _line(item)
        if not isinstance(item, yaml.MappingNode):
            url = self.value(item)
            if not isinstance(url, str):
                raise ConfigError(
                    f"{self.at(line)}: an upstream in the list must be a URL such as "
                    "http://vllm:8000."
                )
            return self._upstream(url, line, [])
        entries = self.entries(item)
        for key, key_line, node in entries:
            if key == "url":
                url = self.value(node)
                if not isinstance(url, str):
                    raise ConfigError(
                        f"{self.at(key_line)}: url must be an upstream's URL such as "
                        "http://vllm:8000."
                    )
                return self._upstream(url, key_line, [e for e in entries if e[0] != "url"])
        if len(entries) == 1 and "://" in entries[0][0]:
            url, url_line, options = entries[0]
            return self._upstream(url, url_line, self._options(url, options))
        raise ConfigError(
            f"{self.at(line)}: this upstream has no url: write it as "
            '"- url: http://vllm:8000" with its options under it.'
        )

    def _options(self, url: str, node: yaml.Node) -> list[Entry]:
        if isinstance(node, yaml.MappingNode):
            return self.entries(node)
        if self.value(node) is None:
            return []
        raise ConfigError(
            f"{self.at(_line(node))}: the options of upstream {normalise_upstream_url(url)} "
            "must be a mapping."
        )

    def _upstream(self, url: str, line: int, options: list[Entry]) -> tuple[UpstreamSpec, str]:
        where = self.at(line)
        spec = _upstream(
            url,
            {key: self.value(node) for key, _, node in options},
            source=str(self.path),
            where=where,
            places={key: self.at(key_line) for key, key_line, _ in options},
        )
        return spec, where

    def tabby_model_name(self) -> str | None:
        if "tabby" not in self.sections:
            return None
        line, node = self.sections["tabby"]
        if not isinstance(node, yaml.MappingNode):
            if self.value(node) is None:  # "tabby:" with nothing under it
                return None
            raise ConfigError(
                f"{self.at(line)}: 'tabby' must be a mapping such as 'model_name: NAME'."
            )
        model_name = None
        for key, key_line, value_node in self.entries(node):
            if key not in TABBY_OPTIONS:
                raise ConfigError(
                    f'{self.at(key_line)}: unknown key "{key}" under tabby (expected: '
                    f"{', '.join(TABBY_OPTIONS)}){_guess(key, TABBY_OPTIONS)}"
                )
            model_name = self.value(value_node)
            if model_name is not None and not isinstance(model_name, str):
                raise ConfigError(f"{self.at(key_line)}: tabby.model_name must be a string.")
        return model_name or None


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _stray_top_level_key(key: str) -> str:
    """What to say of a top-level key that is neither ``upstreams`` nor ``tabby``."""
    lost = "indent it (the indentation may have been lost in copying)."
    if "://" in key:
        return f'"{key}" is an upstream, so it belongs under "upstreams:": {lost}'
    if key in UPSTREAM_OPTIONS or key == "url":
        return f'"{key}" is an option of an upstream, so it belongs under its upstream: {lost}'
    if key in TABBY_OPTIONS:
        return f'"{key}" belongs under "tabby:": {lost}'
    expected = ", ".join(TOP_LEVEL_KEYS)
    return f'unknown key "{key}" (expected: {expected}){_guess(key, TOP_LEVEL_KEYS)}'


def _guess(key: str, known: tuple[str, ...]) -> str:
    """The end of a message about an unknown ``key``: the known one it was likely meant
    to be, if any."""
    close = difflib.get_close_matches(key.lower(), known, n=1)
    return f'; did you mean "{close[0]}"?' if close else "."


def _upstream(
    url: str,
    options: dict[str, Any],
    *,
    source: str,
    where: str,
    places: dict[str, str] | None = None,
) -> UpstreamSpec:
    """``where``: where the URL is written, for messages; ``places``: where each option is."""

    def at(option: str) -> str:
        return (places or {}).get(option, where)

    try:
        check_url(url, ("http", "https"))
    except ValueError as exc:
        raise ConfigError(f"{where}: upstream {url!r}: {exc}.") from None
    url = normalise_upstream_url(url)
    for option in options:
        if option not in UPSTREAM_OPTIONS:
            raise ConfigError(
                f'{at(option)}: upstream {url} has unknown option "{option}" (expected: '
                f"{', '.join(UPSTREAM_OPTIONS)}){_guess(option, UPSTREAM_OPTIONS)}"
            )
    api_key = options.get("api_key")
    weight = options.get("weight", 1)
    enabled = options.get("enabled", True)
    name = options.get("name") or ""
    preprocessing = options.get("preprocessing") or ""
    if not isinstance(preprocessing, str):
        raise ConfigError(
            f"{at('preprocessing')}: upstream {url}: preprocessing must be a config name such "
            "as qwen or a path to a JSON file."
        )
    if api_key is not None and not isinstance(api_key, str | int):
        raise ConfigError(f"{at('api_key')}: upstream {url}: api_key must be a string.")
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise ConfigError(f"{at('weight')}: upstream {url}: weight must be a positive number.")
    if not isinstance(enabled, bool):
        raise ConfigError(f"{at('enabled')}: upstream {url}: enabled must be true or false.")
    priority_scheduling = options.get("priority_scheduling", False)
    if not isinstance(priority_scheduling, bool):
        raise ConfigError(
            f"{at('priority_scheduling')}: upstream {url}: priority_scheduling must be true "
            "(its vLLM runs with --scheduling-policy priority) or false."
        )
    max_concurrent = options.get("max_concurrent", 0)
    if (
        isinstance(max_concurrent, bool)
        or not isinstance(max_concurrent, int)
        or max_concurrent < 0
    ):
        raise ConfigError(
            f"{at('max_concurrent')}: upstream {url}: max_concurrent must be a whole number "
            "(0: no limit)."
        )
    return UpstreamSpec(
        url=url,
        api_key=str(api_key) if api_key is not None else None,
        weight=float(weight),
        enabled=enabled,
        name=str(name),
        preprocessing=preprocessing,
        max_concurrent=max_concurrent,
        priority_scheduling=priority_scheduling,
        source=source,
    )


@cache
def gateway_config() -> GatewayConfig:
    """This process's configuration, read once from the settings' sources."""
    return load_config(
        settings.KODIFY_CONFIG,
        settings.KODIFY_CONFIG_SEARCH_PATH,
        settings.KODIFY_UPSTREAMS,
    )
