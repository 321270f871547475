"""The console's pages for the assistant actions' templates and per-action defaults.

An administrator edits a template beside a preview of the exact chat messages a sample
request gets (:mod:`gateway.admin_preview`); a template not changed yet starts from the
shipped text.  Every save keeps a version (django-simple-history's *History* page: who,
when, what changed, and *Revert*), goes through :mod:`gateway.services` (audit event,
configuration stamp) and so reaches every worker within seconds.  Auditors read the
templates, the defaults and their versions, and change nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from simple_history.admin import SimpleHistoryAdmin

from accounts.admin import ConsoleModelAdmin
from gateway import admin_preview, selectors, services
from gateway.actions import ACTIONS
from gateway.actions.languages import LANGUAGES, SAMPLES
from gateway.actions.templates import PLACEHOLDER_LIST, shipped_template
from gateway.models import GENERIC_LANGUAGE, LANGUAGE_CHOICES, ActionSetting, ActionTemplate

SIMPLE_HISTORY_FORM = "_simple_history"  # the end of the revert page's URL name


class VersionedAdmin(SimpleHistoryAdmin, ConsoleModelAdmin):
    """A model with versions: its writes go through a service, which records who made the
    version and why; a revert (the *History* page's form) is a save of the old values."""

    def history_form_view(
        self,
        request: HttpRequest,
        object_id: str,
        version_id: str,
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # django-simple-history lets anyone who may read the history post its revert form
        # (its form is built as for an addition, so a read-only user's POST would save).
        if request.method == "POST" and not self.has_change_permission(request):
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        self.save_versioned(obj, actor=request.user, reason=self.revert_reason(request))

    def revert_reason(self, request: HttpRequest) -> str:
        """The version's reason when this save is the *History* page's revert, else ""."""
        match = request.resolver_match
        if match is None or not (match.url_name or "").endswith(SIMPLE_HISTORY_FORM):
            return ""
        version = self.model.history.filter(history_id=match.args[1]).first()
        return services.reverted_reason(version.history_date) if version else ""

    def save_versioned(self, obj: Any, *, actor: Any, reason: str) -> None:
        raise NotImplementedError


# -- templates -----------------------------------------------------------------------------


class ActionTemplateForm(ModelForm):
    class Meta:
        model = ActionTemplate
        fields = ("action", "language", "system", "user")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The console's own text areas (its theme's), sized for prompts.
        for name, rows in (("system", 24), ("user", 6)):
            if name in self.fields:
                self.fields[name].widget.attrs.update(rows=rows, spellcheck="false")


@admin.register(ActionTemplate)
class ActionTemplateAdmin(VersionedAdmin):
    form = ActionTemplateForm
    list_display = ("name", "language_shown", "changed_by", "changed_at")
    list_display_links = ("name",)
    list_filter = ("action", "language")
    actions = ("revert_to_shipped",)
    readonly_fields = ("changed_by", "changed_at")

    class Media:
        js = ("gateway/action_template.js",)

    @admin.display(description="template", ordering="action")
    def name(self, template: ActionTemplate) -> str:
        return str(template)

    @admin.display(description="language", ordering="language")
    def language_shown(self, template: ActionTemplate) -> str:
        return template.get_language_display()

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Deleting a template is reverting it to the shipped one: one action, one name.
        found = super().get_actions(request)
        found.pop("delete_selected", None)
        return found

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Which action and language a row is for stays: another pair is another template.
        fields = tuple(super().get_readonly_fields(request, obj))
        return ("action", "language", *fields) if obj is not None else fields

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """A new template starts from the shipped one (``?action=fix&language=python``)."""
        initial = super().get_changeform_initial_data(request)
        action = initial.get("action") if initial.get("action") in ACTIONS else ACTIONS[0]
        language = initial.get("language") if initial.get("language") in LANGUAGES else ""
        shipped = shipped_template(action, LANGUAGES.get(language))
        return {
            **initial,
            "action": action,
            "language": language,
            "system": shipped.system,
            "user": shipped.user,
        }

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, object_id) if object_id else None
        if object_id is None:
            language = self.get_changeform_initial_data(request)["language"]
        else:
            language = obj.language if obj is not None else GENERIC_LANGUAGE
        extra = {
            **(extra_context or {}),
            "placeholders": PLACEHOLDER_LIST,
            "sample": SAMPLES[language],
            "can_preview": (
                self.has_add_permission(request)
                if object_id is None
                else self.has_change_permission(request, obj)
            ),
        }
        return super().changeform_view(request, object_id, form_url, extra)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "template_grid": self.template_grid(request)}
        return super().changelist_view(request, extra)

    def template_grid(self, request: HttpRequest) -> dict[str, Any]:
        """Per action and language: the console's template (a link to it) or the shipped
        one (a link to add one from it, for those who may)."""
        found = selectors.action_template_ids()
        may_add = self.has_add_permission(request)
        rows = []
        for action in ACTIONS:
            cells = []
            for language, _label in LANGUAGE_CHOICES:
                pk = found.get((action, language))
                if pk is not None:
                    url = reverse("admin:gateway_actiontemplate_change", args=[pk])
                    cells.append({"state": "console", "url": url})
                else:
                    query = urlencode({"action": action, "language": language})
                    url = reverse("admin:gateway_actiontemplate_add") + "?" + query
                    cells.append({"state": "shipped", "url": url if may_add else ""})
            rows.append({"action": action, "cells": cells})
        return {"languages": [label for _key, label in LANGUAGE_CHOICES], "rows": rows}

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "preview/",
                self.admin_site.admin_view(self.preview_view),
                name="gateway_actiontemplate_preview",
            ),
            path(
                "shipped/",
                self.admin_site.admin_view(self.shipped_view),
                name="gateway_actiontemplate_shipped",
            ),
        ]
        return [*own, *super().get_urls()]

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return admin_preview.preview(request)

    def shipped_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return admin_preview.shipped(request)

    # -- writes, all through gateway.services -------------------------------------------

    def save_versioned(self, obj: Any, *, actor: Any, reason: str) -> None:
        services.save_action_template(template=obj, actor=actor, reason=reason)

    def delete_model(self, request: HttpRequest, obj: ActionTemplate) -> None:
        services.revert_action_templates_to_shipped(templates=[obj], actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ActionTemplate]) -> None:
        services.revert_action_templates_to_shipped(templates=list(queryset), actor=request.user)

    @admin.action(
        description="Revert selected templates to the shipped text", permissions=["delete"]
    )
    def revert_to_shipped(self, request: HttpRequest, queryset: QuerySet[ActionTemplate]) -> None:
        reverted = services.revert_action_templates_to_shipped(
            templates=list(queryset), actor=request.user
        )
        messages.success(
            request,
            f"{len(reverted)} template(s) back to the shipped text: {', '.join(reverted)}. "
            "Their versions stay in the history.",
        )


# -- per-action defaults -------------------------------------------------------------------


class ActionSettingForm(ModelForm):
    """A default model must be one the model servers serve (when they said which)."""

    class Meta:
        model = ActionSetting
        fields = ("action", "model", "temperature", "max_tokens")

    def clean_model(self) -> str:
        name = (self.cleaned_data.get("model") or "").strip()
        served = selectors.serving_upstreams()
        if name and served and name not in served:
            raise ValidationError(
                f"No model server serves {name!r}: choose one of {', '.join(sorted(served))}, "
                "or leave it blank for the default model."
            )
        return name


@admin.register(ActionSetting)
class ActionSettingAdmin(VersionedAdmin):
    form = ActionSettingForm
    list_display = (
        "action",
        "model_shown",
        "temperature",
        "max_tokens",
        "changed_by",
        "changed_at",
    )
    readonly_fields = ("changed_by", "changed_at")

    @admin.display(description="model", ordering="model")
    def model_shown(self, setting: ActionSetting) -> SafeString:
        return format_html("{}", setting.model or "as requested, else the default model")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        return ("action", *fields) if obj is not None else fields

    def save_versioned(self, obj: Any, *, actor: Any, reason: str) -> None:
        services.save_action_setting(setting=obj, actor=actor, reason=reason)

    def delete_model(self, request: HttpRequest, obj: ActionSetting) -> None:
        services.delete_action_settings(action_settings=[obj], actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ActionSetting]) -> None:
        services.delete_action_settings(action_settings=list(queryset), actor=request.user)
