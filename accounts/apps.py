from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """API users, roles and tokens, and who is calling the gateway."""

    name = "accounts"
    verbose_name = "Accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import auth, checks, selectors, services  # noqa: F401 - checks register

        # Authentication reads and notes tokens through these, so that it imports no ORM
        # module itself.
        auth.use_token_store(
            auth.TokenStore(
                lookup=selectors.token_record,
                record_uses=lambda uses: services.record_token_use(uses=uses),
            )
        )
