from django.apps import AppConfig


class GatewayConfig(AppConfig):
    """The public API: upstreams, routing, the streaming proxy, health."""

    name = "gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from gateway import checks  # noqa: F401 - registers the system checks
