"""The console's theme (django-unfold) for the widgets that Kodify's forms declare.

unfold's model admin gives its own widgets to the model's fields; a field that a form
declares itself (a new API key, a model list, the Tabby model's choice) keeps Django's bare
widget, which the theme's stylesheet leaves without a border.  :func:`themed` swaps each
for unfold's counterpart, keeping its attributes and choices.
"""

from __future__ import annotations

from typing import Any

from django import forms
from unfold import widgets as unfold

# Exact classes only: a subclass (unfold's own, a date picker) draws itself already.
_THEMED: dict[type[forms.Widget], Any] = {
    forms.TextInput: lambda w: unfold.UnfoldAdminTextInputWidget(attrs=w.attrs),
    forms.PasswordInput: lambda w: unfold.UnfoldAdminPasswordWidget(
        attrs=w.attrs, render_value=w.render_value
    ),
    forms.Textarea: lambda w: unfold.UnfoldAdminTextareaWidget(attrs=w.attrs),
    forms.Select: lambda w: unfold.UnfoldAdminSelectWidget(attrs=w.attrs, choices=w.choices),
    forms.CheckboxInput: lambda w: unfold.UnfoldBooleanSwitchWidget(attrs=w.attrs),
}


def themed_widget(widget: forms.Widget) -> forms.Widget:
    if isinstance(widget, forms.MultiWidget):
        widget.widgets = [themed_widget(part) for part in widget.widgets]
        return widget
    make = _THEMED.get(type(widget))
    if make is None:
        return widget
    new: forms.Widget = make(widget)
    new.is_required = widget.is_required
    return new


def themed(form: forms.BaseForm) -> None:
    """Give the form's declared fields unfold's widgets (in place, on this instance)."""
    for field in form.fields.values():
        field.widget = themed_widget(field.widget)
