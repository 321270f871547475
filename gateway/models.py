"""Upstreams, served models, the gateway's console settings, and the assistant actions'
templates and defaults.

The hot path never reads these tables: each worker rebuilds its in-memory table from
:func:`gateway.selectors.gateway_snapshot` when a version stamp in the cache changes
(:mod:`gateway.snapshot`).  Writes go through :mod:`gateway.services`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import JSONField, Q
from simple_history.models import HistoricalRecords

from gateway.actions import ACTIONS
from gateway.actions.languages import LANGUAGES
from gateway.actions.listing import ACTION_DESCRIPTIONS
from gateway.actions.templates import PLACEHOLDER_LIST, format_problem
from gateway.config_file import normalise_upstream_url
from gateway.sealing import SealedTextField
from kodify_site.env import check_url

SOURCE_CONFIG = "config.yml"
SOURCE_CONSOLE = "console"
SOURCE_CHOICES = (
    (SOURCE_CONFIG, "config.yml (follows the file)"),
    (SOURCE_CONSOLE, "console (the console wins)"),
)

SETTING_PK = 1


def validate_upstream_url(value: str) -> None:
    try:
        check_url(value.strip(), ("http", "https"))
    except ValueError as exc:
        raise ValidationError(f"{exc} (such as http://vllm:8000).") from None


def validate_positive(value: float) -> None:
    if value is None or value <= 0:
        raise ValidationError("Must be a positive number.")


def validate_preprocessing(value: str) -> None:
    """A shipped config's name or a path to one that loads: a typo is a form error here,
    not a failed completion later."""
    if not value:
        return
    from gateway.fim.profiles import ProfileError, ProfileSet, load_shipped

    try:
        ProfileSet(shipped=load_shipped()).named(value)
    except ProfileError as exc:
        names = ", ".join(load_shipped())
        raise ValidationError(
            f"{exc} Shipped configs: {names}; or a path to a JSON file."
        ) from None


PREPROCESSING_HELP = (
    "Fill-in-the-middle config for autocompletion: a shipped config's name (qwen, "
    "deepseek…) or a path to a JSON file (relative paths start at the project directory). "
    "Blank: automatic (COMPLETIONS_PREPROCESSING_CONFIG, else chosen from the model's name)."
)


AFFINITY_ON = "on"
AFFINITY_OFF = "off"
AFFINITY_CHOICES = [("", "As KODIFY_PREFIX_AFFINITY"), (AFFINITY_ON, "On"), (AFFINITY_OFF, "Off")]


class UpstreamServer(models.Model):
    """One vLLM (or other OpenAI-compatible) server the gateway relays requests to."""

    url = models.CharField(
        "URL",
        max_length=500,
        unique=True,
        validators=[validate_upstream_url],
        help_text="Base URL of the server, such as http://vllm:8000 (a trailing /v1 is dropped).",
    )
    name = models.CharField(
        max_length=200, blank=True, help_text="A label for the console and /health."
    )
    enabled = models.BooleanField(
        default=True, help_text="Disabled upstreams get no requests and are not checked."
    )
    position = models.PositiveIntegerField(
        "order",
        default=0,
        help_text="Lower first. Requests that name no model go to the first enabled "
        "upstream's first model.",
    )
    weight = models.FloatField(
        default=1.0,
        validators=[validate_positive],
        help_text="Share of the load among the replicas of a model (2 takes twice as many "
        "requests as 1).",
    )
    max_concurrent = models.PositiveIntegerField(
        "max concurrent",
        default=0,
        help_text="Requests in flight to it from each server process; 0: no limit.",
    )
    # Sealed in the database (gateway/sealing.py), plain here: it is sent to the upstream
    # with every request.  The console never shows it back (admin.UpstreamServerForm).
    api_key = SealedTextField(
        "API key",
        blank=True,
        validators=[MaxLengthValidator(500)],
        help_text="Key vLLM was started with. Blank: KODIFY_UPSTREAM_API_KEY, else VLLM_API_KEY.",
    )
    preprocessing = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_preprocessing],
        help_text=PREPROCESSING_HELP,
    )
    source = models.CharField(
        max_length=20,
        choices=SOURCE_CHOICES,
        default=SOURCE_CONSOLE,
        help_text="config.yml: the values follow the file at every start. console: edited "
        "here; the file no longer changes this upstream.",
    )
    priority_scheduling = models.BooleanField(
        "autocompletion first",
        default=False,
        help_text="The server runs vLLM with --scheduling-policy priority: autocompletion "
        "requests are sent with a higher priority than chat and actions. Leave off "
        "otherwise (vLLM refuses a priority it was not started for).",
    )

    # Written by the health checks only (services.check_upstreams).
    healthy = models.BooleanField(
        null=True, blank=True, default=None, help_text="Empty: never checked."
    )
    last_check = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # A list of OpenAI model cards, in the upstream's order (a JSON object would lose it
    # in PostgreSQL's jsonb, and the first model is the default one).  Last: from here
    # on ``models`` in this class body is the field, not django.db.models.
    models = JSONField(default=list, blank=True)

    class Meta:
        verbose_name = "upstream"
        ordering = ("position", "id")
        constraints = [
            models.CheckConstraint(
                condition=Q(weight__gt=0), name="gateway_upstream_weight_positive"
            )
        ]

    def __str__(self) -> str:
        from gateway.probing import without_credentials

        return self.name or without_credentials(self.url)

    def clean(self) -> None:
        if self.url:
            self.url = normalise_upstream_url(self.url)

    @property
    def model_cards(self) -> dict[str, dict[str, Any]]:
        cards = self.models if isinstance(self.models, list) else []
        return {card["id"]: card for card in cards if isinstance(card, dict) and "id" in card}


class ServedModel(models.Model):
    """A model some upstream serves (found by the health checks), and its settings."""

    name = models.CharField(max_length=300, unique=True, help_text="The served model name.")
    preprocessing = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_preprocessing],
        help_text=PREPROCESSING_HELP,
    )
    prefix_affinity = models.CharField(
        "prefix-cache affinity",
        max_length=8,
        blank=True,
        choices=AFFINITY_CHOICES,
        help_text="Send requests that share a long prompt prefix (one developer's document, "
        "one chat's first messages) to the same replica, where vLLM has it cached. "
        "Blank: KODIFY_PREFIX_AFFINITY.",
    )
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "model"
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class GatewaySetting(models.Model):
    """The console's overrides of the environment and config.yml (one row, pk=1)."""

    max_n = models.PositiveIntegerField(
        "MAX_N",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Largest n (answers per request). Empty: the environment's MAX_N.",
    )
    default_max_tokens = models.PositiveIntegerField(
        "default max_tokens",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="max_tokens for chat and completion requests that give none. Empty: "
        "none is added (the upstream's default).",
    )
    tabby_model_name = models.CharField(
        "Tabby model",
        max_length=300,
        blank=True,
        help_text="Model for Tabby code completion. Empty: config.yml's tabby.model_name, "
        "else the first upstream's first model.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "gateway settings"
        verbose_name_plural = "gateway settings"

    def __str__(self) -> str:
        return "Gateway settings"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.pk = SETTING_PK
        super().save(*args, **kwargs)


# -- assistant actions: the console's templates and defaults ------------------------------

ACTION_CHOICES = [(action, f"{action}: {ACTION_DESCRIPTIONS[action]}") for action in ACTIONS]
GENERIC_LANGUAGE = ""
LANGUAGE_CHOICES = [
    (GENERIC_LANGUAGE, "generic (any other language)"),
    *((key, language.name) for key, language in LANGUAGES.items()),
]
MAX_TEMPLATE_CHARS = 20_000
TEMPLATE_HELP = (
    "A format string: {placeholder} is replaced with the request's value. Placeholders: "
    f"{PLACEHOLDER_LIST}. The code goes in as a value, so braces in it are safe; a literal "
    "brace in the template itself is written {{ or }}."
)


def _template_problems(system: str, user: str) -> dict[str, str]:
    problems = {}
    for name, label, text in (("system", "system prompt", system), ("user", "user message", user)):
        problem = format_problem(text)
        if problem is not None:
            problems[name] = (
                f"The {label} {problem}. It may use only the placeholders {PLACEHOLDER_LIST}."
            )
    if not problems and "{code}" not in system + user:
        problems["user"] = (
            "Neither the system prompt nor the user message contains {code}: the model "
            "would never see the code. Put {code} in the user message (inside a fence, "
            "such as {ticks}{fence} … {ticks})."
        )
    return problems


class ActionTemplate(models.Model):
    """An administrator's prompts for one action and language, in place of the shipped ones.

    Where no row exists the shipped prompts (``gateway.actions.templates``) apply, so a
    server upgrade still improves every template nobody changed.  Workers read these with
    the rest of the console's state (``gateway.snapshot``), never per request.
    """

    action = models.CharField(max_length=16, choices=ACTION_CHOICES)
    language = models.CharField(
        max_length=32,
        blank=True,
        choices=LANGUAGE_CHOICES,
        help_text="The language this template is for. Generic: every language without a "
        "template of its own in the list (the shipped ones name Python, C#, Java, Go, "
        "JavaScript and TypeScript).",
    )
    system = models.TextField(
        "system prompt",
        validators=[MaxLengthValidator(MAX_TEMPLATE_CHARS)],
        help_text="The rules and the answer's shape (plugins apply the first fenced block "
        "of docs and fix answers, and save tests answers as a file). " + TEMPLATE_HELP,
    )
    user = models.TextField(
        "user message",
        validators=[MaxLengthValidator(MAX_TEMPLATE_CHARS)],
        help_text="The material: file path, surrounding code, the code, the user's own "
        "words. " + TEMPLATE_HELP,
    )
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    changed_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "action template"
        ordering = ("action", "language")
        constraints = [
            models.UniqueConstraint(
                fields=("action", "language"), name="gateway_action_template_unique"
            )
        ]

    def __str__(self) -> str:
        language = LANGUAGES.get(self.language)
        return f"{self.action} ({language.name if language else 'generic'})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Also here, not only in forms: a template that does not format would turn every
        # request for its action into a 400 on every worker.
        self.clean()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        problems = _template_problems(self.system or "", self.user or "")
        if problems:
            raise ValidationError(problems)


class ActionSetting(models.Model):
    """Per action, what its requests get when they do not say (both entry points)."""

    action = models.CharField(max_length=16, choices=ACTION_CHOICES, unique=True)
    model = models.CharField(
        max_length=300,
        blank=True,
        help_text="The model for POST /v1/actions/… requests that name none. Blank: the "
        "default model. (A chat to an action model names its model itself.)",
    )
    temperature = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(2.0)],
        help_text="0 to 2, for requests that give none. Empty: the model's default.",
    )
    max_tokens = models.PositiveIntegerField(
        "max_tokens",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="The answer's length limit, for requests that give none. Empty: the "
        "gateway settings' default max_tokens, else the model's.",
    )
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    changed_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "action setting"
        ordering = ("action",)

    def __str__(self) -> str:
        return f"{self.action} defaults"
