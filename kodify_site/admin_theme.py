"""Other apps' console pages (console accounts and roles, login attempts, periodic tasks)
on the console's theme.

django-unfold styles only the pages of its own model admin: the stock ones of
``django.contrib.auth``, django-axes and django-celery-beat would show bare form fields
in its frame.  Each is registered again with unfold's model admin added to its own, and
with unfold's forms and widgets where theirs are declared in their forms.  The console's
admin app does it once every app's admin module is loaded
(:class:`kodify_site.admin_site.KodifyAdminConfig`).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db.models import Model
from django_celery_beat.admin import PeriodicTaskForm, TaskSelectWidget
from django_celery_beat.models import PeriodicTask
from unfold.admin import ModelAdmin
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminTextInputWidget


class UnfoldTaskSelectWidget(UnfoldAdminSelectWidget, TaskSelectWidget):
    """Celery beat's list of registered tasks, drawn as unfold's select."""


class UnfoldPeriodicTaskForm(PeriodicTaskForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["task"].widget = UnfoldAdminTextInputWidget()
        self.fields["regtask"].widget = UnfoldTaskSelectWidget()


# What each page's own form declares (unfold's model admin only styles the model's fields).
OWN_FORMS: dict[type[Model], dict[str, Any]] = {
    User: {
        "form": UserChangeForm,
        "add_form": UserCreationForm,
        "change_password_form": AdminPasswordChangeForm,
    },
    Group: {},
    PeriodicTask: {"form": UnfoldPeriodicTaskForm},
}


def on_the_console_theme(site: admin.AdminSite) -> None:
    """Register every other app's model admin again, as itself plus unfold's."""
    for model, model_admin in list(site._registry.items()):
        current = type(model_admin)
        if issubclass(current, ModelAdmin):
            continue
        themed = type(current.__name__, (current, ModelAdmin), dict(OWN_FORMS.get(model, {})))
        site.unregister(model)
        site.register(model, themed)
