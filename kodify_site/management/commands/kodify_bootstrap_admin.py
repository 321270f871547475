"""``manage.py kodify_bootstrap_admin``: the first administrator, without a prompt.

``make run`` calls it after migrating.  On a database without a superuser it creates
``admin`` with a random password and prints the login once (the password is stored
hashed, so it cannot be shown again); afterwards it only says where to log in and how to
reset a forgotten password.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, IntegrityError, transaction

USERNAME = "admin"
DEFAULT_URL = "http://127.0.0.1:8000/admin/"


class Command(BaseCommand):
    help = (
        "Create the superuser 'admin' with a random password when there is no superuser "
        "yet, and print how to log in to the console."
    )

    # `make run` has just run them through kodify_migrate: don't repeat the warnings.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--url",
            default=DEFAULT_URL,
            help=f"address of the console to print (default {DEFAULT_URL})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        url: str = options["url"]
        user_model = get_user_model()
        try:
            existing = user_model.objects.filter(is_superuser=True).order_by("pk").first()
            if existing is None:
                password = self.create_admin()
                if password is not None:
                    self.print_new_login(url, password)
                    return
                existing = user_model.objects.filter(is_superuser=True).order_by("pk").first()
        except DatabaseError as exc:
            raise CommandError(
                f"Cannot read the users ({exc}). Run `manage.py kodify_migrate` first."
            ) from exc
        username = existing.get_username() if existing is not None else USERNAME
        self.stdout.write(
            f"Kodify console: {url}\nForgot the password? Run: manage.py changepassword {username}"
        )

    def create_admin(self) -> str | None:
        """The new admin's password; ``None`` when another process created one first."""
        user_model = get_user_model()
        taken = user_model.objects.filter(**{user_model.USERNAME_FIELD: USERNAME}).first()
        if taken is not None and not taken.is_superuser:
            raise CommandError(
                f"Kodify has no administrator, and the user '{USERNAME}' exists but is not "
                "one: run `manage.py createsuperuser` to create an administrator."
            )
        if taken is not None:
            return None
        password = secrets.token_urlsafe(18)
        try:
            # Replicas started together race here; the loser sees the winner's admin.
            with transaction.atomic():
                user_model.objects.create_superuser(
                    **{user_model.USERNAME_FIELD: USERNAME}, email="", password=password
                )
        except IntegrityError:
            return None
        return password

    def print_new_login(self, url: str, password: str) -> None:
        self.stdout.write(
            "Created the Kodify administrator (shown only this once, keep it safe):\n"
            f"  console:  {url}\n"
            f"  login:    {USERNAME}\n"
            f"  password: {password}\n"
            f"Change it in the console, or run: manage.py changepassword {USERNAME}"
        )
