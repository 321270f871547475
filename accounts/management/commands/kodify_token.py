"""``manage.py kodify_token issue|revoke|list``: API tokens for automation.

``issue`` prints the token alone on standard output, so ``TOKEN=$(manage.py kodify_token
issue alice --name ci)`` captures it; what people need to know goes to standard error.
The token is shown this once: the database keeps only its prefix and a keyed hash.
Without ``--name`` the token is named ``token-<n>``, the user's next such number.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from accounts import selectors, services, tokens
from accounts.management import table, when
from accounts.management.commands.kodify_user import find_user
from accounts.models import ApiToken

_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
EXPIRES_HELP = (
    "YYYY-MM-DD (the start of that day, server time), an ISO date and time "
    "(2030-01-31T18:00:00+03:00), or a duration from now: 30d, 12h, 2w, 90m"
)


def parse_expiry(text: str, now: datetime) -> datetime:
    """When a token given ``--expires TEXT`` at ``now`` expires; CommandError if unreadable."""
    text = text.strip()
    duration = _DURATION.match(text.lower())
    if duration:
        try:
            return now + timedelta(**{_UNITS[duration[2]]: int(duration[1])})
        except OverflowError:
            raise CommandError(f"--expires {text!r} is too far away.") from None
    try:
        day = parse_date(text)
        if day is not None:
            return timezone.make_aware(datetime.combine(day, time.min))
        moment = parse_datetime(text)
    except (ValueError, OverflowError):  # well formed but impossible, e.g. 2030-02-30
        moment = None
    if moment is None:
        raise CommandError(f"Cannot read --expires {text!r}: use {EXPIRES_HELP}.")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def find_token(reference: str) -> ApiToken:
    """A token by database id, by prefix (``kdf_AbCd1234``, ``AbCd1234``) or whole token."""
    reference = reference.strip().rstrip("…")
    if reference.isdigit():
        token = ApiToken.objects.select_related("user").filter(pk=int(reference)).first()
        shown = f"id {reference}"
    else:
        prefix = reference if reference.startswith(tokens.SCHEME) else tokens.SCHEME + reference
        # A whole token pasted: only its prefix is looked up, or echoed in an error.
        prefix = prefix[: tokens.PREFIX_LENGTH]
        token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
        shown = f"prefix {prefix!r}"
    if token is None:
        raise CommandError(f"No token with {shown} (`manage.py kodify_token list` shows them).")
    return token


class Command(BaseCommand):
    help = "Issue, revoke or list API tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        issue = actions.add_parser("issue", help="issue a token and print it (shown only once)")
        issue.add_argument("username")
        issue.add_argument(
            "--name",
            help="where it is used, e.g. 'laptop VS Code' (default: token-<n>, the user's "
            "next such number)",
        )
        issue.add_argument("--comment", default="")
        issue.add_argument("--expires", help=f"expiry: {EXPIRES_HELP} (default: never)")

        revoke = actions.add_parser("revoke", help="revoke a token at once")
        revoke.add_argument("token", metavar="PREFIX_OR_ID")

        listing = actions.add_parser("list", help="list tokens (never the tokens themselves)")
        listing.add_argument("username", nargs="?", help="only this user's tokens")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "issue":
            self.issue(options)
        elif action == "revoke":
            self.revoke(options["token"])
        else:
            self.list(options["username"])

    def issue(self, options: dict[str, Any]) -> None:
        user = find_user(options["username"])
        if options["name"] is None:
            name = selectors.next_token_name(user)
        else:
            name = options["name"].strip()
            if not name:
                raise CommandError(
                    "--name must not be empty: say where the token is used, or leave --name "
                    "out for a numbered name."
                )
        now = timezone.now()
        expires_at = parse_expiry(options["expires"], now) if options["expires"] else None
        if expires_at is not None and expires_at <= now:
            raise CommandError(f"--expires {options['expires']!r} is not in the future.")
        try:
            token, plain = services.issue_token(
                user=user,
                name=name,
                comment=options["comment"],
                expires_at=expires_at,
                actor=None,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        expiry = f"expires {when(expires_at)} {timezone.get_current_timezone_name()}"
        self.stderr.write(
            f"Issued token {token.prefix}… {name!r} for {user.username!r} "
            f"({expiry if expires_at else 'never expires'}"
            f"{'; the user is disabled' if not user.is_active else ''}). "
            "It is shown only this once:",
            style_func=str,  # a notice, not an error: no red
        )
        self.stdout.write(plain)

    def revoke(self, reference: str) -> None:
        token = find_token(reference)
        if token.revoked_at is not None:
            self.stdout.write(
                f"Token {token.prefix}… was already revoked ({when(token.revoked_at)})."
            )
            return
        services.revoke_token(token=token, actor=None)
        self.stdout.write(
            f"Revoked token {token.prefix}… {token.name!r} of {token.user.username!r}."
        )

    def list(self, username: str | None) -> None:
        queryset = ApiToken.objects.select_related("user").order_by("user__username", "-created_at")
        if username is not None:
            queryset = queryset.filter(user=find_user(username))
        rows = [
            (
                token.prefix,
                token.user.username,
                token.name,
                when(token.created_at),
                when(token.expires_at),
                when(token.last_used_at),
                token.state,
            )
            for token in queryset
        ]
        if not rows:
            self.stdout.write("No tokens.")
            return
        headers = ("PREFIX", "USER", "NAME", "CREATED", "EXPIRES", "LAST USED", "STATE")
        self.stdout.write(table(headers, rows))
