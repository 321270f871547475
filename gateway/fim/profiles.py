"""Preprocessing configs (``preprocess_configs/*.json``): one per code-model family.

A config says how a fill-in-the-middle prompt is laid out for a model (its FIM tokens),
which stop sequences end the model's text, the generation defaults and how much context
fits.  The format is described by ``preprocess_configs/schema.json`` and checked with
``jsonschema`` (the maintained reference implementation: its messages name the exact
field at fault, which a hand-written check would have to reinvent).

Which config serves a model, first match wins:

1. the upstream's ``preprocessing`` option in ``config.yml`` (a name or a path);
2. ``COMPLETIONS_PREPROCESSING_CONFIG`` (a path; relative ones from the project directory);
3. the shipped config whose ``models`` fragments occur in the served model's name (or the
   model path vLLM reports as its ``root``);
4. ``generic``: plain continuation of the prefix.

Everything is read and checked once, at start-up (a system check reports a bad file in
one sentence); requests only look configs up in dictionaries.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings

from gateway import config_file

logger = logging.getLogger("kodify.fim")

SHIPPED_DIR = Path(__file__).resolve().parent.parent.parent / "preprocess_configs"
SCHEMA_FILE = SHIPPED_DIR / "schema.json"
GENERIC_NAME = "generic"
PREFIX, SUFFIX = "{prefix}", "{suffix}"
# vLLM, like OpenAI, refuses more than four stop sequences; postprocess() applies the rest.
UPSTREAM_STOP_LIMIT = 4


class ProfileError(ValueError):
    """A preprocessing config cannot be used; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class Budget:
    prefix_chars: int = 6000
    suffix_chars: int = 2000
    context_chars: int = 3000
    # Code averages 3.5-4 characters per token with the big models' tokenizers; a lower
    # guess keeps a prompt inside a short context window without asking the tokenizer.
    chars_per_token: float = 3.0

    def within(self, context_tokens: int | None, max_tokens: int) -> Budget:
        """This budget, shrunk to fit a model's context window less the tokens to generate."""
        if not context_tokens:
            return self
        room = int(max(context_tokens - max_tokens - 16, 16) * self.chars_per_token)
        total = self.prefix_chars + self.suffix_chars + self.context_chars
        if total <= room:
            return self
        share = room / total
        return Budget(
            prefix_chars=max(int(self.prefix_chars * share), 1),
            suffix_chars=int(self.suffix_chars * share),
            context_chars=int(self.context_chars * share),
            chars_per_token=self.chars_per_token,
        )


@dataclass(frozen=True, slots=True)
class ContextStyle:
    style: str = "comments"  # "comments" | "template"
    header: str = "Path: {filepath}"
    snippet_template: str = ""
    max_snippets: int = 10
    clipboard: bool = True


@dataclass(frozen=True, slots=True)
class FimProfile:
    name: str
    template: str
    description: str = ""
    models: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    max_tokens: int = 64
    temperature: float = 0.1
    upstream_accepts_suffix: bool = False
    budget: Budget = field(default_factory=Budget)
    context: ContextStyle = field(default_factory=ContextStyle)
    source: str = ""  # the file it came from, for messages and the console
    # The template split around its placeholders, so rendering is one join.
    _parts: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _order: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts, order = _split_template(self.template)
        object.__setattr__(self, "_parts", parts)
        object.__setattr__(self, "_order", order)

    @property
    def uses_suffix(self) -> bool:
        return SUFFIX in self._order

    def render(self, prefix: str, suffix: str) -> str:
        """The prompt: the template with ``prefix`` and ``suffix`` put in (nothing else)."""
        parts = self._parts
        values = {PREFIX: prefix, SUFFIX: suffix}
        pieces = [parts[0]]
        for index, name in enumerate(self._order, start=1):
            pieces.append(values[name])
            pieces.append(parts[index])
        return "".join(pieces)


def _split_template(template: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``"<a>{prefix}<b>{suffix}<c>"`` → ``(("<a>", "<b>", "<c>"), ("{prefix}", "{suffix}"))``.

    Only the two placeholders are special; any other brace is literal text, so a
    template never needs escaping (code models' tokens are full of odd characters).
    """
    parts: list[str] = []
    order: list[str] = []
    rest = template
    while True:
        found = [(rest.find(name), name) for name in (PREFIX, SUFFIX) if name in rest]
        if not found:
            parts.append(rest)
            return tuple(parts), tuple(order)
        at, name = min(found)
        parts.append(rest[:at])
        order.append(name)
        rest = rest[at + len(name) :]


# -- loading --------------------------------------------------------------------------


@cache
def _validator() -> Any:
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def load_profile(path: Path) -> FimProfile:
    """Read and check one config file; :class:`ProfileError` says what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(
            f"{path}: is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None
    return profile_from_dict(data, source=str(path))


def profile_from_dict(data: Any, *, source: str) -> FimProfile:
    errors = sorted(_validator().iter_errors(data), key=lambda error: list(error.path))
    if errors:
        error = errors[0]
        where = "/".join(str(part) for part in error.path) or "the top level"
        raise ProfileError(f"{source}: {where}: {error.message}.")
    for name in (PREFIX, SUFFIX):
        if data["template"].count(name) > 1:
            raise ProfileError(f"{source}: template: {name} may appear only once.")
    budget = data.get("prompt_budget") or {}
    context = data.get("context") or {}
    return FimProfile(
        name=data["name"],
        template=data["template"],
        description=data.get("description", ""),
        models=tuple(fragment.lower() for fragment in data.get("models", ())),
        stop=tuple(data.get("stop", ())),
        max_tokens=data.get("max_tokens", 64),
        temperature=float(data.get("temperature", 0.1)),
        upstream_accepts_suffix=data.get("upstream_accepts_suffix", False),
        budget=Budget(**budget),
        context=ContextStyle(**context),
        source=source,
    )


def resolve_path(value: str | Path) -> Path:
    """A config path as the guide writes it: relative paths from the project directory."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(settings.BASE_DIR) / path


@dataclass(frozen=True)
class ProfileSet:
    """Every config this process may use, and the rules choosing among them."""

    shipped: dict[str, FimProfile]
    explicit: FimProfile | None = None  # COMPLETIONS_PREPROCESSING_CONFIG
    loaded: dict[str, FimProfile | None] = field(default_factory=dict)  # by reference

    def for_model(
        self,
        model: str,
        *,
        root: str = "",
        choices: tuple[str, ...] = (),
    ) -> FimProfile:
        """The config for ``model``: the first of ``choices`` that loads (the upstream's
        and the model's own, from the console or config.yml), else the setting, else by
        the model's name."""
        for reference in choices:
            chosen = self.reference(reference) if reference else None
            if chosen is not None:
                return chosen
        if self.explicit is not None:
            return self.explicit
        return self.matching(model, root)

    def reference(self, reference: str) -> FimProfile | None:
        """``named(reference)`` read once; None (logged) when it cannot be used.

        The console refuses a bad reference when it is saved; this guards against a file
        that disappeared since.
        """
        if reference not in self.loaded:
            try:
                self.loaded[reference] = self.named(reference)
            except ProfileError as exc:
                logger.error("preprocessing config %r is unusable: %s", reference, exc)
                self.loaded[reference] = None
        return self.loaded[reference]

    def matching(self, model: str, root: str = "") -> FimProfile:
        names = f"{model}\n{root}".lower()
        for profile in self.shipped.values():
            if any(fragment in names for fragment in profile.models):
                return profile
        return self.shipped[GENERIC_NAME]

    def named(self, reference: str) -> FimProfile:
        """A config by name (``qwen``) or by path (``preprocess_configs/qwen.json``)."""
        if reference in self.shipped:
            return self.shipped[reference]
        return load_profile(resolve_path(reference))


def load_shipped(directory: Path = SHIPPED_DIR) -> dict[str, FimProfile]:
    profiles: dict[str, FimProfile] = {}
    for path in sorted(directory.glob("*.json")):
        if path.name == SCHEMA_FILE.name:
            continue
        profile = load_profile(path)
        if profile.name in profiles:
            raise ProfileError(f"{path}: the name {profile.name!r} is used by another config.")
        profiles[profile.name] = profile
    if GENERIC_NAME not in profiles:
        raise ProfileError(f"{directory}: the {GENERIC_NAME!r} config is missing.")
    return profiles


def build_profile_set(explicit: str | Path | None, upstream_choices: dict[str, str]) -> ProfileSet:
    """Load everything; :class:`ProfileError` on the first problem.

    ``upstream_choices`` (config.yml's ``preprocessing`` by upstream URL) are checked here
    and kept loaded, so the first request for them reads no file.
    """
    profiles = ProfileSet(shipped=load_shipped())
    chosen = profiles.named(str(explicit)) if explicit else None
    for url, reference in upstream_choices.items():
        try:
            profiles.loaded[reference] = profiles.named(reference)
        except ProfileError as exc:
            raise ProfileError(f"config.yml, upstream {url}, preprocessing: {exc}") from None
    return replace(profiles, explicit=chosen)


@cache
def get_profiles() -> ProfileSet:
    """This process's configs (checked at start-up by ``gateway.checks``)."""
    upstreams = config_file.gateway_config().upstreams
    choices = {spec.url: spec.preprocessing for spec in upstreams if spec.preprocessing}
    return build_profile_set(settings.COMPLETIONS_PREPROCESSING_CONFIG, choices)
