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

from gateway.models import ServedModel, UpstreamServer

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
        fields = ("url", "name", "enabled", "position", "weight", "max_concurrent", "preprocessing")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "preprocessing" in self.fields:
            field = self.fields["preprocessing"]
            self.fields["preprocessing"] = PreprocessingField(
                label=field.label, help_text=field.help_text
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("new_api_key") and data.get("clear_api_key"):
            raise ValidationError("Either give a new API key or clear it, not both.")
        return data


# -- served models -------------------------------------------------------------------------


class ServedModelForm(ModelForm):
    class Meta:
        model = ServedModel
        fields = ("preprocessing",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["preprocessing"]
        self.fields["preprocessing"] = PreprocessingField(
            label=field.label, help_text=field.help_text
        )
