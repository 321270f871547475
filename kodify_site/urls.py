"""Django URLs: the console and the management API. The public /v1 API is in gateway.routing."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.api import not_found, router

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # Browsers ask for it on every page; the icon is an SVG among the static files.
    path("favicon.ico", RedirectView.as_view(url=static("kodify/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("journal/", include("journal.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include(router.urls)),
    path("api/<path:path>", not_found),
]
