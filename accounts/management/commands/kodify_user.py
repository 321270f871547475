"""``manage.py kodify_user create|disable|enable|list``: API users for automation.

Changes go through :mod:`accounts.services`, so each leaves an audit event (its actor is
"command line").
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, Q
from django.utils import timezone

from accounts import services
from accounts.management import table, validation_message, when
from accounts.models import ApiUser


def non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 0, got {text!r}")
    return value


def model_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def find_user(username: str) -> ApiUser:
    try:
        return ApiUser.objects.get(username=username)
    except ApiUser.DoesNotExist:
        raise CommandError(
            f"No API user named {username!r} (`manage.py kodify_user list` shows them)."
        ) from None


class Command(BaseCommand):
    help = "Create, disable, enable or list API users (the people behind IDE plugins)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        create = actions.add_parser("create", help="create an API user")
        create.add_argument("username")
        create.add_argument("--full-name", default="")
        create.add_argument("--email", default="")
        create.add_argument("--comment", default="")
        create.add_argument(
            "--rpm",
            type=non_negative,
            help="requests per minute (default: the server's KODIFY_RATE_LIMIT_PER_MINUTE)",
        )
        create.add_argument(
            "--max-concurrent",
            type=non_negative,
            help="requests in flight at once (default: the server's KODIFY_MAX_CONCURRENT)",
        )
        create.add_argument(
            "--models",
            type=model_list,
            default=[],
            help="comma-separated model names the user may call (default: all)",
        )

        for name, what in (("disable", "refuse the user's tokens"), ("enable", "accept them")):
            sub = actions.add_parser(name, help=what)
            sub.add_argument("username")

        actions.add_parser("list", help="list the API users")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            self.create(options)
        elif action in ("disable", "enable"):
            self.set_active(options["username"], active=action == "enable")
        else:
            self.list()

    def create(self, options: dict[str, Any]) -> None:
        username = options["username"]
        if ApiUser.objects.filter(username=username).exists():
            raise CommandError(f"The API user {username!r} already exists.")
        try:
            user = services.create_user(
                username=username,
                actor=None,
                full_name=options["full_name"],
                email=options["email"],
                comment=options["comment"],
                requests_per_minute=options["rpm"],
                max_concurrent=options["max_concurrent"],
                allowed_models=options["models"],
            )
        except ValidationError as exc:
            raise CommandError(f"Cannot create {username!r}: {validation_message(exc)}") from exc
        self.stdout.write(f"Created the API user {user.username!r} (id {user.pk}).")

    def set_active(self, username: str, *, active: bool) -> None:
        user = find_user(username)
        state = "enabled" if active else "disabled"
        if user.is_active == active:
            self.stdout.write(f"{user.username!r} is already {state}.")
            return
        services.set_user_active(user=user, active=active, actor=None)
        self.stdout.write(f"{state.capitalize()} {user.username!r}.")

    def list(self) -> None:
        now = timezone.now()
        valid = Q(tokens__revoked_at__isnull=True) & (
            Q(tokens__expires_at__isnull=True) | Q(tokens__expires_at__gt=now)
        )
        users = ApiUser.objects.annotate(valid_tokens=Count("tokens", filter=valid))
        rows = [
            (
                user.username,
                "active" if user.is_active else "disabled",
                user.full_name,
                user.email,
                "default" if user.requests_per_minute is None else str(user.requests_per_minute),
                "default" if user.max_concurrent is None else str(user.max_concurrent),
                ",".join(user.allowed_models) or "all",
                str(user.valid_tokens),
                when(user.created_at),
            )
            for user in users.order_by("username")
        ]
        if not rows:
            self.stdout.write("No API users yet: `manage.py kodify_user create NAME` adds one.")
            return
        headers = (
            "USERNAME", "STATE", "FULL NAME", "EMAIL", "RPM", "CONCURRENT", "MODELS",
            "VALID TOKENS", "CREATED",
        )  # fmt: skip
        self.stdout.write(table(headers, rows))
