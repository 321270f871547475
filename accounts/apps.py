from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """API users, roles and tokens, and who is calling the gateway."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
