from django.apps import AppConfig


class JournalConfig(AppConfig):
    """The request journal: one row per API request."""

    name = "journal"
    default_auto_field = "django.db.models.BigAutoField"
