"""The console's admin site: Kodify's name on every page and an overview for a home.

The home page answers what an administrator opens the console for first: is the API
protected, is the journal recording, are the model servers up, and what happened today.
"Connect your IDE" (``admin:connect``, :mod:`gateway.connect`) is a page of the site rather
than a plain view so that it gets the admin's login, staff check and frame for free.

The site is django-unfold's: its side bar, grouped by task, is built for each request by
:mod:`kodify_site.navigation` (settings ``UNFOLD``), and the home shows the same groups.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path
from unfold.sites import UnfoldAdminSite

from kodify_site.navigation import home_groups
from kodify_site.overview import overview


class KodifyAdminSite(UnfoldAdminSite):
    site_header = "Kodify"
    site_title = "Kodify console"
    index_title = "Overview"

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        home = {
            "overview": overview(request.user),
            "home_groups": home_groups(self.get_sidebar_list(request)),
        }
        return super().index(request, {**home, **(extra_context or {})})

    def get_urls(self) -> list[URLResolver | URLPattern]:
        # Imported here: this module is loaded with INSTALLED_APPS, before the models the
        # page reads are ready.
        from gateway.connect import connect_view

        return [
            path("connect/", self.admin_view(connect_view), name="connect"),
            *super().get_urls(),
        ]


class KodifyAdminConfig(AdminConfig):
    default_site = "kodify_site.admin_site.KodifyAdminSite"

    def ready(self) -> None:
        super().ready()  # loads every app's admin module
        from django.contrib import admin

        from kodify_site.admin_theme import on_the_console_theme

        on_the_console_theme(admin.site)
