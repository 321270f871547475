from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """API users, roles and tokens, and who is calling the gateway."""

    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import checks  # noqa: F401 - registers the system checks
