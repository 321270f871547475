"""The list's filter form: what an auditor may type, checked before it reaches a query."""

from __future__ import annotations

from typing import Any

from django import forms

from journal.models import Feature
from journal.selectors import EntryFilters, InvalidStatus, parse_status

ANY = ("", "any")


def _select(name: str, current: str, values: list[str]) -> forms.Select:
    # The current value stays selectable even when the dropdown's list no longer has it.
    options = [ANY, *((value, value) for value in values)]
    if current and current not in values:
        options.append((current, current))
    return forms.Select(choices=options, attrs={"id": f"id_{name}"})


class EntryFilterForm(forms.Form):
    user = forms.CharField(required=False, max_length=150, label="User")
    user_id = forms.IntegerField(required=False, min_value=0, label="User id")
    model = forms.CharField(required=False, max_length=200)
    endpoint = forms.CharField(required=False, max_length=64)
    feature = forms.ChoiceField(required=False, choices=[ANY, *Feature.choices])
    status = forms.CharField(
        required=False,
        max_length=16,
        widget=forms.TextInput(attrs={"placeholder": "500, 5xx, cancelled", "size": 12}),
    )
    client = forms.CharField(required=False, max_length=64, label="Editor")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(
        required=False,
        max_length=500,
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": 'words, "a phrase", -not', "size": 30}
        ),
    )

    def __init__(self, data: Any, *, choices: dict[str, list[str]]) -> None:
        super().__init__(data)
        for name, column in (
            ("model", "model"),
            ("endpoint", "endpoint"),
            ("client", "client_name"),
        ):
            self.fields[name].widget = _select(
                name, self.data.get(name, ""), choices.get(column, [])
            )

    def clean_status(self) -> str:
        status: str = self.cleaned_data["status"].strip()
        if status:
            try:
                parse_status(status)
            except InvalidStatus as exc:
                raise forms.ValidationError(str(exc)) from None
        return status

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return cleaned

    def filters(self) -> EntryFilters:
        """The filters of a valid form (after is_valid).

        A form with an error gets no rows at all (the views check ``is_valid`` first):
        leaving the wrong field out would show a wider set than was asked for, which an
        auditor could take for the answer.
        """
        return EntryFilters.from_mapping(getattr(self, "cleaned_data", {}))

    def problems(self) -> str:
        """The form's errors as one sentence's clauses, each naming its field."""
        clauses = []
        for name, errors in self.errors.items():
            label = self[name].label if name in self.fields else ""
            for message in errors:
                text = str(message).rstrip(".")
                clauses.append(f"{label} — {text}" if label else text)
        return "; ".join(clauses) + "." if clauses else ""
