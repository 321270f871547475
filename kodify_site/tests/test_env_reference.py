"""The administrator's reference of environment variables (``manage.py kodify_env_reference``).

README.md carries the generated reference: the first tests fail as soon as the settings
declares, renames or re-documents a variable without ``make env-reference``.
"""

from __future__ import annotations

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from kodify_site.env import Env
from kodify_site.management.commands.kodify_env_reference import (
    END_MARKER,
    SECTION_TITLE,
    START_MARKER,
    render_reference,
)
from kodify_site.testing import REPO, server_environment

pytestmark = pytest.mark.smoke

README = REPO / "README.md"


def readme_block() -> str:
    text = README.read_text(encoding="utf-8")
    assert START_MARKER in text, f"README.md has no {START_MARKER} line"
    return text.split(START_MARKER, 1)[1].split(END_MARKER, 1)[0]


def reference(*arguments: str) -> str:
    out = StringIO()
    call_command("kodify_env_reference", *arguments, stdout=out)
    return out.getvalue()


def test_readme_reference_is_up_to_date() -> None:
    # On failure: run `make env-reference` and commit README.md.
    call_command("kodify_env_reference", "--check", str(README), stdout=StringIO())


def test_every_declared_variable_is_in_the_readme() -> None:
    block = readme_block()
    assert settings.ENV_VARIABLES, "settings declare no variable"
    for name in settings.ENV_VARIABLES:
        assert f"| `{name}` |" in block, f"{name} is missing from README.md"


def test_groups_and_rows_follow_declaration_order() -> None:
    text = reference()
    groups = list(dict.fromkeys(v.group for v in settings.ENV_VARIABLES.values()))
    positions = [text.index(f"\n### {group}\n") for group in groups]
    assert positions == sorted(positions)
    rows = [text.index(f"| `{name}` |") for name in settings.ENV_VARIABLES]
    assert rows == sorted(rows)


def make_env() -> Env:
    # Values that must never reach the reference, whatever the environment holds.
    env = Env(
        environ={
            "API_KEY": "env-secret-value",
            "DB": "postgresql://u:env-password@db/x",
            "WHERE": "/srv/machine/specific",
            "PORT": "1234",
        }
    )
    env.group = "First group"
    env.str("API_KEY", "declared-secret-default", secret=True, help="The key.")
    env.url("DB", "postgresql://u:declared-password@db/x", secret=True, help="The DB.")
    env.path("WHERE", "data", base=Path("/machine/base"), help="A folder.")
    env.group = "Second | group"
    env.int(
        "PORT",
        5432,
        aliases=("OLD_PORT",),
        help="A port\nwith | a pipe.",
        example="6543",
    )
    env.list("HOSTS", help="Hosts.")
    env.str("SIZE", None, help="A size.", example="(about 50 characters)")
    return env


def test_rendering_of_kinds_defaults_examples_and_aliases() -> None:
    text = render_reference(make_env().variables.values())
    assert text.index("### First group") < text.index("### Second \\| group")
    assert "| Variable | Default | Meaning | Example |" in text
    assert (
        "| `PORT` | `5432` | *integer* — A port with \\| a pipe. Also read as `OLD_PORT` "
        "(old spelling, accepted with a warning). | `6543` |"
    ) in text
    assert "| `WHERE` | `data` | *path* — A folder. | `data` |" in text
    assert "| `HOSTS` | unset | *comma-separated list* — Hosts. |  |" in text
    # A description of an example is prose, not a literal to type.
    assert "| (about 50 characters) |" in text
    assert "| `API_KEY` | (secret, not shown) | *secret* — The key." in text
    assert "| `DB` | (secret, not shown) | *URL (secret)* — The DB." in text


def test_rendering_never_shows_secret_defaults_or_the_environment() -> None:
    text = render_reference(make_env().variables.values())
    for leak in (
        "declared-secret-default",
        "declared-password",
        "env-secret-value",
        "env-password",
        "/srv/machine",
        "/machine/base",
        "1234",
    ):
        assert leak not in text


def test_rendering_says_which_switch_a_variable_needs() -> None:
    env = Env(environ={})
    with env.only_when("FEATURE", False):
        env.int("PORT", 5432, help="A port.")
    env.int("OTHER", 1, help="Another.")
    text = render_reference(env.variables.values())
    assert "| `PORT` | `5432` | *integer* — A port. Only read when FEATURE is on. |" in text
    assert "| `OTHER` | `1` | *integer* — Another. |" in text


def test_reference_does_not_depend_on_the_environment(tmp_path: Path) -> None:
    """Two different environments, one reference: the declarations alone decide it."""
    plain = server_environment(tmp_path / "plain", {})
    busy = server_environment(
        tmp_path / "busy",
        {
            "KODIFY_DATA_DIR": str(tmp_path / "elsewhere"),
            "KODIFY_SECRET_KEY": "busy-secret-" + "s" * 40,
            "MTSAI_AUTH": "true",
            "AUTH_TYPE": "DB",
            "VLLM_API_KEY": "busy-api-key",
            "DB_URL": "postgresql://kodify:busy-password@db:5432/kodify",
            "REDIS_URL": "redis://redis:6379/0",
            "MAX_N": "not a number",  # a broken environment must not stop the doc
            "WAIT_VLLM": "true",
            "LOGS": "True",
        },
    )
    outputs = []
    for environment, folder in ((plain, tmp_path), (busy, tmp_path / "busy")):
        folder.mkdir(exist_ok=True)
        result = subprocess.run(
            [sys.executable, str(REPO / "manage.py"), "kodify_env_reference"],
            cwd=folder,
            env=environment,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0] == reference()
    for leak in ("busy-secret", "busy-api-key", "busy-password", str(tmp_path), str(REPO)):
        assert leak not in outputs[1]


# -- --write and --check on a file of our own -------------------------------------------

OLD_README = "# Title\n\nSome text.\n\n## Later section\n\nMore text.\n"


def test_write_appends_the_section_when_markers_are_missing(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(OLD_README)
    reference("--write", str(readme))
    text = readme.read_text()
    assert text.startswith(OLD_README)
    added = text[len(OLD_README) :]
    assert added == f"\n{SECTION_TITLE}\n\n{START_MARKER}\n{reference()}{END_MARKER}\n"


def test_write_adds_a_missing_final_newline_only(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Title")
    reference("--write", str(readme))
    assert readme.read_text().startswith(f"# Title\n\n{SECTION_TITLE}\n")


def test_write_replaces_only_the_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    before = f"# Title\n\n{SECTION_TITLE}\n\n{START_MARKER}\nstale table\n{END_MARKER}\n"
    after = "\n## Afterwards\n\nKept as is.\n"
    readme.write_text(before + after)
    reference("--write", str(readme))
    text = readme.read_text()
    assert text == (
        f"# Title\n\n{SECTION_TITLE}\n\n{START_MARKER}\n{reference()}{END_MARKER}\n" + after
    )
    assert "stale table" not in text


def test_write_is_idempotent(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(OLD_README)
    reference("--write", str(readme))
    once = readme.read_text()
    assert "already up to date" in reference("--write", str(readme))
    assert readme.read_text() == once


def test_check_passes_on_a_fresh_block_and_fails_on_a_stale_one(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(OLD_README)
    reference("--write", str(readme))
    reference("--check", str(readme))

    readme.write_text(readme.read_text().replace("| `MAX_N` |", "| `MAX_M` |"))
    with pytest.raises(CommandError) as error:
        reference("--check", str(readme))
    assert str(error.value) == (
        f"{readme}: the environment-variable reference is out of date; run "
        f"`make env-reference` (manage.py kodify_env_reference --write {readme})."
    )


def test_check_fails_without_markers_and_leaves_the_file_alone(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(OLD_README)
    with pytest.raises(CommandError, match="out of date"):
        reference("--check", str(readme))
    assert readme.read_text() == OLD_README


def test_check_of_a_missing_file_fails(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file"):
        reference("--check", str(tmp_path / "README.md"))


def test_check_exits_non_zero_from_the_command_line(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(OLD_README)
    result = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "kodify_env_reference", "--check", str(readme)],
        cwd=tmp_path,
        env=server_environment(tmp_path, {}),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode != 0
    assert "environment-variable reference is out of date" in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        f"{START_MARKER}\nno end\n",
        f"{END_MARKER}\n{START_MARKER}\n",
        f"{START_MARKER}\n{END_MARKER}\n{START_MARKER}\n{END_MARKER}\n",
    ],
)
def test_broken_markers_are_refused_untouched(tmp_path: Path, text: str) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(CommandError, match="expected one line"):
        reference("--write", str(readme))
    assert readme.read_text() == text


def test_write_and_check_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(CommandError):
        reference("--write", str(tmp_path / "a.md"), "--check", str(tmp_path / "b.md"))
