"""The journal's console pages, under /journal/ (see kodify_site/urls.py)."""

from django.urls import path

from journal import views

app_name = "journal"

urlpatterns = [
    path("", views.entry_list, name="list"),
    path("export.csv", views.entry_export, name="export"),
    path("live/", views.live, name="live"),
    path("dashboard/", views.dashboard, name="dashboard"),
    # Last: a request id could otherwise be read as one of the names above.
    path("<str:request_id>/", views.entry_detail, name="detail"),
]
