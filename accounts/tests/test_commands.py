"""``manage.py kodify_user`` and ``manage.py kodify_token``."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts import services, tokens
from accounts.management.commands.kodify_token import parse_expiry
from accounts.models import ApiToken, ApiUser, AuditEvent

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, skip_checks=True)
    return out.getvalue(), err.getvalue()


def last_event() -> AuditEvent:
    event = AuditEvent.objects.order_by("-pk").first()
    assert event is not None
    return event


@pytest.fixture
def ada() -> ApiUser:
    return services.create_user(username="ada")


# --- kodify_user -------------------------------------------------------------------------


def test_user_create_with_every_option() -> None:
    out, _ = run(
        "kodify_user", "create", "grace", "--full-name", "Grace Hopper",
        "--email", "grace@example.com", "--comment", "compilers", "--rpm", "30",
        "--max-concurrent", "0", "--models", "coder-7b, chat-70b,,",
    )  # fmt: skip
    user = ApiUser.objects.get(username="grace")
    assert f"id {user.pk}" in out
    assert (user.full_name, user.email, user.comment) == (
        "Grace Hopper",
        "grace@example.com",
        "compilers",
    )
    assert (user.requests_per_minute, user.max_concurrent) == (30, 0)
    assert user.allowed_models == ["coder-7b", "chat-70b"] and user.is_active
    event = last_event()
    assert (event.action, event.actor, event.actor_name) == ("user.created", None, "command line")


def test_user_create_defaults_to_the_server_limits_and_all_models() -> None:
    run("kodify_user", "create", "bob")
    user = ApiUser.objects.get(username="bob")
    assert (user.requests_per_minute, user.max_concurrent, user.allowed_models) == (None, None, [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "ada"), "already exists"),
        (("create", "eve", "--email", "not-an-email"), "email"),
        (("create", "eve", "--rpm", "-1"), "--rpm"),
        (("create", "eve", "--max-concurrent", "many"), "--max-concurrent"),
        (("create", "x" * 151), "username"),
        (("create",), "username"),
        (("rename", "ada"), "invalid choice"),
    ],
)
def test_user_create_errors(ada: ApiUser, args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("kodify_user", *args)
    assert list(ApiUser.objects.values_list("username", flat=True)) == ["ada"]


def test_user_disable_and_enable(ada: ApiUser) -> None:
    out, _ = run("kodify_user", "disable", "ada")
    assert "Disabled 'ada'" in out
    ada.refresh_from_db()
    assert not ada.is_active
    assert (last_event().action, last_event().actor_name) == ("user.disabled", "command line")

    before = AuditEvent.objects.count()
    out, _ = run("kodify_user", "disable", "ada")
    assert "already disabled" in out and AuditEvent.objects.count() == before

    out, _ = run("kodify_user", "enable", "ada")
    ada.refresh_from_db()
    assert ada.is_active and "Enabled 'ada'" in out
    assert last_event().action == "user.enabled"


@pytest.mark.parametrize("action", ["disable", "enable"])
def test_user_disable_and_enable_unknown_user(action: str) -> None:
    with pytest.raises(CommandError, match="No API user named 'ghost'"):
        run("kodify_user", action, "ghost")


def test_user_list(ada: ApiUser) -> None:
    bob = services.create_user(username="bob", requests_per_minute=5, allowed_models=["m1", "m2"])
    services.set_user_active(user=bob, active=False)
    services.issue_token(user=ada, name="kept")
    gone, _ = services.issue_token(user=ada, name="gone")
    services.revoke_token(token=gone)
    out, _ = run("kodify_user", "list")
    header, ada_row, bob_row = out.splitlines()
    assert header.split()[:2] == ["USERNAME", "STATE"]
    assert ada_row.split()[:2] == ["ada", "active"] and " all " in ada_row
    assert bob_row.split()[:3] == ["bob", "disabled", "5"] and "m1,m2" in bob_row
    # Valid tokens: ada has one left after the revocation, bob none.
    valid_column = header.index("VALID TOKENS")
    assert ada_row[valid_column:].split()[0] == "1"
    assert bob_row[valid_column:].split()[0] == "0"


def test_user_list_when_empty() -> None:
    assert "No API users yet" in run("kodify_user", "list")[0]


# --- kodify_token issue ------------------------------------------------------------------


def test_token_issue_prints_only_the_token_on_stdout(ada: ApiUser) -> None:
    out, err = run("kodify_token", "issue", "ada", "--name", "laptop", "--comment", "VS Code")
    plain = out.strip()
    assert out == plain + "\n"  # alone on its line: TOKEN=$(manage.py kodify_token issue …)
    token = ApiToken.objects.get()
    assert plain.startswith(token.prefix) and len(plain) == tokens.TOKEN_LENGTH
    assert tokens.matches(services.token_hash_key(), plain.encode(), token.digest)
    assert (token.name, token.comment, token.expires_at, token.created_by) == (
        "laptop",
        "VS Code",
        None,
        None,
    )
    assert token.prefix in err and "only this once" in err and "never expires" in err
    assert plain not in err and token.digest not in out + err
    event = last_event()
    assert (event.action, event.actor_name) == ("token.issued", "command line")


def test_token_issue_with_an_expiry(ada: ApiUser) -> None:
    start = timezone.now()
    _, err = run("kodify_token", "issue", "ada", "--name", "ci", "--expires", "30d")
    token = ApiToken.objects.get()
    assert token.expires_at is not None
    assert start + timedelta(days=30) <= token.expires_at <= timezone.now() + timedelta(days=30)
    assert "expires" in err and "never" not in err


def test_token_issue_for_a_disabled_user_says_so(ada: ApiUser) -> None:
    services.set_user_active(user=ada, active=False)
    _, err = run("kodify_token", "issue", "ada", "--name", "ci")
    assert "the user is disabled" in err
    assert ApiToken.objects.get().state == "user disabled"


def test_token_issue_without_a_name_numbers_the_tokens(ada: ApiUser) -> None:
    # As the env files' comments show it: `manage.py kodify_token issue USER`.
    first, err = run("kodify_token", "issue", "ada")
    second, _ = run("kodify_token", "issue", "ada")
    assert first.strip() != second.strip()
    names = sorted(ApiToken.objects.filter(user=ada).values_list("name", flat=True))
    assert names == ["token-1", "token-2"]
    assert "'token-1' for 'ada'" in err


def test_a_numbered_name_comes_after_the_users_own_numbered_names(ada: ApiUser) -> None:
    bob = services.create_user(username="bob")
    services.issue_token(user=bob, name="token-9")  # another user's numbers do not count
    services.issue_token(user=ada, name="laptop")
    gone, _ = services.issue_token(user=ada, name="token-3")
    services.revoke_token(token=gone)  # a revoked token keeps its name
    services.issue_token(user=ada, name="token-x")
    run("kodify_token", "issue", "ada")
    newest = ApiToken.objects.filter(user=ada).order_by("-pk").first()
    assert newest is not None and newest.name == "token-4"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("issue", "ghost", "--name", "x"), "No API user named 'ghost'"),
        (("issue", "ghost"), "No API user named 'ghost'"),
        (("issue", "ada", "--name", "  "), "--name must not be empty"),
        (("issue", "ada", "--name", "x", "--expires", "2001-01-01"), "not in the future"),
        (("issue", "ada", "--name", "x", "--expires", "0d"), "not in the future"),
        (("issue", "ada", "--name", "x", "--expires", "soon"), "Cannot read --expires 'soon'"),
        (("issue", "ada", "--name", "x", "--expires", "2030-02-30"), "Cannot read --expires"),
        (("issue", "ada", "--name", "x", "--expires", "30y"), "Cannot read --expires"),
        (("issue", "ada", "--name", "x", "--expires", "9" * 12 + "w"), "too far"),
    ],
)
def test_token_issue_errors(ada: ApiUser, args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run("kodify_token", *args)
    assert not ApiToken.objects.exists()


NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", NOW + timedelta(days=30)),
        ("12h", NOW + timedelta(hours=12)),
        ("90m", NOW + timedelta(minutes=90)),
        ("2w", NOW + timedelta(weeks=2)),
        ("45s", NOW + timedelta(seconds=45)),
        (" 7D ", NOW + timedelta(days=7)),
        ("2030-03-01", datetime(2030, 3, 1, tzinfo=UTC)),
        ("2030-03-01T18:30", datetime(2030, 3, 1, 18, 30, tzinfo=UTC)),
        ("2030-03-01 18:30:00Z", datetime(2030, 3, 1, 18, 30, tzinfo=UTC)),
        ("2030-03-01T18:30:00+03:00", datetime(2030, 3, 1, 15, 30, tzinfo=UTC)),
    ],
)
def test_parse_expiry(text: str, expected: datetime) -> None:
    assert parse_expiry(text, NOW) == expected


# --- kodify_token revoke -----------------------------------------------------------------


@pytest.mark.parametrize("form", ["prefix", "id", "lookup", "whole", "prefix…"])
def test_token_revoke_by_prefix_id_or_whole_token(ada: ApiUser, form: str) -> None:
    token, plain = services.issue_token(user=ada, name="laptop")
    other, _ = services.issue_token(user=ada, name="other")
    reference = {
        "prefix": token.prefix,
        "id": str(token.pk),
        "lookup": token.prefix[len(tokens.SCHEME) :],
        "whole": plain,
        "prefix…": token.prefix + "…",
    }[form]
    out, _ = run("kodify_token", "revoke", reference)
    assert f"Revoked token {token.prefix}" in out and plain not in out
    token.refresh_from_db()
    other.refresh_from_db()
    assert token.state == "revoked" and other.state == "active"
    event = last_event()
    assert (event.action, event.actor_name, event.target_id) == (
        "token.revoked",
        "command line",
        str(token.pk),
    )


def test_token_revoke_twice_changes_nothing(ada: ApiUser) -> None:
    token, _ = services.issue_token(user=ada, name="laptop")
    run("kodify_token", "revoke", token.prefix)
    token.refresh_from_db()
    before = (token.revoked_at, AuditEvent.objects.count())
    out, _ = run("kodify_token", "revoke", token.prefix)
    token.refresh_from_db()
    assert "already revoked" in out
    assert (token.revoked_at, AuditEvent.objects.count()) == before


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("999999", "No token with id 999999"),
        ("kdf_nothing1", "No token with prefix 'kdf_nothing1'"),
        ("nothing1", "No token with prefix 'kdf_nothing1'"),
    ],
)
def test_token_revoke_unknown(ada: ApiUser, reference: str, message: str) -> None:
    services.issue_token(user=ada, name="laptop")
    with pytest.raises(CommandError, match=message):
        run("kodify_token", "revoke", reference)
    assert ApiToken.objects.get().state == "active"


def test_token_revoke_unknown_whole_token_is_not_echoed() -> None:
    made_up = tokens.generate(b"another key").plain
    with pytest.raises(CommandError) as failure:
        run("kodify_token", "revoke", made_up)
    assert made_up not in str(failure.value) and made_up[: tokens.PREFIX_LENGTH] in str(
        failure.value
    )


# --- kodify_token list -------------------------------------------------------------------


def test_token_list(ada: ApiUser) -> None:
    bob = services.create_user(username="bob")
    active, active_plain = services.issue_token(
        user=ada, name="laptop", expires_at=timezone.now() + timedelta(days=3)
    )
    revoked, _ = services.issue_token(user=ada, name="old")
    services.revoke_token(token=revoked)
    expired, _ = services.issue_token(user=bob, name="ci")
    # Expired by the passing of time (an expiry in the past can no longer be set).
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    services.record_token_use(uses=[(active.pk, timezone.now(), "vscode")])

    out, _ = run("kodify_token", "list")
    lines = out.splitlines()
    assert lines[0].split() == [
        "PREFIX", "USER", "NAME", "CREATED", "EXPIRES", "LAST", "USED", "STATE",
    ]  # fmt: skip
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {active.prefix, revoked.prefix, expired.prefix}
    assert rows[active.prefix].endswith("active") and " ada " in rows[active.prefix]
    assert rows[revoked.prefix].endswith("revoked")
    assert rows[expired.prefix].endswith("expired") and " bob " in rows[expired.prefix]
    assert rows[revoked.prefix].count(" - ") == 2  # no expiry, never used
    for token in (active, revoked, expired):
        assert token.digest not in out
    assert active_plain not in out

    mine, _ = run("kodify_token", "list", "bob")
    assert [line.split()[0] for line in mine.splitlines()[1:]] == [expired.prefix]


def test_token_list_empty_and_unknown_user(ada: ApiUser) -> None:
    assert run("kodify_token", "list", "ada")[0].strip() == "No tokens."
    with pytest.raises(CommandError, match="No API user named 'ghost'"):
        run("kodify_token", "list", "ghost")
