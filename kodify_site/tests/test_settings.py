"""The environment readers, and what an administrator sees when the environment is wrong.

The first half tests :class:`kodify_site.env.Env` directly.  The second half runs
``manage.py check`` (and a real server) in a subprocess with a scrubbed environment, as an
administrator would, and asserts the one-line message that stops the start.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from kodify_site.env import FALSE_WORDS, TRUE_WORDS, Env, Variable
from kodify_site.testing import REPO, KodifyServer, server_environment

HELP = "what it means"


def env_of(**values: str) -> Env:
    return Env(environ=values)


# -- booleans ----------------------------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.parametrize("word", sorted(TRUE_WORDS))
def test_bool_true_words(word: str) -> None:
    for spelling in (word, word.upper(), f"  {word} "):
        env = env_of(FLAG=spelling)
        assert env.bool("FLAG", False, help=HELP) is True
        assert env.problems == []


@pytest.mark.smoke
@pytest.mark.parametrize("word", sorted(FALSE_WORDS - {""}))
def test_bool_false_words(word: str) -> None:
    env = env_of(FLAG=word.capitalize())
    assert env.bool("FLAG", True, help=HELP) is False
    assert env.problems == []


@pytest.mark.smoke
def test_a_string_outside_its_pattern_is_a_problem_and_keeps_the_default() -> None:
    env = env_of(NAME="two words", OTHER="one-word")
    allowed = (r"[a-z-]+", "lower-case letters or '-'")
    assert env.str("NAME", "default", help=HELP, pattern=allowed) == "default"
    assert env.str("OTHER", "default", help=HELP, pattern=allowed) == "one-word"
    assert env.problems == ["NAME='two words' is not valid: expected lower-case letters or '-'."]


@pytest.mark.smoke
def test_bool_bad_word_is_a_problem_and_keeps_the_default() -> None:
    env = env_of(FLAG="maybe")
    assert env.bool("FLAG", True, help=HELP) is True
    assert env.problems == ["FLAG='maybe' is not valid: expected true or false."]


@pytest.mark.smoke
@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_blank_means_unset(blank: str) -> None:
    env = env_of(FLAG=blank, COUNT=blank, NAME=blank, WHERE=blank)
    # A blank boolean is not "false": it is unset, so a default of true survives.
    assert env.bool("FLAG", True, help=HELP) is True
    assert env.int("COUNT", 7, help=HELP) == 7
    assert env.str("NAME", "fallback", help=HELP) == "fallback"
    assert env.url("WHERE", None, help=HELP) is None
    assert env.is_set("NAME") is False
    assert env.problems == []


# -- numbers -----------------------------------------------------------------------------


@pytest.mark.smoke
def test_int_reads_whole_numbers() -> None:
    env = env_of(COUNT=" 42 ", NEGATIVE="-3")
    assert env.int("COUNT", 1, help=HELP) == 42
    assert env.int("NEGATIVE", 1, help=HELP) == -3
    assert env.problems == []


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "expected a whole number"),
        ("1.5", "expected a whole number"),
        ("0", "must be at least 1"),
        ("101", "must be at most 100"),
    ],
)
def test_int_bad_values_keep_the_default(value: str, reason: str) -> None:
    env = env_of(COUNT=value)
    assert env.int("COUNT", 10, minimum=1, maximum=100, help=HELP) == 10
    assert env.problems == [f"COUNT={value!r} is not valid: {reason}."]


@pytest.mark.smoke
def test_int_range_bounds_are_inclusive() -> None:
    env = env_of(LOW="1", HIGH="100")
    assert env.int("LOW", 10, minimum=1, maximum=100, help=HELP) == 1
    assert env.int("HIGH", 10, minimum=1, maximum=100, help=HELP) == 100
    assert env.problems == []


@pytest.mark.smoke
def test_float_reads_numbers() -> None:
    env = env_of(SECONDS="2.5", WHOLE="3", SCIENTIFIC="1e-1")
    assert env.float("SECONDS", 1.0, help=HELP) == 2.5
    assert env.float("WHOLE", 1.0, help=HELP) == 3.0
    assert math.isclose(env.float("SCIENTIFIC", 1.0, help=HELP), 0.1)
    assert env.problems == []


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("soon", "expected a number"),
        ("nan", "expected a finite number"),
        ("inf", "expected a finite number"),
        ("-1", "must be at least 0.1"),
        ("0.05", "must be at least 0.1"),
        ("61", "must be at most 60.0"),
    ],
)
def test_float_bad_values_keep_the_default(value: str, reason: str) -> None:
    env = env_of(SECONDS=value)
    assert env.float("SECONDS", 5.0, minimum=0.1, maximum=60.0, help=HELP) == 5.0
    assert env.problems == [f"SECONDS={value!r} is not valid: {reason}."]


# -- strings, lists, URLs, paths -------------------------------------------------------


@pytest.mark.smoke
def test_str_choices_are_case_insensitive_and_canonical() -> None:
    env = env_of(AUTH_TYPE="db")
    assert env.str("AUTH_TYPE", "NO", choices=("NO", "DB"), help=HELP) == "DB"
    assert env.problems == []


@pytest.mark.smoke
def test_str_outside_choices_is_a_problem() -> None:
    env = env_of(AUTH_TYPE="LDAP")
    assert env.str("AUTH_TYPE", "NO", choices=("NO", "DB"), help=HELP) == "NO"
    assert env.problems == ["AUTH_TYPE='LDAP' is not valid: expected one of NO, DB."]


@pytest.mark.smoke
def test_list_splits_on_commas_and_drops_empty_items() -> None:
    env = env_of(HOSTS=" a.example , b.example,,c.example, ")
    assert env.list("HOSTS", ("*",), help=HELP) == ("a.example", "b.example", "c.example")
    assert env.list("UNSET", ("*",), help=HELP) == ("*",)


@pytest.mark.smoke
def test_list_item_converter_can_refuse_an_item() -> None:
    def port(item: str) -> str:
        int(item)  # raises ValueError, which the reader turns into a problem
        return item

    good = env_of(PORTS="80,443")
    assert good.list("PORTS", help=HELP, item=port) == ("80", "443")
    bad = env_of(PORTS="80,https")
    assert bad.list("PORTS", ("8000",), help=HELP, item=port) == ("8000",)
    assert len(bad.problems) == 1
    assert bad.problems[0].startswith("PORTS='80,https' is not valid")


@pytest.mark.smoke
@pytest.mark.parametrize(
    "value",
    [
        "postgresql://kodify:secret@db:5432/kodify",
        "postgres://db/kodify",
        "postgresql+psycopg2://db/kodify",  # the guide's SQLAlchemy spelling
        "POSTGRESQL://db/kodify",
    ],
)
def test_url_accepts_its_schemes(value: str) -> None:
    env = env_of(DB_URL=value)
    assert env.url("DB_URL", schemes=("postgresql", "postgres"), help=HELP) == value
    assert env.problems == []


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("mysql://db/kodify", "expected a URL starting with postgresql:// or postgres://"),
        ("db:5432/kodify", "expected a URL starting with postgresql:// or postgres://"),
        ("postgresql:///kodify", "the URL has no host"),
        ("postgresql://db:port/kodify", "the URL has an invalid port"),
        ("postgresql://db:99999/kodify", "the URL has an invalid port"),
    ],
)
def test_url_bad_values_keep_the_default(value: str, reason: str) -> None:
    env = env_of(DB_URL=value)
    assert env.url("DB_URL", None, schemes=("postgresql", "postgres"), help=HELP) is None
    assert len(env.problems) == 1
    assert env.problems[0].startswith("DB_URL=")
    assert env.problems[0].endswith(f"is not valid: {reason}.")


@pytest.mark.smoke
def test_url_default_schemes_are_http() -> None:
    assert env_of(U="https://h").url("U", help=HELP) == "https://h"
    env = env_of(U="ftp://h")
    assert env.url("U", help=HELP) is None
    assert env.problems == [
        "U='ftp://h' is not valid: expected a URL starting with http:// or https://."
    ]


@pytest.mark.smoke
def test_path_relative_values_start_at_base(tmp_path: Path) -> None:
    env = env_of(DATA="state", ABSOLUTE="/var/lib/kodify")
    assert env.path("DATA", "data", base=tmp_path, help=HELP) == tmp_path / "state"
    assert env.path("ABSOLUTE", "data", base=tmp_path, help=HELP) == Path("/var/lib/kodify")
    # The default is a path too, relative to the same base.
    assert env.path("UNSET", "data", base=tmp_path, help=HELP) == tmp_path / "data"
    assert env.path("NONE", None, base=tmp_path, help=HELP) is None


@pytest.mark.smoke
def test_path_expands_the_home_directory(tmp_path: Path) -> None:
    env = Env(environ={"DATA": "~/kodify"})
    assert env.path("DATA", None, base=tmp_path, help=HELP) == Path.home() / "kodify"


@pytest.mark.smoke
def test_path_declaration_records_the_declared_default_not_a_machine_path(
    tmp_path: Path,
) -> None:
    # The administrator's reference shows this record: it must not carry this machine's
    # folders, whatever the base and the environment are.
    env = env_of(DATA="/srv/elsewhere")
    env.path("DATA", "data", base=tmp_path, help=HELP)
    assert env.variables["DATA"].default == "data"
    assert str(tmp_path) not in repr(env.variables["DATA"])


# -- aliases and declarations ------------------------------------------------------------


@pytest.mark.smoke
def test_alias_is_read_with_a_warning() -> None:
    env = env_of(LOGS_DB_POST="6543")
    assert env.int("LOGS_DB_PORT", 5432, aliases=("LOGS_DB_POST",), help=HELP) == 6543
    assert env.problems == []
    assert env.warnings == [
        "LOGS_DB_POST is an old spelling of LOGS_DB_PORT; it is accepted, "
        "but please rename it to LOGS_DB_PORT."
    ]
    assert env.variables["LOGS_DB_PORT"].aliases == ("LOGS_DB_POST",)


@pytest.mark.smoke
def test_name_wins_over_alias_without_a_warning() -> None:
    env = env_of(LOGS_DB_PORT="5433", LOGS_DB_POST="6543")
    assert env.int("LOGS_DB_PORT", 5432, aliases=("LOGS_DB_POST",), help=HELP) == 5433
    assert env.warnings == []


@pytest.mark.smoke
def test_bad_alias_value_names_the_alias_value() -> None:
    env = env_of(LOGS_DB_POST="five")
    assert env.int("LOGS_DB_PORT", 5432, aliases=("LOGS_DB_POST",), help=HELP) == 5432
    # Named as written: the administrator never set LOGS_DB_PORT.
    assert env.problems == ["LOGS_DB_POST='five' is not valid: expected a whole number."]


# -- variables read only when a switch is on ---------------------------------------------


@pytest.mark.smoke
def test_a_bad_value_is_only_a_warning_while_its_switch_is_off() -> None:
    env = env_of(PORT="<PORT>", OLD_HOST="<HOST>", KEY="<KEY>")
    with env.only_when("FEATURE", False):
        assert env.int("PORT", 5432, help=HELP) == 5432
        assert env.str("HOST", None, pattern=(r"[a-z]+", "a name"), aliases=("OLD_HOST",),
                       help=HELP) is None  # fmt: skip
        assert env.str("KEY", None, secret=True, pattern=(r"[a-z]+", "letters"), help=HELP) is None
    assert env.problems == []
    assert env.warnings == [
        "PORT='<PORT>' is not valid: expected a whole number; it is ignored because FEATURE "
        "is off.",
        "OLD_HOST is an old spelling of HOST; it is accepted, but please rename it to HOST.",
        "OLD_HOST='<HOST>' is not valid: expected a name; it is ignored because FEATURE is off.",
        "KEY is not valid: expected letters; it is ignored because FEATURE is off.",
    ]
    assert {env.variables[name].switch for name in ("PORT", "HOST", "KEY")} == {"FEATURE"}


@pytest.mark.smoke
def test_a_bad_value_stops_the_start_while_its_switch_is_on() -> None:
    env = env_of(PORT="<PORT>", GOOD="6543")
    with env.only_when("FEATURE", True):
        assert env.int("PORT", 5432, help=HELP) == 5432
        assert env.int("GOOD", 5432, help=HELP) == 6543
    assert env.problems == ["PORT='<PORT>' is not valid: expected a whole number."]
    assert env.warnings == []


@pytest.mark.smoke
def test_only_the_variables_inside_depend_on_the_switch() -> None:
    env = env_of(BEFORE="x", AFTER="y")
    env.int("BEFORE", 1, help=HELP)
    with env.only_when("FEATURE", False):
        env.int("INSIDE", 1, help=HELP)
    env.int("AFTER", 1, help=HELP)
    assert [env.variables[name].switch for name in ("BEFORE", "INSIDE", "AFTER")] == [
        "",
        "FEATURE",
        "",
    ]
    assert [problem.split("=", 1)[0] for problem in env.problems] == ["BEFORE", "AFTER"]


@pytest.mark.smoke
def test_declarations_record_name_kind_default_help_example_and_group() -> None:
    env = env_of(MAX_N="3")
    env.group = "Requests"
    env.int("MAX_N", 10, minimum=1, help="Largest n.")
    env.group = "Secrets"
    env.str("API_KEY", None, secret=True, help="A key.", example="(a long string)")
    env.url("DB", None, secret=True, schemes=("postgresql",), help="A database.")
    env.str("LEVEL", "INFO", choices=("INFO", "DEBUG"), help="Level.")
    env.list("HOSTS", ("a", "b"), help="Hosts.")
    env.bool("FLAG", False, help="Flag.")
    env.float("SECONDS", 2.5, help="Seconds.")

    assert list(env.variables) == [
        "MAX_N", "API_KEY", "DB", "LEVEL", "HOSTS", "FLAG", "SECONDS"
    ]  # fmt: skip
    assert env.variables["MAX_N"] == Variable(
        name="MAX_N",
        kind="integer",
        default="10",  # the declared default, not the value read
        help="Largest n.",
        example="10",  # no example given: the default serves as one
        group="Requests",
    )
    assert env.variables["API_KEY"].kind == "secret"
    assert env.variables["API_KEY"].default == ""
    assert env.variables["API_KEY"].example == "(a long string)"
    assert env.variables["API_KEY"].group == "Secrets"
    assert env.variables["DB"].kind == "URL (secret)"
    assert env.variables["LEVEL"].kind == "one of INFO/DEBUG"
    assert env.variables["HOSTS"].default == "a,b"
    assert env.variables["FLAG"].default == "false"
    assert env.variables["FLAG"].example == "true"
    assert env.variables["SECONDS"].kind == "number"


@pytest.mark.smoke
def test_every_problem_is_recorded_without_raising() -> None:
    env = env_of(A="x", B="y", C="z")
    env.int("A", 1, help=HELP)
    env.float("B", 1.0, help=HELP)
    env.bool("C", False, help=HELP)
    assert [problem.split("=", 1)[0] for problem in env.problems] == ["A", "B", "C"]


@pytest.mark.smoke
def test_settings_declare_the_guide_variables() -> None:
    from django.conf import settings

    for name in ("MTSAI_AUTH", "AUTH_TYPE", "VLLM_API_KEY", "USERS_TABLE", "DB_URL",
                 "RUN_MIGRATIONS", "MAX_N", "WAIT_VLLM", "WAIT_VLLM_ATTEMPTS",
                 "WAIT_VLLM_TIMEOUT"):  # fmt: skip
        assert name in settings.ENV_VARIABLES, name
    for variable in settings.ENV_VARIABLES.values():
        assert variable.help.strip(), f"{variable.name} has no help text"


# -- manage.py check, end to end ---------------------------------------------------------

# A tab indents line 3: YAML forbids it, and editors slip one in easily.
BROKEN_YAML = "upstreams:\n  http://upstream1:8000:\n\thttp://upstream2:8000:\n"
UNKNOWN_OPTION = "upstreams:\n  http://upstream1:8000:\n    wieght: 2\n"
# The guide's example with its first key misspelt and its indentation lost.
MISSPELT_KEY = "upstream:\n  http://upstream1:8000:\ntabby:\n  model_name: m\n"
LOST_INDENTATION = "upstreams:\nhttp://upstream1:8000:\ntabby:\nmodel_name: m\n"

# name -> (environment on top of a clean slate, arguments of `manage.py check`).
# {dir} stands for the scenario's own folder.
SCENARIOS: dict[str, tuple[dict[str, str | None], tuple[str, ...]]] = {
    "nothing": ({}, ()),
    "max_n": ({"MAX_N": "abc"}, ()),
    "per_user_without_db": ({"MTSAI_AUTH": "true", "AUTH_TYPE": "NO"}, ()),
    "db_without_per_user": ({"MTSAI_AUTH": "false", "AUTH_TYPE": "DB"}, ()),
    "db_url_scheme": ({"DB_URL": "mysql://kodify:hunter2@db:3306/kodify"}, ()),
    "negative_timeout": ({"KODIFY_UPSTREAM_CONNECT_TIMEOUT": "-1"}, ()),
    "invalid_yaml": ({"KODIFY_CONFIG": "{dir}/broken.yml"}, ()),
    "unknown_option": ({"KODIFY_CONFIG": "{dir}/unknown.yml"}, ()),
    "misspelt_key": ({"KODIFY_CONFIG": "{dir}/misspelt.yml"}, ()),
    "lost_indentation": ({"KODIFY_CONFIG": "{dir}/lost.yml"}, ()),
    "missing_config": ({"KODIFY_CONFIG": "{dir}/nowhere/config.yml"}, ()),
    "per_user_with_key": ({"MTSAI_AUTH": "true", "AUTH_TYPE": "DB", "VLLM_API_KEY": "x"}, ()),
    "deploy_without_key": ({"KODIFY_SECRET_KEY": None}, ("--deploy",)),
    "deploy_with_key": ({"KODIFY_SECRET_KEY": "k" * 60}, ("--deploy",)),
    "deploy_production": (
        {
            "KODIFY_SECRET_KEY": "0123456789abcdefghijklmnopqrstuvwxyz" * 2,
            "KODIFY_UPSTREAMS": "http://vllm:8000",
            "KODIFY_HTTPS": "true",
            "KODIFY_ALLOWED_HOSTS": "kodify.example.com",
            "KODIFY_TRUSTED_PROXIES": "10.0.0.0/8,192.168.1.5",
        },
        ("--deploy",),
    ),
    "bad_proxy": ({"KODIFY_TRUSTED_PROXIES": "10.0.0.0/33,nginx"}, ()),
    "logs_db_post": (
        {"LOGS": "True", "LOGS_DB_HOST": "127.0.0.1", "LOGS_DB_POST": "5433"},
        (),
    ),
    "logs_db_without_host": (
        {"LOGS": "True", "LOGS_DB_NAME": "journal", "LOGS_DB_PASSWORD": "hunter2"},
        (),
    ),
    "logs_db_while_off": ({"LOGS_DB_HOST": "postgres-logs"}, ()),
    "logs_db_bad_port": ({"LOGS": "True", "LOGS_DB_PORT": "70000"}, ()),
    # The guide's placeholders, left in an env file that keeps the journal off.
    "logs_db_placeholders_while_off": (
        {"LOGS": "False", "LOGS_DB_HOST": "<HOST>", "LOGS_DB_POST": "<PORT>"},
        (),
    ),
    "logs_db_port_placeholder_while_on": (
        {"LOGS": "True", "LOGS_DB_HOST": "postgres-logs", "LOGS_DB_POST": "<PORT>"},
        (),
    ),
    "logs_db_host_placeholder_while_on": ({"LOGS": "True", "LOGS_DB_HOST": "<HOST>"}, ()),
    "redis_prefix": ({"KODIFY_REDIS_PREFIX": "two words"}, ()),
}


@dataclass
class Checked:
    folder: Path
    returncode: int
    output: str


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Checked]:
    """Every scenario's ``manage.py check``, run as an administrator would.

    Each runs in a folder of its own (so no ``./config.yml`` of the runner is found) with
    only its variables on top of a clean slate.  They run side by side: each is a Django
    start-up of a few seconds.
    """
    running: dict[str, tuple[Path, subprocess.Popen[str]]] = {}
    for name, (overrides, arguments) in SCENARIOS.items():
        folder = tmp_path_factory.mktemp(name)
        (folder / "broken.yml").write_text(BROKEN_YAML)
        (folder / "unknown.yml").write_text(UNKNOWN_OPTION)
        (folder / "misspelt.yml").write_text(MISSPELT_KEY)
        (folder / "lost.yml").write_text(LOST_INDENTATION)
        environment = server_environment(folder, {})
        # Checks read no database: keep both runs of the suite alike.
        environment.pop("DB_URL", None)
        environment.pop("REDIS_URL", None)
        for variable, value in overrides.items():
            if value is None:
                environment.pop(variable, None)
            else:
                environment[variable] = value.format(dir=folder)
        process = subprocess.Popen(
            [sys.executable, str(REPO / "manage.py"), "check", *arguments],
            cwd=folder,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        running[name] = (folder, process)
    results: dict[str, Checked] = {}
    try:
        for name, (folder, process) in running.items():
            output, _ = process.communicate(timeout=90)
            results[name] = Checked(folder, process.returncode, output)
    finally:
        for _, process in running.values():  # a hung check must not outlive the run
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def message_line(result: Checked, check_id: str) -> str:
    """The one line that reports ``check_id``."""
    lines = [line for line in result.output.splitlines() if f"({check_id})" in line]
    assert len(lines) == 1, f"expected one {check_id} line in:\n{result.output}"
    return lines[0]


def assert_stops(result: Checked, check_id: str, *fragments: str) -> None:
    assert result.returncode != 0, result.output
    line = message_line(result, check_id)
    for fragment in fragments:
        assert fragment in line, line


@pytest.mark.smoke
def test_check_passes_with_nothing_configured(checked: dict[str, Checked]) -> None:
    result = checked["nothing"]
    assert result.returncode == 0, result.output
    assert "(kodify.E" not in result.output


@pytest.mark.smoke
def test_check_warns_of_no_upstream_without_creating_the_database(
    checked: dict[str, Checked],
) -> None:
    # The warning looks for an upstream added in the console only in a database that is
    # there: ``check`` before ``migrate`` leaves no empty SQLite file behind.
    result = checked["nothing"]
    assert "(kodify.W101)" in result.output
    assert not (result.folder / "data" / "kodify.sqlite3").exists()


@pytest.mark.smoke
def test_check_stops_on_a_bad_max_n(checked: dict[str, Checked]) -> None:
    assert_stops(
        checked["max_n"], "kodify.E001", "MAX_N='abc' is not valid: expected a whole number."
    )


@pytest.mark.smoke
def test_check_stops_on_per_user_auth_without_a_database_type(
    checked: dict[str, Checked],
) -> None:
    assert_stops(checked["per_user_without_db"], "kodify.E002", "MTSAI_AUTH=true", "AUTH_TYPE=DB")


@pytest.mark.smoke
def test_check_stops_on_a_database_type_without_per_user_auth(
    checked: dict[str, Checked],
) -> None:
    assert_stops(checked["db_without_per_user"], "kodify.E003", "AUTH_TYPE=DB", "MTSAI_AUTH=true")


@pytest.mark.smoke
def test_check_stops_on_a_bad_db_url_scheme(checked: dict[str, Checked]) -> None:
    result = checked["db_url_scheme"]
    assert_stops(
        result, "kodify.E001", "DB_URL is not valid", "expected a URL starting with postgresql://"
    )
    # DB_URL is a secret: its value (password included) never reaches the message.
    assert "hunter2" not in result.output


@pytest.mark.smoke
def test_check_stops_on_a_negative_timeout(checked: dict[str, Checked]) -> None:
    assert_stops(
        checked["negative_timeout"],
        "kodify.E001",
        "KODIFY_UPSTREAM_CONNECT_TIMEOUT='-1' is not valid: must be at least 0.1.",
    )


@pytest.mark.smoke
def test_check_stops_on_invalid_yaml(checked: dict[str, Checked]) -> None:
    result = checked["invalid_yaml"]
    assert_stops(
        result,
        "kodify.E101",
        f"{result.folder}/broken.yml: is not valid YAML at line 3: ",
        "cannot start any token",
    )


@pytest.mark.smoke
def test_check_stops_on_an_unknown_upstream_option(checked: dict[str, Checked]) -> None:
    result = checked["unknown_option"]
    assert_stops(
        result,
        "kodify.E101",
        f"{result.folder}/unknown.yml line 3: upstream http://upstream1:8000 has unknown option "
        '"wieght" (expected: api_key, weight, ',
        'did you mean "weight"?',
    )


@pytest.mark.smoke
def test_check_stops_on_a_misspelt_config_key_instead_of_finding_no_upstream(
    checked: dict[str, Checked],
) -> None:
    result = checked["misspelt_key"]
    assert_stops(
        result,
        "kodify.E101",
        f'{result.folder}/misspelt.yml line 1: unknown key "upstream" (expected: upstreams, '
        'tabby); did you mean "upstreams"?',
    )
    assert "(kodify.W101)" not in result.output


@pytest.mark.smoke
def test_check_stops_on_a_config_that_lost_its_indentation(checked: dict[str, Checked]) -> None:
    result = checked["lost_indentation"]
    assert_stops(
        result,
        "kodify.E101",
        f'{result.folder}/lost.yml line 2: "http://upstream1:8000" is an upstream, so it '
        'belongs under "upstreams:": indent it',
    )
    assert "(kodify.W101)" not in result.output


@pytest.mark.smoke
def test_check_stops_on_a_missing_config_file(checked: dict[str, Checked]) -> None:
    result = checked["missing_config"]
    assert_stops(
        result, "kodify.E101", f"KODIFY_CONFIG={result.folder}/nowhere/config.yml: no such file."
    )


@pytest.mark.smoke
def test_check_warns_when_per_user_mode_also_has_vllm_api_key(
    checked: dict[str, Checked],
) -> None:
    result = checked["per_user_with_key"]
    assert result.returncode == 0, result.output
    line = message_line(result, "kodify.W002")
    assert "VLLM_API_KEY" in line
    assert "upstreams" in line


@pytest.mark.smoke
def test_check_deploy_needs_a_secret_key(checked: dict[str, Checked]) -> None:
    assert_stops(checked["deploy_without_key"], "kodify.E010", "KODIFY_SECRET_KEY is not set")


@pytest.mark.smoke
def test_check_deploy_accepts_a_secret_key(checked: dict[str, Checked]) -> None:
    result = checked["deploy_with_key"]
    assert "(kodify.E010)" not in result.output
    # Django's own deploy advice is present: the --deploy checks did run.
    assert "(security.W004)" in result.output
    assert "(kodify.W012) KODIFY_ALLOWED_HOSTS is '*'" in result.output


@pytest.mark.smoke
def test_check_deploy_is_clean_with_the_production_switches(checked: dict[str, Checked]) -> None:
    result = checked["deploy_production"]
    assert result.returncode == 0, result.output
    assert "System check identified no issues" in result.output, result.output


@pytest.mark.smoke
def test_a_trusted_proxy_must_be_an_address_or_a_network(checked: dict[str, Checked]) -> None:
    assert_stops(checked["bad_proxy"], "kodify.E001", "KODIFY_TRUSTED_PROXIES=", "10.0.0.0/33")


@pytest.mark.smoke
def test_server_does_not_start_with_a_bad_setting(
    kodify_server: Callable[..., KodifyServer],
) -> None:
    with pytest.raises(RuntimeError) as failure:
        kodify_server({"MAX_N": "abc"})
    message = str(failure.value)
    assert "Kodify cannot start: MAX_N='abc' is not valid: expected a whole number." in message
    assert "(kodify.E001)" in message


# -- the journal's settings ----------------------------------------------------------------


@pytest.mark.smoke
def test_logs_db_post_is_an_accepted_alias_with_a_warning(checked: dict[str, Checked]) -> None:
    result = checked["logs_db_post"]
    assert result.returncode == 0, result.output
    line = message_line(result, "kodify.W001")
    assert "LOGS_DB_POST is an old spelling of LOGS_DB_PORT" in line


def test_logs_db_port_alias_reaches_the_journal_database() -> None:
    environment = server_environment(Path("."), {})
    environment.pop("DB_URL", None)
    environment.update({"LOGS": "yes", "LOGS_DB_HOST": "logs", "LOGS_DB_POST": "6543"})
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', "
        "'kodify_site.settings'); django.setup(); from django.conf import settings; "
        "j = settings.DATABASES['journal']; print(j['HOST'], j['PORT'], j['NAME'])"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    ).stdout
    assert output.split() == ["logs", "6543", "kodify_journal"]


@pytest.mark.smoke
def test_logs_db_parts_without_a_host_stop_the_start(checked: dict[str, Checked]) -> None:
    result = checked["logs_db_without_host"]
    assert_stops(result, "kodify.E030", "LOGS_DB_NAME, LOGS_DB_PASSWORD are set but LOGS_DB_HOST")
    assert "hunter2" not in result.output


@pytest.mark.smoke
def test_logs_db_settings_are_not_needed_and_only_warned_about_when_logs_is_off(
    checked: dict[str, Checked],
) -> None:
    result = checked["logs_db_while_off"]
    assert result.returncode == 0, result.output
    assert "LOGS is off" in message_line(result, "kodify.W030")


@pytest.mark.smoke
def test_logs_db_port_out_of_range_stops_the_start(checked: dict[str, Checked]) -> None:
    assert_stops(checked["logs_db_bad_port"], "kodify.E001", "LOGS_DB_PORT='70000' is not valid")


@pytest.mark.smoke
def test_logs_db_placeholders_are_only_warned_about_when_logs_is_off(
    checked: dict[str, Checked],
) -> None:
    result = checked["logs_db_placeholders_while_off"]
    assert result.returncode == 0, result.output
    assert "(kodify.E" not in result.output
    warnings = [line for line in result.output.splitlines() if "(kodify.W001)" in line]
    for expected in (
        "LOGS_DB_HOST='<HOST>' is not valid: expected a host name, an IP address or a socket "
        "folder; it is ignored because LOGS is off.",
        "LOGS_DB_POST='<PORT>' is not valid: expected a whole number; it is ignored because "
        "LOGS is off.",
    ):
        assert [line for line in warnings if line.endswith(expected)], result.output


@pytest.mark.smoke
def test_a_logs_db_placeholder_stops_the_start_when_logs_is_on(
    checked: dict[str, Checked],
) -> None:
    port = checked["logs_db_port_placeholder_while_on"]
    assert_stops(
        port, "kodify.E001", "LOGS_DB_POST='<PORT>' is not valid: expected a whole number."
    )
    assert "ignored" not in message_line(port, "kodify.E001")
    assert_stops(
        checked["logs_db_host_placeholder_while_on"],
        "kodify.E001",
        "LOGS_DB_HOST='<HOST>' is not valid: expected a host name, an IP address or a socket "
        "folder.",
    )


@pytest.mark.smoke
def test_a_redis_prefix_outside_its_alphabet_stops_the_start(checked: dict[str, Checked]) -> None:
    assert_stops(
        checked["redis_prefix"], "kodify.E001", "KODIFY_REDIS_PREFIX='two words' is not valid"
    )


@pytest.mark.smoke
def test_the_redis_prefix_names_every_key_kodify_keeps_in_redis(tmp_path: Path) -> None:
    """Two deployments (or two test runs) sharing one Redis never meet: the cache, the
    channel layer, the Celery queues and the limits all start with the prefix."""
    environment = server_environment(tmp_path, {})
    environment.pop("DB_URL", None)
    environment.update(REDIS_URL="redis://127.0.0.1:1/0", KODIFY_REDIS_PREFIX="kodify-b")
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "from accounts.limits import key_prefix; print(json.dumps(["
        "s.CACHES['default']['KEY_PREFIX'], s.CHANNEL_LAYERS['default']['CONFIG']['prefix'], "
        "s.CELERY_BROKER_TRANSPORT_OPTIONS['global_keyprefix'], key_prefix()]))"
    )
    environment["DJANGO_SETTINGS_MODULE"] = "kodify_site.settings"
    output = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=90,
    ).stdout
    cache, channels, celery, limits = json.loads(output.strip().splitlines()[-1])
    assert (cache, channels, celery) == ("kodify-b", "kodify-b:asgi", "kodify-b:")
    assert limits.startswith("kodify-b:limits:")
