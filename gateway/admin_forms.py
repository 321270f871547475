"""The console's forms for upstreams and served models.

An upstream's API key is write-only: the form takes a new one or clears it, and never
shows the one set.  Preprocessing is a choice among the shipped FIM configs, or the path
of a config file.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms import ModelForm

from gateway.models import GatewaySetting, ServedModel, UpstreamServer

PATH_CHOICE = "__path__"


# -- the preprocessing choice: a shipped config, or a path ----------------------------------


def _shipped_names() -> list[str]:
    from gateway.fim.profiles import ProfileError, load_shipped

    try:
        return list(load_shipped())
    except ProfileError:  # the start-up checks report it; the form still takes a path
        return []


class PreprocessingWidget(forms.MultiWidget):
    def __init__(self, names: list[str]) -> None:
        self.names = names
        choices = [("", "automatic"), *((n, n) for n in names), (PATH_CHOICE, "a file (path)…")]
        super().__init__(
            widgets=[
                forms.Select(choices=choices),
                forms.TextInput(
                    attrs={"size": 50, "placeholder": "path, e.g. preprocess_configs/my.json"}
                ),
            ]
        )

    def decompress(self, value: Any) -> list[str]:
        if not value:
            return ["", ""]
        if value in self.names:
            return [value, ""]
        return [PATH_CHOICE, value]


class PreprocessingField(forms.MultiValueField):
    """A select of the shipped configs, with a text box for a config file's path."""

    def __init__(self, **kwargs: Any) -> None:
        names = _shipped_names()
        choices = [("", ""), *((n, n) for n in names), (PATH_CHOICE, PATH_CHOICE)]
        kwargs.setdefault("required", False)
        super().__init__(
            fields=(
                forms.ChoiceField(choices=choices, required=False),
                forms.CharField(required=False),
            ),
            widget=PreprocessingWidget(names),
            require_all_fields=False,
            **kwargs,
        )

    def compress(self, data_list: list[Any]) -> str:
        if not data_list:
            return ""
        choice, typed = data_list[0] or "", (data_list[1] or "").strip()
        if choice == PATH_CHOICE or (typed and not choice):
            if not typed:
                raise ValidationError("Give the path of the config file.")
            return typed
        return str(choice)


# -- upstreams -----------------------------------------------------------------------------


class UpstreamServerForm(ModelForm):
    new_api_key = forms.CharField(
        label="New API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the key as it is. The key is never shown back.",
    )
    clear_api_key = forms.BooleanField(
        label="Clear the API key",
        required=False,
        help_text="Send the default key instead (KODIFY_UPSTREAM_API_KEY, else VLLM_API_KEY).",
    )

    class Meta:
        model = UpstreamServer
        fields = (
            "url",
            "name",
            "enabled",
            "position",
            "weight",
            "max_concurrent",
            "preprocessing",
            "priority_scheduling",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "preprocessing" in self.fields:
            field = self.fields["preprocessing"]
            self.fields["preprocessing"] = PreprocessingField(
                label=field.label, help_text=field.help_text
            )

    def clean_weight(self) -> float:
        weight = self.cleaned_data["weight"]
        if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
            raise ValidationError(
                f"The weight is a share of the traffic between {MIN_WEIGHT:g} and "
                f"{MAX_WEIGHT:g} (1 for an equal share); {weight:g} is outside it."
            )
        return float(weight)

    def clean_max_concurrent(self) -> int | None:
        value = self.cleaned_data.get("max_concurrent")
        if value is not None and value > MAX_UPSTREAM_CONCURRENT:
            raise ValidationError(
                f"At most {MAX_UPSTREAM_CONCURRENT:,} requests at once per model server; "
                "leave it empty for no limit."
            )
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("new_api_key") and data.get("clear_api_key"):
            raise ValidationError("Either give a new API key or clear it, not both.")
        return data


# -- the gateway's settings ----------------------------------------------------------------

MIN_WEIGHT, MAX_WEIGHT = 0.01, 1000.0
MAX_UPSTREAM_CONCURRENT = 100_000
MAX_N_LIMIT = 16


class GatewaySettingForm(ModelForm):
    """The overrides, checked against what the model servers serve: a Tabby model that
    no server has would make every Tabby completion fail, and a default ``max_tokens``
    beyond a model's context would make every request that gives none fail there."""

    class Meta:
        model = GatewaySetting
        fields = ("max_n", "default_max_tokens", "tabby_model_name")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from gateway.selectors import serving_upstreams

        super().__init__(*args, **kwargs)
        self.served = serving_upstreams()
        if not self.served:  # nothing to choose from yet: a name, not checked
            self.fields["tabby_model_name"].help_text = (
                "No model server has reported its models yet, so this name cannot be "
                "checked: make sure a model server serves it."
            )
            return
        current = (self.instance.tabby_model_name or "") if self.instance else ""
        names = sorted(self.served)
        if current and current not in names:
            names.append(current)  # still shown, so that the refusal can name it
        self.fields["tabby_model_name"] = forms.TypedChoiceField(
            label="Tabby model",
            required=False,
            choices=[("", "automatic (config.yml, else the first model)")]
            + [(name, name) for name in names],
            help_text="One of the models the model servers serve, for Tabby code completion.",
            error_messages={
                "invalid_choice": "No model server serves %(value)s: choose one of the "
                f"models listed ({', '.join(sorted(self.served))}), or automatic."
            },
        )

    def clean_max_n(self) -> int | None:
        value = self.cleaned_data.get("max_n")
        if value is not None and value > MAX_N_LIMIT:
            raise ValidationError(
                f"At most {MAX_N_LIMIT} answers per request: each one costs a whole generation."
            )
        return value

    def clean_tabby_model_name(self) -> str:
        name = (self.cleaned_data.get("tabby_model_name") or "").strip()
        if name and self.served and name not in self.served:
            raise ValidationError(
                f"No model server serves {name!r}: choose one of "
                f"{', '.join(sorted(self.served))}, or automatic."
            )
        return name

    def clean_default_max_tokens(self) -> int | None:
        value = self.cleaned_data.get("default_max_tokens")
        if value is None:
            return value
        too_small = sorted(
            (serving.max_model_len, model)
            for model, servings in self.served.items()
            for serving in servings
            if serving.max_model_len is not None and value >= serving.max_model_len
        )
        if too_small:
            length, model = too_small[0]
            raise ValidationError(
                f"{value:,} tokens leave no room for the prompt in {model!r}, whose context "
                f"is {length:,} tokens: choose less than that (a few hundred is usual)."
            )
        return value


# -- served models -------------------------------------------------------------------------


class ServedModelForm(ModelForm):
    class Meta:
        model = ServedModel
        fields = ("preprocessing", "prefix_affinity")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["preprocessing"]
        self.fields["preprocessing"] = PreprocessingField(
            label=field.label, help_text=field.help_text
        )
