"""``manage.py kodify_console_user create|list``: people who log in to the console.

Two roles: an *administrator* manages API users, tokens and model servers; an *auditor*
reads the journal, its dashboards and the audit trail, and changes nothing.  The role
brings the staff status the console's login requires.  The password is printed once
(stored hashed); ``manage.py changepassword NAME`` sets another.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import services
from accounts.management import table, validation_message, when


class Command(BaseCommand):
    help = "Create or list console accounts (administrators and auditors)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = actions.add_parser("create", help="create a console account")
        create.add_argument("username")
        create.add_argument(
            "--role",
            required=True,
            choices=sorted(services.CONSOLE_ROLES),
            help="administrator: manages users, tokens, model servers; auditor: reads only",
        )
        create.add_argument("--email", default="")
        actions.add_parser("list", help="list the console accounts and their roles")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "create":
            self.create(options["username"], options["role"], options["email"])
        else:
            self.list()

    def create(self, username: str, role: str, email: str) -> None:
        try:
            user, password = services.create_console_user(username=username, role=role, email=email)
        except ValidationError as exc:
            raise CommandError(f"Cannot create {username!r}: {validation_message(exc)}") from exc
        self.stdout.write(
            f"Created the {role} {user.get_username()!r}. Password (shown once): {password}\n"
            "Log in at /admin/; `manage.py changepassword "
            f"{user.get_username()}` sets another."
        )

    def list(self) -> None:
        users = get_user_model().objects.filter(is_staff=True).order_by("username")
        rows = [
            (
                user.get_username(),
                services.console_role(user),
                "active" if user.is_active else "disabled",
                when(user.last_login),
            )
            for user in users.prefetch_related("groups")
        ]
        if not rows:
            self.stdout.write("No console accounts yet: `make run` creates the first one.")
            return
        self.stdout.write(table(("USERNAME", "ROLE", "STATE", "LAST LOGIN"), rows))
