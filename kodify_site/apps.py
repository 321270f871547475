from django.apps import AppConfig


class KodifySiteConfig(AppConfig):
    """The project itself as an app: its checks, operations commands and tasks."""

    name = "kodify_site"
    verbose_name = "Kodify"

    def ready(self) -> None:
        from kodify_site import checks  # noqa: F401 - registers the system checks
