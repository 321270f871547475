"""Console forms for API users and tokens (the admin pages in ``accounts.admin``)."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils import timezone

from accounts import services
from accounts.models import ApiToken, ApiUser

_SEPARATORS = re.compile(r"[\s,]+")


class ModelNamesField(forms.CharField):
    """A list of model names typed one per line (or separated by commas).

    The model keeps a JSON list; a JSON text box would make administrators type brackets
    and quotes for what is just a list of names.
    """

    widget = forms.Textarea(attrs={"rows": 3, "cols": 40})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return "\n".join(str(name) for name in value)
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        if isinstance(value, list | tuple):
            names = [str(name) for name in value]
        else:
            names = _SEPARATORS.split(value or "")
        return list(dict.fromkeys(name for name in (n.strip() for n in names) if name))


class ApiUserForm(forms.ModelForm):
    allowed_models = ModelNamesField(
        required=False,
        help_text="Model names this user may call, one per line. Empty: all models.",
    )

    class Meta:
        model = ApiUser
        fields = ApiUser.EDITABLE_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Refused rather than trimmed (accounts.usernames), as in the management API.
        if "username" in self.fields:  # not on a read-only page (auditors)
            self.fields["username"].strip = False  # type: ignore[attr-defined]


class ApiTokenForm(forms.ModelForm):
    """A token's page: only a live token's expiry changes, to a future date or none."""

    class Meta:
        model = ApiToken
        fields = ("expires_at",)

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        if self.instance.pk is not None and "expires_at" in self.changed_data:
            refusal = services.expiry_refusal(self.instance, expires_at)
            if refusal is not None:
                raise forms.ValidationError(refusal)
        return expires_at


class IssueTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="Where the token will be used, e.g. 'laptop VS Code'.",
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires",
        # The browser's own date picker; its value carries no zone, so it is read as UTC.
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        help_text="Optional, in UTC. Empty: the token never expires.",
    )
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    # Each form served can issue one token: re-sending the page (a reload) must not
    # silently issue a second one.
    nonce = forms.CharField(widget=forms.HiddenInput)

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return expires_at
