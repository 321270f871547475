"""``manage.py kodify_bootstrap_admin``: the first administrator of a fresh database."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

URL = "http://kodify.example:8080/admin/"


def bootstrap(*arguments: str) -> str:
    out = StringIO()
    call_command("kodify_bootstrap_admin", *arguments, stdout=out)
    return out.getvalue()


def printed_password(output: str) -> str:
    match = re.search(r"^\s*password:\s*(\S+)\s*$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def test_creates_admin_with_a_random_password_when_there_is_no_superuser() -> None:
    output = bootstrap("--url", URL)

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser
    assert admin.is_staff
    assert admin.is_active
    password = printed_password(output)
    assert len(password) >= 20
    assert admin.check_password(password)
    assert URL in output
    assert re.search(r"^\s*login:\s*admin\s*$", output, re.MULTILINE), output
    assert "manage.py changepassword admin" in output


def test_passwords_differ_between_databases() -> None:
    first = printed_password(bootstrap())
    get_user_model().objects.all().delete()
    second = printed_password(bootstrap())
    assert first != second


def test_default_url_is_the_local_console() -> None:
    assert "http://127.0.0.1:8000/admin/" in bootstrap()


def test_existing_superuser_gets_only_directions() -> None:
    user_model = get_user_model()
    user_model.objects.create_superuser("admin", "", "the-old-password")

    output = bootstrap("--url", URL)

    assert URL in output
    assert "manage.py changepassword admin" in output
    assert "password:" not in output
    assert user_model.objects.count() == 1
    assert user_model.objects.get(username="admin").check_password("the-old-password")


def test_password_is_printed_only_once() -> None:
    first = bootstrap("--url", URL)
    password = printed_password(first)
    second = bootstrap("--url", URL)
    assert password not in second
    assert "password:" not in second
    assert URL in second
    assert get_user_model().objects.get(username="admin").check_password(password)


def test_another_superuser_is_named_in_the_reset_command() -> None:
    user_model = get_user_model()
    user_model.objects.create_superuser("root", "", "root-password")

    output = bootstrap("--url", URL)

    assert "manage.py changepassword root" in output
    assert not user_model.objects.filter(username="admin").exists()


def test_plain_user_named_admin_is_left_alone() -> None:
    user_model = get_user_model()
    user_model.objects.create_user("admin", "", "a-user-password")

    with pytest.raises(CommandError, match="'admin' exists but is not one"):
        bootstrap()

    admin = user_model.objects.get(username="admin")
    assert not admin.is_superuser
    assert admin.check_password("a-user-password")
