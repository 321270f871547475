"""The console's pages for upstreams, served models and the gateway's settings.

Administrators only (auditors hold no permission on these models).  Writes go through
:mod:`gateway.services`, which bump the version stamp every worker watches, so a change
applies everywhere within seconds, and leave an audit event.  An upstream's API key is
write-only: the form says whether one is set, never what it is.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.debug import sensitive_post_parameters

from accounts.admin import ConsoleModelAdmin
from gateway import admin_actions, selectors, services
from gateway import admin_templates as admin_templates  # registers the action templates' pages
from gateway.admin_display import automatic_choice, health_badge, model_cards, source_badge
from gateway.admin_forms import GatewaySettingForm, ServedModelForm, UpstreamServerForm
from gateway.models import SETTING_PK, GatewaySetting, ServedModel, UpstreamServer
from gateway.probing import without_credentials

SOURCE_RULE = (
    "Which source wins: config.yml (and KODIFY_UPSTREAMS) is imported at every start. An "
    "upstream of source “config.yml” follows the file: it is created, updated and deleted "
    "with it. Saving a change to an upstream here makes it a “console” upstream: the file no "
    "longer changes it (the console wins) until the action “Follow config.yml again”. "
    "Upstreams added here are “console” upstreams."
)

# Set on each model of the model list: who serves it (read once for the whole page).
SERVING_ATTRIBUTE = "_kodify_serving"


# -- upstreams -----------------------------------------------------------------------------


@admin.register(UpstreamServer)
class UpstreamServerAdmin(ConsoleModelAdmin):
    form = UpstreamServerForm
    list_display = (
        "address",
        "name",
        "enabled",
        "weight",
        "max_concurrent",
        "source_shown",
        "health",
        "served_models",
    )
    list_display_links = ("address",)
    list_filter = ("enabled", "source", "healthy")
    search_fields = ("url", "name")
    actions = ("enable_upstreams", "disable_upstreams", "check_health_now", "follow_config_again")
    readonly_fields = (
        "source_shown",
        "api_key_state",
        "health",
        "last_check",
        "last_error",
        "served_models",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("url", "name", "enabled", "position", "source_shown")}),
        ("Load", {"fields": ("weight", "max_concurrent")}),
        (
            "API key",
            {
                "fields": ("api_key_state", "new_api_key", "clear_api_key"),
                "description": "The key Kodify sends to this upstream (vLLM's --api-key).",
            },
        ),
        ("Autocompletion", {"fields": ("preprocessing", "priority_scheduling")}),
        (
            "Health (written by the health checks)",
            {"fields": ("health", "last_check", "last_error", "served_models")},
        ),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="URL", ordering="url")
    def address(self, upstream: UpstreamServer) -> str:
        return without_credentials(upstream.url)

    @admin.display(description="source", ordering="source")
    def source_shown(self, upstream: UpstreamServer) -> SafeString:
        return source_badge(upstream.source)

    @admin.display(description="health", ordering="healthy")
    def health(self, upstream: UpstreamServer) -> SafeString:
        return health_badge(upstream)

    @admin.display(description="models served")
    def served_models(self, upstream: UpstreamServer) -> SafeString:
        return model_cards(upstream)

    @admin.display(description="API key")
    def api_key_state(self, upstream: UpstreamServer) -> str:
        if upstream.api_key:
            return "set (its own key)"
        return "not set (the default key is sent)"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {
            **(extra_context or {}),
            "source_rule": SOURCE_RULE,
            "schedule": selectors.health_schedule(),
            "can_check": self.has_change_permission(request),
        }
        return super().changelist_view(request, extra)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "source_rule": SOURCE_RULE}
        return super().change_view(request, object_id, form_url, extra)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "source_rule": SOURCE_RULE}
        return super().add_view(request, form_url, extra)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        # A new upstream goes last: first places decide the default model.
        return {
            "position": selectors.next_position(),
            **super().get_changeform_initial_data(request),
        }

    @method_decorator(sensitive_post_parameters("new_api_key"))
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)

    # -- writes, all through gateway.services -------------------------------------------

    def save_model(
        self, request: HttpRequest, obj: UpstreamServer, form: ModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        if data.get("clear_api_key"):
            obj.api_key = ""
        elif data.get("new_api_key"):
            obj.api_key = data["new_api_key"]
        changed = {
            "api_key" if name in ("new_api_key", "clear_api_key") else name
            for name in form.changed_data
        }
        if change and not changed:
            return  # an unchanged form hands nothing to the console
        services.save_upstream(upstream=obj, changed=sorted(changed), actor=request.user)

    def delete_model(self, request: HttpRequest, obj: UpstreamServer) -> None:
        services.delete_upstreams(upstreams=[obj], actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[UpstreamServer]) -> None:
        services.delete_upstreams(upstreams=list(queryset), actor=request.user)

    @admin.action(description="Enable selected upstreams", permissions=["change"])
    def enable_upstreams(self, request: HttpRequest, queryset: QuerySet[UpstreamServer]) -> None:
        admin_actions.set_enabled(request, queryset, enabled=True)

    @admin.action(description="Disable selected upstreams", permissions=["change"])
    def disable_upstreams(self, request: HttpRequest, queryset: QuerySet[UpstreamServer]) -> None:
        admin_actions.set_enabled(request, queryset, enabled=False)

    @admin.action(description="Check health of selected upstreams now", permissions=["change"])
    def check_health_now(self, request: HttpRequest, queryset: QuerySet[UpstreamServer]) -> None:
        admin_actions.run_health_check(
            request, upstream_ids=list(queryset.values_list("pk", flat=True))
        )

    @admin.action(description="Follow config.yml again", permissions=["change"])
    def follow_config_again(self, request: HttpRequest, queryset: QuerySet[UpstreamServer]) -> None:
        admin_actions.follow_config_again(request, queryset)

    # -- "Check health now" for every upstream --------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        check = path(
            "check-health/",
            self.admin_site.admin_view(self.check_health_view),
            name="gateway_upstreamserver_check_health",
        )
        return [check, *super().get_urls()]

    def check_health_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or not self.has_change_permission(request):
            raise PermissionDenied
        admin_actions.run_health_check(request, upstream_ids=None)
        return HttpResponseRedirect(reverse("admin:gateway_upstreamserver_changelist"))


# -- served models -------------------------------------------------------------------------


@admin.register(ServedModel)
class ServedModelAdmin(ConsoleModelAdmin):
    form = ServedModelForm
    list_display = (
        "name",
        "preprocessing_shown",
        "affinity_shown",
        "served_by",
        "max_model_len",
        "last_seen",
    )
    search_fields = ("name",)
    fields = (
        "name",
        "preprocessing",
        "prefix_affinity",
        "served_by",
        "max_model_len",
        "first_seen",
        "last_seen",
    )
    readonly_fields = ("name", "served_by", "max_model_len", "first_seen", "last_seen")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the health checks add every model an upstream reports

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        serving = selectors.serving_upstreams()  # one query for the whole page
        for model in changelist.result_list:
            setattr(model, SERVING_ATTRIBUTE, serving.get(model.name, []))
        return changelist

    def _serving(self, model: ServedModel) -> list[selectors.Serving]:
        found = getattr(model, SERVING_ATTRIBUTE, None)
        if found is None:  # the change page: one model
            found = selectors.serving_upstreams().get(model.name, [])
            setattr(model, SERVING_ATTRIBUTE, found)
        return list(found)

    @admin.display(description="preprocessing", ordering="preprocessing")
    def preprocessing_shown(self, model: ServedModel) -> str:
        if model.preprocessing:
            return model.preprocessing
        root = next((s.root for s in self._serving(model) if s.root), "")
        return f"automatic ({automatic_choice(model, root)})"

    @admin.display(description="prefix-cache affinity", ordering="prefix_affinity")
    def affinity_shown(self, model: ServedModel) -> str:
        if model.prefix_affinity:
            return model.get_prefix_affinity_display()
        default = "on" if settings.KODIFY_PREFIX_AFFINITY else "off"
        return f"as KODIFY_PREFIX_AFFINITY ({default})"

    @admin.display(description="served by")
    def served_by(self, model: ServedModel) -> SafeString:
        serving = self._serving(model)
        if not serving:
            return format_html("{}", "no upstream at its last check")
        return format_html_join(
            ", ",
            "{} ({})",
            (
                (s.upstream, "up" if s.healthy else "down" if s.healthy is False else "unchecked")
                for s in serving
            ),
        )

    @admin.display(description="max_model_len")
    def max_model_len(self, model: ServedModel) -> str:
        lengths = sorted({s.max_model_len for s in self._serving(model) if s.max_model_len})
        return " / ".join(str(n) for n in lengths) or "—"

    def save_model(
        self, request: HttpRequest, obj: ServedModel, form: ModelForm, change: bool
    ) -> None:
        current = ServedModel.objects.get(pk=obj.pk)
        services.set_model_preprocessing(
            model=current, preprocessing=form.cleaned_data["preprocessing"], actor=request.user
        )
        services.set_model_affinity(
            model=current, prefix_affinity=form.cleaned_data["prefix_affinity"], actor=request.user
        )

    def delete_model(self, request: HttpRequest, obj: ServedModel) -> None:
        services.delete_models(models=[obj], actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ServedModel]) -> None:
        services.delete_models(models=list(queryset), actor=request.user)


# -- gateway settings (one row) ----------------------------------------------------------


@admin.register(GatewaySetting)
class GatewaySettingAdmin(ConsoleModelAdmin):
    form = GatewaySettingForm
    fields = ("effective", "max_n", "default_max_tokens", "tabby_model_name")
    readonly_fields = ("effective",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> GatewaySetting | None:
        if str(object_id) != str(SETTING_PK):
            return None
        return selectors.gateway_setting()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return HttpResponseRedirect(
            reverse("admin:gateway_gatewaysetting_change", args=[SETTING_PK])
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = {
            **(extra_context or {}),
            "can_run_migrations": self.has_change_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra)

    @admin.display(description="in force now")
    def effective(self, setting: GatewaySetting) -> SafeString:
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td><strong>{}</strong></td><td>{}</td></tr>",
            ((e.label, e.value, e.source) for e in selectors.effective_settings(setting)),
        )
        return format_html(
            '<table id="effective-settings"><thead><tr><th>setting</th><th>value</th>'
            "<th>comes from</th></tr></thead><tbody>{}</tbody></table>"
            "<p>An empty field below leaves the value to the environment or config.yml; "
            "a value there overrides them for every server process within seconds.</p>",
            rows,
        )

    def save_model(
        self, request: HttpRequest, obj: GatewaySetting, form: ModelForm, change: bool
    ) -> None:
        values = {name: form.cleaned_data[name] for name in form.changed_data}
        services.update_gateway_setting(actor=request.user, **values)

    def response_change(self, request: HttpRequest, obj: GatewaySetting) -> HttpResponse:
        messages.success(request, "The gateway settings were saved.")
        return HttpResponseRedirect(request.path)

    # -- "Run migrations now" ------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        run = path(
            "run-migrations/",
            self.admin_site.admin_view(self.run_migrations_view),
            name="gateway_gatewaysetting_run_migrations",
        )
        return [run, *super().get_urls()]

    def run_migrations_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Run migrations now",
            "settings_url": reverse("admin:gateway_gatewaysetting_change", args=[SETTING_PK]),
            "eager": settings.CELERY_TASK_ALWAYS_EAGER,
        }
        if request.method == "POST":
            context.update(admin_actions.run_migrations_now(request))
        return TemplateResponse(
            request, "admin/gateway/gatewaysetting/run_migrations.html", context
        )
