"""The deployment files under docker/, checked without a Docker engine.

* ``compose.yml`` with each example env file, through Debian's ``docker-compose config``
  (1.29.2, installed by ``make install-dev``): what the merged configuration says about
  ports, GPUs, shared memory, mounts, the bundled databases and start-up order;
* the env examples against Kodify's own settings (``manage.py check --deploy``, the auth
  mode they give) and the vLLM launcher (the command line it would run);
* the Dockerfiles' essentials, the image's command and health check run for real (the
  build stage's collectstatic, then uvicorn through the entry point, as the image runs it);
* ``preflight.sh`` with fake ``nvidia-smi``, ``docker``, ``kubectl``… on PATH, for a host
  that passes and for each requirement it misses;
* build/push/save/load with a fake ``docker``; the journal's database set-up script
  against the test PostgreSQL; ``bash -n`` on every script.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gzip
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gateway.config_file import load_config
from kodify_site import __version__
from kodify_site.management.commands.run_model_server import load_launcher
from kodify_site.testing import free_port, server_environment
from kodify_site.tests.docker_run import compose_environment

model_server = load_launcher()

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yml"
# Published ports, read by compose with compose.yml unless -f names the files.
COMPOSE_OVERRIDE = DOCKER / "compose.override.yml"
EXAMPLES = ("one-token", "per-user", "journal")
SERVICES = {"gateway", "worker", "beat", "postgres", "db-init", "redis", "vllm"}
KODIFY_SERVICES = ("gateway", "worker", "beat")

# What each example's blanks are filled with, as an administrator would.
SECRETS = {
    "POSTGRES_PASSWORD": "pg0123456789abcdef",
    "KODIFY_SECRET_KEY": "k" + "0123456789abcdef" * 4,
    "LOGS_DB_PASSWORD": "journal0123456789",
    "VLLM_API_KEY": "onetoken0123456789",
    "KODIFY_ALLOWED_HOSTS": "kodify.example.com,localhost",
}


# --- helpers -----------------------------------------------------------------------------


def docker_compose_command() -> str:
    found = shutil.which("docker-compose")
    if found:
        return found
    message = (
        "docker-compose is not installed: `make install-dev` installs Debian's "
        "docker-compose, which validates docker/compose.yml without an engine"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def env_names(path: Path) -> set[str]:
    """Every variable an env file sets or shows commented out (``#NAME=value``)."""
    return set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", path.read_text(), flags=re.MULTILINE))


def filled_env(example: str, **overrides: str) -> str:
    """The example as an administrator leaves it: blanks marked REQUIRED filled in."""
    lines = []
    for line in (DOCKER / "env" / f"{example}.env").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not value and name in SECRETS:
            line = f"{name}={SECRETS[name]}"
        lines.append(line)
    lines += [f"{name}={value}" for name, value in overrides.items()]
    return "\n".join(lines) + "\n"


def compose_project(tmp_path: Path, env_text: str) -> Path:
    """The folder an operator deploys from: compose.yml, its files, and the env file as .env."""
    project = tmp_path / "kodify"
    project.mkdir(parents=True)
    shutil.copy(COMPOSE, project / "compose.yml")
    shutil.copy(COMPOSE_OVERRIDE, project / "compose.override.yml")
    shutil.copy(DOCKER / "config.yml", project / "config.yml")
    shutil.copytree(DOCKER / "postgres", project / "postgres")
    (project / ".env").write_text(env_text)
    return project


def compose(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = compose_environment()
    return subprocess.run(
        [
            docker_compose_command(),
            "--project-directory",
            str(project),
            "-f",
            str(project / "compose.yml"),
            "-f",
            str(project / "compose.override.yml"),
            "--env-file",
            str(project / ".env"),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


# What `docker compose up` would start: compose's own rule (profiles from .env included),
# from Debian's docker-compose library, since `config --services` lists every service.
# Compose's Project would ask a running dockerd about networks, and none need run for these
# checks, so the profile rule (a service with profiles starts only when one is enabled) is
# applied to the configuration compose loaded.
SERVICES_STARTED = """
import sys
from compose import config
from compose.cli.command import get_profiles_from_options
from compose.config.environment import Environment

project_dir, env_file, *files = sys.argv[1:]
environment = Environment.from_env_file(project_dir, env_file)
enabled = set(get_profiles_from_options({}, environment))
services = config.load(config.find(project_dir, files, environment)).services
print(" ".join(
    service["name"] for service in services
    if not service.get("profiles") or enabled & set(service["profiles"])
))
"""


def services_started(project: Path) -> set[str]:
    compose_script = Path(docker_compose_command()).read_text().splitlines()[0]
    interpreter = compose_script.removeprefix("#!").split()[0]
    env = compose_environment()
    result = subprocess.run(
        [
            interpreter,
            "-c",
            SERVICES_STARTED,
            str(project),
            str(project / ".env"),
            str(project / "compose.yml"),
            str(project / "compose.override.yml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=project,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def compose_config(tmp_path: Path, env_text: str) -> dict[str, Any]:
    project = compose_project(tmp_path, env_text)
    quiet = compose(project, "config", "-q")
    assert quiet.returncode == 0, quiet.stderr
    assert "WARNING" not in quiet.stderr, quiet.stderr
    full = compose(project, "config")
    assert full.returncode == 0, full.stderr
    config = yaml.safe_load(full.stdout)
    assert isinstance(config, dict)
    return config


def mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of a service's volumes, short or long syntax."""
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            options = parts[2].split(",") if len(parts) > 2 else []
            found.append((parts[0], parts[1], "ro" in options))
        else:
            found.append(
                (volume.get("source", ""), volume["target"], bool(volume.get("read_only")))
            )
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def kodify_variable_names() -> set[str]:
    """Every variable Kodify's settings read, aliases included."""
    from django.conf import settings

    names: set[str] = set()
    for variable in settings.ENV_VARIABLES.values():
        names |= {variable.name, *variable.aliases}
    return names


def healthcheck_test(service: dict[str, Any]) -> str:
    test = service.get("healthcheck", {}).get("test", [])
    return " ".join(test) if isinstance(test, list) else str(test)


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), " ".join(rest.split())))
    return instructions


def stage(instructions: list[tuple[str, str]], which: int) -> list[tuple[str, str]]:
    """The instructions of one stage (0: the first FROM; -1: the last)."""
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    begin = starts[which]
    following = [s for s in starts if s > begin]
    return instructions[begin : following[0] if following else len(instructions)]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path or a parent folder wins."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*")
        regex = regex.replace("[^/]*[^/]*/", "(.*/)?")  # "**/" matches any folders
        if any(re.match(regex, prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


# --- compose.yml ---------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES)
def test_compose_file_with_each_example(tmp_path: Path, example: str) -> None:
    values = read_env_file(Path(DOCKER / "env" / f"{example}.env"))
    config = compose_config(tmp_path, filled_env(example))
    services = config["services"]
    assert set(services) == SERVICES

    # Only the gateway is published; vLLM, PostgreSQL and Redis stay inside the network.
    for name, service in services.items():
        if name != "gateway":
            assert not service.get("ports"), f"{name} must not publish ports"
    assert services["gateway"]["ports"], "the gateway publishes the address plugins call"

    # The gateway, the worker and the beat: one image, the same settings, and only Kodify's
    # (the model server's and PostgreSQL's stay with them).
    images = {services[name]["image"] for name in KODIFY_SERVICES}
    assert images == {f"kodify/kodify:{__version__}"}
    shared = environment(services["gateway"])
    for name in KODIFY_SERVICES:
        assert environment(services[name]) == shared, f"{name} differs from the gateway"
    kodify_names = kodify_variable_names()
    for name, value in values.items():
        if name in kodify_names and value:
            assert shared[name] == value, f"{name} from the env file"
    for name in ("MODEL", "GPUUTIL", "MAX_MODEL_LEN", "ADDITIONAL_ARGS", "COMPOSE_PROFILES"):
        assert name not in shared, f"{name} is not the gateway's"
    assert services["worker"]["command"] in (
        "celery -A kodify_site worker -l info",
        ["celery", "-A", "kodify_site", "worker", "-l", "info"],
    )
    assert services["beat"]["command"] in (
        "celery -A kodify_site beat -l info",
        ["celery", "-A", "kodify_site", "beat", "-l", "info"],
    )
    assert "command" not in services["gateway"], "the image's own command (uvicorn)"

    # The bundled PostgreSQL runs with its profile (set by every example); without a DB_URL
    # of the administrator's, the entry point builds its URL from POSTGRES_PASSWORD.
    assert values["COMPOSE_PROFILES"] == "bundled-postgres"
    for name in ("postgres", "db-init"):
        assert services[name]["profiles"] == ["bundled-postgres"]
    postgres = environment(services["postgres"])
    assert postgres["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]
    assert shared["DB_URL"] == ""
    assert shared["POSTGRES_PASSWORD"] == postgres["POSTGRES_PASSWORD"]
    assert shared["BUNDLED_POSTGRES_HOST"] == "postgres" and "postgres" in services
    assert postgres["POSTGRES_USER"] == postgres["POSTGRES_DB"] == "kodify"
    redis_url = urlsplit(shared["REDIS_URL"])
    assert redis_url.hostname == "redis" and redis_url.hostname in services
    assert shared["KODIFY_SECRET_KEY"] == SECRETS["KODIFY_SECRET_KEY"]

    # The root filesystems are read-only: Kodify writes to its volume and two tmpfs only.
    for name in KODIFY_SERVICES:
        assert services[name]["read_only"] is True, name

    # PostgreSQL 16 keeps its data in the guide's volume.
    assert re.search(r"(^|/)postgres:16(\.|$)", services["postgres"]["image"])
    assert ("mtsai_pgdata", "/var/lib/postgresql/data", False) in mounts(services["postgres"])
    assert config["volumes"]["mtsai_pgdata"]["name"] == "mtsai_pgdata"
    assert re.search(r"(^|/)redis:7(\.|$)", services["redis"]["image"])

    # The guide's config.yml, read-only, where Kodify looks for it.
    for name in KODIFY_SERVICES:
        assert ("/opt/mtsai/config.yml", "/vllm-workspace/config.yml", True) in mounts(
            services[name]
        )
        # Each container's metric files in memory of its own, owned by the image's user
        # (a mode alone is not applied on every Docker); a /tmp for Celery's pool.
        tmpfs = services[name]["tmpfs"]
        tmpfs = [tmpfs] if isinstance(tmpfs, str) else tmpfs
        folders = {entry.split(":")[0]: entry.partition(":")[2].split(",") for entry in tmpfs}
        for folder in (shared["KODIFY_METRICS_DIR"], "/tmp"):
            assert {"uid=10001", "gid=10001"} <= set(folders[folder]), tmpfs

    # vLLM: the model-server image, the GPUs, shared memory, the weights read-only, offline.
    vllm = services["vllm"]
    assert vllm["image"] == f"kodify/kodify-model-server:{__version__}"
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert vllm.get("ipc") == "host" or str(vllm.get("shm_size")).lower() in (
        "10g",
        "10gb",
        str(10 * 1024**3),
    )
    assert ("/opt/mtsai/models", "/models", True) in mounts(vllm)
    vllm_env = environment(vllm)
    assert vllm_env["HF_HUB_OFFLINE"] == "1"
    assert vllm_env["PORT"] == "8000"
    assert vllm_env["MODEL"] == values["MODEL"]
    launcher = {v.name for v in model_server.VARIABLES} | set(model_server.SHOWN_ENVIRONMENT)
    assert set(vllm_env) - launcher <= {"CUDA_DEVICE_ORDER"}, "only the launcher's variables"
    assert "KODIFY_SECRET_KEY" not in vllm_env and "POSTGRES_PASSWORD" not in vllm_env

    # Start-up order and health checks.
    # The gateway waits for its databases itself (KODIFY_WAIT_SECONDS): compose cannot
    # depend on a service that a profile may leave out.
    gateway_needs = services["gateway"]["depends_on"]
    assert set(gateway_needs) == {"redis"}
    assert gateway_needs["redis"]["condition"] == "service_healthy"
    assert int(shared["KODIFY_WAIT_SECONDS"]) > 0
    assert services["db-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("worker", "beat"):
        # Beat's scheduler reads tables the gateway's start creates.
        assert services[name]["depends_on"]["gateway"]["condition"] == "service_healthy"
    assert "/health" in healthcheck_test(services["gateway"])
    assert "127.0.0.1:8000/health" in healthcheck_test(vllm)
    assert "pg_isready" in healthcheck_test(services["postgres"])
    assert "ping" in healthcheck_test(services["redis"])
    assert "inspect ping" in healthcheck_test(services["worker"])
    # The image's /health check does not fit beat: switched off there, not left failing.
    assert healthcheck_test(services["beat"]) == "NONE"


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_as_shipped_refuse_to_start_without_their_secrets(
    tmp_path: Path, example: str
) -> None:
    project = compose_project(tmp_path, (DOCKER / "env" / f"{example}.env").read_text())
    result = compose(project, "config", "-q")
    assert result.returncode != 0
    assert "set KODIFY_SECRET_KEY in .env" in result.stderr


def test_db_url_in_the_env_file_is_honoured(tmp_path: Path) -> None:
    """The administrator's own PostgreSQL and Redis: the bundled PostgreSQL is not started."""
    own = filled_env(
        "per-user",
        DB_URL="postgresql://someone:else@db.example.com:5432/other",
        REDIS_URL="redis://cache.example.com:6379/3",
        POSTGRES_PASSWORD="",
    ).replace("COMPOSE_PROFILES=bundled-postgres\n", "")
    project = compose_project(tmp_path, own)
    config = compose(project, "config")
    assert config.returncode == 0, config.stderr
    services = yaml.safe_load(config.stdout)["services"]
    for name in KODIFY_SERVICES:
        env = environment(services[name])
        assert env["DB_URL"] == "postgresql://someone:else@db.example.com:5432/other"
        assert env["REDIS_URL"] == "redis://cache.example.com:6379/3"
        assert env["POSTGRES_PASSWORD"] == ""
    assert services_started(project) == {"gateway", "worker", "beat", "redis", "vllm"}

    bundled = compose_project(tmp_path / "bundled", filled_env("per-user"))
    assert {"postgres", "db-init", "gateway"} <= services_started(bundled)


def test_published_address_comes_from_the_env_file(tmp_path: Path) -> None:
    """compose.override.yml publishes the gateway, where KODIFY_PUBLISH says."""
    default = compose_config(tmp_path, filled_env("one-token"))["services"]["gateway"]["ports"]
    assert [(str(p["published"]), p["target"]) for p in default] == [("8000", 8000)]
    local = compose_config(
        tmp_path / "local", filled_env("one-token", KODIFY_PUBLISH="127.0.0.1:9000")
    )["services"]["gateway"]["ports"]
    assert [str(p).removesuffix("/tcp") for p in local] == ["127.0.0.1:9000:8000"]


def test_compose_hands_kodify_every_setting_it_reads_and_nothing_else() -> None:
    """x-kodify-environment lists exactly Kodify's settings (each service its own variables)."""
    raw = yaml.safe_load(COMPOSE.read_text())
    listed = set(raw["x-kodify-environment"])
    entry_point = {"POSTGRES_PASSWORD", "BUNDLED_POSTGRES_HOST", "KODIFY_WAIT_SECONDS", "WORKERS"}
    assert listed == kodify_variable_names() | entry_point
    for name, value in raw["x-kodify-environment"].items():
        # Every one from .env, but the folders fixed by the image.
        if name not in ("BUNDLED_POSTGRES_HOST", "KODIFY_DATA_DIR", "KODIFY_METRICS_DIR"):
            assert str(value).startswith(f"${{{name}:"), name
    for name in ("gateway", "worker", "beat", "postgres", "db-init", "redis", "vllm"):
        assert "env_file" not in raw["services"][name], f"{name} would get the whole .env"


def test_host_paths_and_registry_come_from_the_env_file(tmp_path: Path) -> None:
    env_text = filled_env(
        "one-token",
        KODIFY_REGISTRY="artifactory.mts.ai/kodify",
        KODIFY_VERSION="9.8.7",
        KODIFY_DEPS_REGISTRY="artifactory.mts.ai/docker-remote/library",
        KODIFY_CONFIG_FILE="/srv/kodify/config.yml",
        KODIFY_MODELS_DIR="/srv/models",
    )
    services = compose_config(tmp_path, env_text)["services"]
    assert services["gateway"]["image"] == "artifactory.mts.ai/kodify/kodify:9.8.7"
    assert services["vllm"]["image"] == "artifactory.mts.ai/kodify/kodify-model-server:9.8.7"
    assert services["postgres"]["image"] == "artifactory.mts.ai/docker-remote/library/postgres:16"
    assert ("/srv/kodify/config.yml", "/vllm-workspace/config.yml", True) in mounts(
        services["gateway"]
    )
    assert ("/srv/models", "/models", True) in mounts(services["vllm"])


def test_compose_defaults_match_the_version_and_the_dockerfiles() -> None:
    text = COMPOSE.read_text()
    assert set(re.findall(r"\$\{KODIFY_VERSION:-([^}]+)\}", text)) == {__version__}
    for example in EXAMPLES:
        assert read_env_file(DOCKER / "env" / f"{example}.env")["KODIFY_VERSION"] == __version__
    assert f"ARG KODIFY_VERSION={__version__}" in (DOCKER / "Dockerfile").read_text()


# --- the env examples, config.yml ------------------------------------------------------


def test_env_examples_name_only_variables_something_reads() -> None:
    from django.conf import settings

    known = set()
    for variable in settings.ENV_VARIABLES.values():
        known |= {variable.name, *variable.aliases}
    known |= {variable.name for variable in model_server.VARIABLES}
    known |= set(model_server.SHOWN_ENVIRONMENT)
    known |= set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    known |= set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE_OVERRIDE.read_text()))
    known |= {
        "COMPOSE_PROJECT_NAME",  # docker compose's own
        "COMPOSE_PROFILES",
        "WORKERS",  # the image's command (uvicorn --workers)
        "VLLM_WORKER_MULTIPROC_METHOD",  # vLLM's own, checked by the launcher
    }
    for example in EXAMPLES:
        unknown = env_names(DOCKER / "env" / f"{example}.env") - known
        assert not unknown, f"{example}.env names variables nothing reads: {sorted(unknown)}"


def test_env_examples_are_the_guides_three_cases() -> None:
    one_token = read_env_file(DOCKER / "env" / "one-token.env")
    assert one_token["MTSAI_AUTH"] == "false"
    assert "VLLM_API_KEY" in one_token and "AUTH_TYPE" not in one_token
    per_user = read_env_file(DOCKER / "env" / "per-user.env")
    assert per_user["MTSAI_AUTH"] == "true" and per_user["AUTH_TYPE"] == "DB"
    assert per_user["USERS_TABLE"]
    journal = read_env_file(DOCKER / "env" / "journal.env")
    assert journal["LOGS"] == "True"
    for name in ("LOGS_DB_HOST", "LOGS_DB_PORT", "LOGS_DB_NAME", "LOGS_DB_USERNAME"):
        assert journal[name], name
    assert "LOGS_DB_PASSWORD" in journal
    for values in (one_token, per_user):
        assert values["LOGS"] == "False"
    for example in EXAMPLES:
        text = (DOCKER / "env" / f"{example}.env").read_text()
        assert f"cp env/{example}.env .env" in text, "each example says how to use it"
    for values in (one_token, per_user, journal):
        for name in ("GPUUTIL", "MODEL", "SERVED_MODEL_NAME", "MAX_N", "RUN_MIGRATIONS"):
            assert values[name], name
        assert values["COMPLETIONS_PREPROCESSING_CONFIG"] == "preprocess_configs/qwen.json"
        assert (REPO / values["COMPLETIONS_PREPROCESSING_CONFIG"]).is_file()
        assert values["MODEL"].startswith("/models/")
        # compose would read "$" as a variable, and quotes stay in the values.
        assert not any(c in "".join(values.values()) for c in "$\"'")


@pytest.mark.parametrize(
    ("example", "mode", "journal"),
    [
        ("one-token", "one-token", False),
        ("per-user", "per-user", False),
        ("journal", "per-user", True),
    ],
)
def test_env_examples_are_accepted_by_kodify(
    tmp_path: Path, example: str, mode: str, journal: bool
) -> None:
    """What the gateway's container gets passes `check --deploy` and gives the right mode."""
    gateway = compose_config(tmp_path, filled_env(example))["services"]["gateway"]
    env = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG")}
    env |= environment(gateway)
    env |= {
        "KODIFY_DATA_DIR": str(tmp_path / "data"),
        "KODIFY_METRICS_DIR": str(tmp_path / "metrics"),
        "KODIFY_CONFIG": str(DOCKER / "config.yml"),
    }
    script = (
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('check', '--deploy', '--fail-level', 'ERROR')\n"
        "from django.conf import settings\n"
        "from accounts.auth import auth_mode\n"
        "print('MODE', auth_mode().value)\n"
        "print('JOURNAL', settings.LOGS, 'journal' in settings.DATABASES)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**env, "DJANGO_SETTINGS_MODULE": "kodify_site.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "(kodify." not in output, output  # none of Kodify's own warnings either
    assert f"MODE {mode}" in output
    assert f"JOURNAL {journal} {journal}" in output


@pytest.mark.parametrize("example", EXAMPLES)
def test_env_examples_give_the_launcher_a_valid_vllm_command(tmp_path: Path, example: str) -> None:
    vllm = compose_config(tmp_path, filled_env(example))["services"]["vllm"]
    env = environment(vllm)
    plan = model_server.build_plan(env, check_model=False)
    argv = list(plan.argv)
    assert env["MODEL"] in argv
    assert argv[argv.index("--served-model-name") + 1] == env["SERVED_MODEL_NAME"]
    assert argv[argv.index("--port") + 1] == "8000"
    assert argv[argv.index("--gpu-memory-utilization") + 1] == env["GPUUTIL"]
    assert plan.env["HF_HUB_OFFLINE"] == "1"
    # Several GPUs, the guide's way of writing it.
    multi = model_server.build_plan(
        {**env, "ADDITIONAL_ARGS": "--tensor-parallel-size = 2"}, check_model=False
    )
    assert "--tensor-parallel-size" in " ".join(multi.argv)


def test_config_yml_names_the_compose_model_server() -> None:
    config = load_config(DOCKER / "config.yml", [])
    assert [u.url for u in config.upstreams] == ["http://vllm:8000"]
    for example in EXAMPLES:
        values = read_env_file(DOCKER / "env" / f"{example}.env")
        assert config.tabby_model_name == values["SERVED_MODEL_NAME"]
    assert "vllm" in yaml.safe_load(COMPOSE.read_text())["services"]


# --- the Dockerfiles -----------------------------------------------------------------------


def test_kodify_dockerfile_essentials() -> None:
    instructions = dockerfile_instructions(DOCKER / "Dockerfile")
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build stage and a slim runtime"
    assert re.search(r"\bAS build\b", froms[0], flags=re.IGNORECASE)
    runtime = stage(instructions, -1)
    build = stage(instructions, 0)

    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "the runtime stage sets a USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user.isdigit(), "numeric, so that Kubernetes' runAsNonRoot can verify it"

    assert any("collectstatic" in args for keyword, args in build if keyword == "RUN")
    assert any(
        keyword == "COPY" and "--from=build" in args and "/app" in args for keyword, args in runtime
    ), "the runtime takes the build stage's /app (with its staticfiles/)"

    healthchecks = [args for keyword, args in runtime if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/health" in healthchecks[0]

    cmd = [args for keyword, args in runtime if keyword == "CMD"][-1]
    assert "python -m kodify_site.serve" in cmd
    assert "--workers ${WORKERS:-4}" in cmd
    assert "--host 0.0.0.0 --port 8000" in cmd
    assert ("EXPOSE", "8000") in runtime
    envs = " ".join(args for keyword, args in runtime if keyword == "ENV")
    assert "KODIFY_DATA_DIR=/var/lib/kodify" in envs
    assert "KODIFY_METRICS_DIR=/run/kodify/metrics" in envs


def test_model_server_dockerfile_essentials() -> None:
    text = (DOCKER / "model-server" / "Dockerfile").read_text()
    instructions = dockerfile_instructions(DOCKER / "model-server" / "Dockerfile")
    version = re.search(r"^ARG VLLM_VERSION=(v\d+\.\d+\.\d+)$", text, flags=re.MULTILINE)
    assert version, "the vLLM image is pinned to a release"
    assert ("FROM", "vllm/vllm-openai:${VLLM_VERSION}") in instructions
    assert (
        "COPY",
        "docker/model-server/model_server.py docker/model-server/launch_plan.py /opt/kodify/",
    ) in instructions
    assert ("ENTRYPOINT", '["python3", "/opt/kodify/model_server.py"]') in instructions
    envs = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert "HF_HUB_OFFLINE=1" in envs
    assert any(k == "HEALTHCHECK" and "/health" in a for k, a in instructions)
    # The same vLLM release as the CPU build CI runs the suite against, where pinned.
    pinned = re.search(r"^VLLM_VERSION\s*\?=\s*(\S+)", (REPO / "Makefile").read_text(), re.M)
    if pinned:
        assert version.group(1) == "v" + pinned.group(1)


def test_build_context_keeps_local_state_out_and_sources_in() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (".venv", "data", ".git", "docker/.env", "staticfiles", "gateway/__pycache__"):
        assert dockerignored(path, patterns), f"{path} must stay out of the build context"
    for dockerfile in (DOCKER / "Dockerfile", DOCKER / "model-server" / "Dockerfile"):
        for keyword, args in dockerfile_instructions(dockerfile):
            if keyword != "COPY" or args.startswith("--from"):
                continue
            for source in shlex.split(args)[:-1]:
                assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}"
                assert not dockerignored(source, patterns), f"COPY {source} is dockerignored"


# --- the image's build step and command, run for real ----------------------------------


def copied_sources(destination: Path) -> None:
    """The build stage's COPY instructions, into ``destination`` (the image's /app)."""
    build = stage(dockerfile_instructions(DOCKER / "Dockerfile"), 0)
    for keyword, args in build:
        if keyword != "COPY":
            continue
        *sources, target = shlex.split(args)
        for source in sources:
            path = REPO / source
            into = destination / target.removeprefix("./")
            if path.is_dir():
                shutil.copytree(path, into, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                into.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, into / path.name)


@contextlib.contextmanager
def running(command: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kwargs,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def test_image_build_step_and_default_command(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The build stage's steps, then CMD through the entry point, as `docker run` would."""
    if os.environ.get("DB_URL"):
        request.getfixturevalue("django_db_setup")  # the server uses the test database
    app = tmp_path / "app"
    copied_sources(app)
    build = stage(dockerfile_instructions(DOCKER / "Dockerfile"), 0)
    bin_dir = str(Path(sys.executable).parent)
    path = f"{bin_dir}:{os.environ['PATH']}"
    base_env = server_environment(tmp_path, {"PATH": path})
    base_env.pop("PYTHONPATH", None)

    # The requirements list the build stage installs: pyproject.toml's dependencies.
    run_lines = [args for keyword, args in build if keyword == "RUN"]
    requirements = next(line for line in run_lines if "tomllib" in line)
    command = requirements.split(" > ")[0]
    listed = subprocess.run(
        ["sh", "-c", command], cwd=app, env=base_env, capture_output=True, text=True, check=True
    ).stdout.split()
    with (REPO / "pyproject.toml").open("rb") as handle:
        assert listed == tomllib.load(handle)["project"]["dependencies"]

    # collectstatic as the build stage runs it.
    collect = next(line for line in run_lines if "collectstatic" in line)
    collect = collect.split(" && ")[0]
    subprocess.run(["sh", "-c", collect], cwd=app, env=base_env, check=True, timeout=120)
    assert (app / "staticfiles" / "admin" / "css" / "base.css").is_file()

    # CMD through the entry point, with the image's environment (on a free local port).
    runtime = stage(dockerfile_instructions(DOCKER / "Dockerfile"), -1)
    cmd = next(args for keyword, args in reversed(runtime) if keyword == "CMD")
    port = free_port()
    cmd = cmd.replace("--host 0.0.0.0 --port 8000", f"--host 127.0.0.1 --port {port}")
    healthcheck = next(args for keyword, args in runtime if keyword == "HEALTHCHECK")
    probe = healthcheck.split(" CMD ", 1)[1].replace(":8000/", f":{port}/")
    env = {
        **base_env,
        "WORKERS": "2",
        "KODIFY_DATA_DIR": str(tmp_path / "var-lib-kodify"),
        "KODIFY_METRICS_DIR": str(tmp_path / "run-kodify-metrics"),
        "RUN_MIGRATIONS": "1",
    }
    with running(
        ["sh", str(DOCKER / "entrypoint.sh"), "/bin/sh", "-c", cmd], cwd=app, env=env
    ) as server:
        deadline = time.monotonic() + 90
        while True:
            check = subprocess.run(["sh", "-c", probe], cwd=app, env=env, capture_output=True)
            if check.returncode == 0:
                break
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "the health check never passed"
            time.sleep(0.5)
        os.killpg(server.pid, signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    assert "Application startup complete" in output
    assert f"Uvicorn running on http://127.0.0.1:{port}" in output
    assert output.count("Started server process") >= 2, "WORKERS=2 workers"
    assert (tmp_path / "run-kodify-metrics").is_dir()


def run_entrypoint(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The entry point running `env` instead of a server: what the server would be given."""
    return subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), "env"],
        env={
            "PATH": os.environ["PATH"],
            "KODIFY_DATA_DIR": str(tmp_path / "data"),
            "KODIFY_METRICS_DIR": str(tmp_path / "metrics"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_entrypoint_reports_a_folder_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_entrypoint(tmp_path, KODIFY_DATA_DIR=str(blocker / "data"))
    assert result.returncode == 1
    assert f"KODIFY_DATA_DIR={blocker / 'data'} is not writable" in result.stderr
    assert "PATH=" not in result.stdout, "the command did not run"


def test_entrypoint_finds_the_bundled_postgresql(tmp_path: Path) -> None:
    result = run_entrypoint(
        tmp_path, BUNDLED_POSTGRES_HOST="postgres", POSTGRES_PASSWORD="pg0123", DB_URL=""
    )
    assert result.returncode == 0, result.stderr
    env = dict(line.partition("=")[::2] for line in result.stdout.splitlines())
    assert env["DB_URL"] == "postgresql://kodify:pg0123@postgres:5432/kodify"
    # The password reaches Kodify in DB_URL only.
    assert "POSTGRES_PASSWORD" not in env and "BUNDLED_POSTGRES_HOST" not in env


def test_entrypoint_keeps_the_administrators_db_url(tmp_path: Path) -> None:
    own = "postgresql://someone:else@db.example.com:5432/other"
    result = run_entrypoint(
        tmp_path, BUNDLED_POSTGRES_HOST="postgres", POSTGRES_PASSWORD="", DB_URL=own
    )
    assert result.returncode == 0, result.stderr
    env = dict(line.partition("=")[::2] for line in result.stdout.splitlines())
    assert env["DB_URL"] == own


def test_entrypoint_asks_for_a_database_when_it_has_none(tmp_path: Path) -> None:
    result = run_entrypoint(tmp_path, BUNDLED_POSTGRES_HOST="postgres", POSTGRES_PASSWORD="")
    assert result.returncode == 1
    assert "set POSTGRES_PASSWORD in .env for the bundled PostgreSQL" in result.stderr
    assert "DB_URL for your own" in result.stderr
    assert "PATH=" not in result.stdout, "the command did not run"


def test_image_leaves_the_metrics_folder_to_its_tmpfs() -> None:
    """A folder in the image would keep its own mode under a tmpfs on some Docker versions."""
    runtime = stage(dockerfile_instructions(DOCKER / "Dockerfile"), -1)
    runs = " ".join(args for keyword, args in runtime if keyword == "RUN")
    assert "/run/kodify/metrics" not in runs
    assert re.search(r"mkdir -p [^&]*/run/kodify\b", runs)
    assert re.search(r"chown 10001:10001 [^&]*/run/kodify\b", runs)


# --- preflight.sh ----------------------------------------------------------------------------

GB = 1000**3
UBUNTU_22_04 = """PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
ID=ubuntu
ID_LIKE=debian
"""
PASSING_HOST = {
    "FAKE_OS_RELEASE": UBUNTU_22_04,
    "FAKE_UNAME": "Linux",
    "FAKE_DRIVER": "535.104.05",
    "FAKE_CUDA": "12.2",
    "FAKE_GPUS": "0, NVIDIA A100-SXM4-80GB, 81920",
    "FAKE_RAM_KB": str(64 * GB // 1024),
    "FAKE_DISK_KB": str(500 * GB // 1024),
    "FAKE_DISK_SIZE_KB": str(1000 * GB // 1024),
    "FAKE_SHM_KB": str(32 * GB // 1024),
    "FAKE_DOCKER_SERVER": "26.1.4",
    "FAKE_COMPOSE": "v2.27.0",
    "FAKE_K8S": "1.28.3",
    "FAKE_K8S_GPUS": "gpu-node-1=2\ncpu-node-1=",
}
FAKES = {
    "nvidia-smi": """
case "$*" in
  *driver_version*) [ -n "$FAKE_DRIVER" ] && echo "$FAKE_DRIVER" ;;
  *memory.total*) printf '%s\\n' "$FAKE_GPUS" ;;
  "") echo "| NVIDIA-SMI $FAKE_DRIVER  Driver Version: $FAKE_DRIVER  CUDA Version: $FAKE_CUDA |" ;;
esac
""",
    "nvidia-ctk": 'echo "NVIDIA Container Toolkit CLI version 1.16.2"\n',
    "docker": """
case "$1 $2" in
  "version --format")
    [ -n "$FAKE_DOCKER_SERVER" ] || { echo "Cannot connect to the Docker daemon" >&2; exit 1; }
    echo "$FAKE_DOCKER_SERVER" ;;
  "compose version")
    [ -n "$FAKE_COMPOSE" ] || { echo "docker: 'compose' is not a docker command." >&2; exit 1; }
    echo "$FAKE_COMPOSE" ;;
  "info --format")
    case "$3" in
      *DockerRootDir*) echo /var/lib/docker ;;
      *Runtimes*) echo '{"nvidia":{"path":"nvidia-container-runtime"},"runc":{"path":"runc"}}' ;;
    esac ;;
  *) exit 1 ;;
esac
""",
    "kubectl": """
case "$1" in
  version)
    [ -n "$FAKE_K8S" ] || { echo '{"clientVersion": {"gitVersion": "v1.30.1"}}'; exit 1; }
    printf '{\\n  "clientVersion": {"major": "1", "gitVersion": "v1.30.1"},\\n'
    printf '  "serverVersion": {"major": "1", "gitVersion": "v%s",\\n' "$FAKE_K8S"
    printf '    "platform": "linux/amd64"}\\n}\\n' ;;
  get) printf '%s\\n' "$FAKE_K8S_GPUS" ;;
esac
""",
    # The models' folder (under KODIFY_HOST_DIR) is on the images' filesystem, mounted at
    # /, unless FAKE_MODELS_FS, FAKE_MODELS_MOUNT and FAKE_MODELS_DEV say otherwise.
    "df": """
for path; do :; done
echo "Filesystem 1024-blocks Used Available Capacity Mounted on"
case "$path" in
  /dev/shm) echo "tmpfs $FAKE_SHM_KB 0 $FAKE_SHM_KB 0% /dev/shm" ;;
  "$KODIFY_HOST_DIR"*)
    echo "${FAKE_MODELS_FS:-/dev/nvme0n1p2} $FAKE_DISK_SIZE_KB 1000" \
      "${FAKE_MODELS_KB:-$FAKE_DISK_KB} 1% ${FAKE_MODELS_MOUNT:-/}" ;;
  *) echo "/dev/nvme0n1p2 $FAKE_DISK_SIZE_KB 1000 $FAKE_DISK_KB 1% /" ;;
esac
""",
    "stat": """
for path; do :; done
case "$path" in
  "$KODIFY_HOST_DIR"*) echo "${FAKE_MODELS_DEV:-66306}" ;;
  *) echo 66306 ;;
esac
""",
    "uname": 'echo "$FAKE_UNAME"\n',
}
# What preflight.sh may call from the system besides the fakes.
UTILITIES = ("sed", "awk", "head", "tr", "dirname", "find", "sort", "nproc")


@pytest.fixture
def preflight_host(tmp_path: Path) -> Any:
    fakes = tmp_path / "fake-bin"
    fakes.mkdir()
    for name, body in FAKES.items():
        write_script(fakes / name, body)
    utilities = tmp_path / "bin"
    utilities.mkdir()
    for name in UTILITIES:
        found = shutil.which(name)
        assert found, name
        (utilities / name).symlink_to(found)
    host_dir = tmp_path / "opt-mtsai"
    (host_dir / "models" / "Qwen2.5-Coder-7B-Instruct").mkdir(parents=True)
    (host_dir / "models" / "Qwen2.5-Coder-7B-Instruct" / "config.json").write_text("{}")
    shutil.copy(DOCKER / "config.yml", host_dir / "config.yml")
    env_file = tmp_path / "compose.env"
    env_file.write_text(filled_env("per-user"))

    def run(
        *args: str, without: tuple[str, ...] = (), **overrides: str
    ) -> subprocess.CompletedProcess[str]:
        for name in without:
            (fakes / name).unlink()
        values = {**PASSING_HOST, **overrides}
        meminfo = tmp_path / "meminfo"
        meminfo.write_text(f"MemTotal:       {values['FAKE_RAM_KB']} kB\nMemFree: 1 kB\n")
        os_release = tmp_path / "os-release"
        os_release.write_text(values["FAKE_OS_RELEASE"])
        env = {
            "PATH": f"{fakes}:{utilities}",
            "KODIFY_HOST_DIR": str(host_dir),
            "PREFLIGHT_MEMINFO": str(meminfo),
            "PREFLIGHT_OS_RELEASE": str(os_release),
            "PREFLIGHT_ENV_FILE": str(env_file),
            **values,
        }
        return subprocess.run(
            [shutil.which("bash") or "/bin/bash", str(DOCKER / "preflight.sh"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    run.host_dir = host_dir  # type: ignore[attr-defined]
    run.env_file = env_file  # type: ignore[attr-defined]
    return run


def failures(output: str) -> int:
    return sum(line.startswith("[FAIL]") for line in output.splitlines())


def fix_after(output: str, failure: str) -> str:
    """The fix lines that follow the [FAIL]/[WARN] line containing ``failure``."""
    lines = output.splitlines()
    index = next(i for i, line in enumerate(lines) if failure in line)
    fixes = []
    for line in lines[index + 1 :]:
        if not line.strip().startswith("fix:"):
            break
        fixes.append(line)
    assert fixes, f"no fix after {failure!r}:\n{output}"
    return "\n".join(fixes)


def test_preflight_passes_a_host_that_meets_the_requirements(preflight_host: Any) -> None:
    result = preflight_host()
    assert result.returncode == 0, result.stdout + result.stderr
    assert failures(result.stdout) == 0
    for line in (
        "[ OK ] NVIDIA driver 535.104.05 (>= 525.105.17)",
        "[ OK ] CUDA 12.2 (>= 12.0",
        "[ OK ] GPU memory 85.9 GB on 1 GPU(s) (>= 20 GB)",
        "[ OK ] NVIDIA Container Toolkit 1.16.2",
        "[ OK ] memory 64.0 GB (>= 28 GB)",
        "[ OK ] Docker 26.1.4 (>= 24.0.4)",
        "[ OK ] Docker Compose 2.27.0",
        "[ OK ] disk: 500.0 GB free on / for the images",
        "[ OK ] /dev/shm 32.0 GB (>= 10 GB)",
        "config.yml present",
        "[ OK ] weights in ",
        "[ OK ] database: the bundled PostgreSQL (COMPOSE_PROFILES=bundled-postgres)",
        "Preflight: all required checks passed",
    ):
        assert line in result.stdout, result.stdout


def test_preflight_accepts_the_minimum_versions(preflight_host: Any) -> None:
    result = preflight_host(
        FAKE_DRIVER="525.105.17",
        FAKE_CUDA="12.0",
        FAKE_DOCKER_SERVER="24.0.4",
        FAKE_GPUS="0, NVIDIA A10, 19073",
        FAKE_RAM_KB=str(28 * GB // 1024),
    )
    assert result.returncode == 0, result.stdout
    k8s = preflight_host("--kubernetes", FAKE_K8S="1.24.0")
    assert k8s.returncode == 0, k8s.stdout
    assert "[ OK ] Kubernetes 1.24.0 (>= 1.24)" in k8s.stdout


@pytest.mark.parametrize(
    ("overrides", "without", "failure", "fix"),
    [
        (
            {"FAKE_DRIVER": "470.82.01"},
            (),
            "[FAIL] NVIDIA driver 470.82.01 is older than 525.105.17",
            "nvidia-driver",
        ),
        ({}, ("nvidia-smi",), "[FAIL] NVIDIA driver: nvidia-smi not found", ">= 525.105.17"),
        ({"FAKE_CUDA": "11.8"}, (), "[FAIL] CUDA 11.8 is older than 12.0", "driver"),
        (
            {"FAKE_GPUS": "0, Tesla T4, 15360"},
            (),
            "[FAIL] GPU memory 16.1 GB is below 20 GB",
            "A100",
        ),
        (
            {"FAKE_RAM_KB": str(16 * GB // 1024)},
            (),
            "[FAIL] memory 16.0 GB is below 28 GB",
            "28 GB of RAM",
        ),
        (
            {"FAKE_DOCKER_SERVER": "20.10.7"},
            (),
            "[FAIL] Docker 20.10.7 is older than 24.0.4",
            "docs.docker.com",
        ),
        ({}, ("docker",), "[FAIL] Docker not found", "install Docker Engine >= 24.0.4"),
        (
            {"FAKE_DOCKER_SERVER": ""},
            (),
            "[FAIL] Docker: the Docker daemon does not answer",
            "systemctl enable --now docker",
        ),
        ({"FAKE_COMPOSE": ""}, (), "[FAIL] Docker Compose not found", "docker-compose-plugin"),
        (
            {},
            ("nvidia-ctk",),
            "[FAIL] NVIDIA Container Toolkit not found",
            "nvidia-ctk runtime configure --runtime=docker",
        ),
        ({"FAKE_DISK_KB": str(20 * GB // 1024)}, (), "[FAIL] disk: 20.0 GB free on /", "data-root"),
    ],
)
def test_preflight_names_each_missing_requirement_and_its_fix(
    preflight_host: Any,
    overrides: dict[str, str],
    without: tuple[str, ...],
    failure: str,
    fix: str,
) -> None:
    result = preflight_host(without=without, **overrides)
    assert result.returncode == 1, result.stdout
    assert failure in result.stdout, result.stdout
    assert fix in fix_after(result.stdout, failure)
    assert failures(result.stdout) == 1, result.stdout
    assert "Preflight: 1 check(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "without", "failure", "fix"),
    [
        (
            {"FAKE_K8S": "1.23.17"},
            (),
            "[FAIL] Kubernetes 1.23.17 is older than 1.24",
            "upgrade the cluster",
        ),
        ({"FAKE_K8S": ""}, (), "[FAIL] Kubernetes: kubectl cannot reach the cluster", "KUBECONFIG"),
        (
            {"FAKE_K8S_GPUS": "cpu-node-1=\ncpu-node-2=0"},
            (),
            "[FAIL] no node offers nvidia.com/gpu",
            "device plugin",
        ),
        ({}, ("kubectl",), "[FAIL] kubectl not found", "install kubectl"),
    ],
)
def test_preflight_on_kubernetes(
    preflight_host: Any,
    overrides: dict[str, str],
    without: tuple[str, ...],
    failure: str,
    fix: str,
) -> None:
    # Docker is not needed there: without it the Kubernetes checks alone decide.
    result = preflight_host("--kubernetes", without=("docker", *without), **overrides)
    assert result.returncode == 1, result.stdout
    assert failure in result.stdout, result.stdout
    assert fix in fix_after(result.stdout, failure)
    assert failures(result.stdout) == 1, result.stdout


def test_preflight_kubernetes_cluster_only(preflight_host: Any) -> None:
    result = preflight_host("--kubernetes", "--cluster-only", without=("nvidia-smi", "docker"))
    assert result.returncode == 0, result.stdout
    assert "[ OK ] Kubernetes 1.28.3 (>= 1.24)" in result.stdout
    assert "[ OK ] GPU nodes: gpu-node-1 (2 GPU)" in result.stdout
    assert "NVIDIA driver" not in result.stdout


def test_preflight_warnings_do_not_fail(preflight_host: Any) -> None:
    shutil.rmtree(preflight_host.host_dir / "models")
    result = preflight_host(
        FAKE_SHM_KB=str(64 * 1024**2 // 1024),
        FAKE_GPUS="0, NVIDIA RTX A4000, 16376\n1, NVIDIA RTX A4000, 16376",
    )
    assert result.returncode == 0, result.stdout
    assert "[WARN] /dev/shm is 0.1 GB, below 10 GB" in result.stdout
    assert "shm_size" in fix_after(result.stdout, "[WARN] /dev/shm")
    assert "[ OK ] GPU memory 34.3 GB on 2 GPU(s)" in result.stdout
    assert "--tensor-parallel-size 2" in fix_after(result.stdout, "[WARN] no single GPU")
    assert "[WARN] no model in" in result.stdout
    assert "MODEL=/models/" in fix_after(result.stdout, "[WARN] no model in")


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        (
            {"DB_URL": "postgresql://k:p@db.example.com/kodify", "POSTGRES_PASSWORD": ""},
            "[WARN] {env}: DB_URL names your own PostgreSQL, yet COMPOSE_PROFILES starts",
        ),
        (
            {"COMPOSE_PROFILES": "", "DB_URL": "postgresql://k:p@db.example.com/kodify"},
            "[ OK ] database: your own PostgreSQL (DB_URL in {env})",
        ),
        ({"COMPOSE_PROFILES": ""}, "[FAIL] {env}: no database: DB_URL is empty"),
        ({"POSTGRES_PASSWORD": ""}, "[FAIL] {env}: the bundled PostgreSQL needs POSTGRES_PASSWORD"),
    ],
)
def test_preflight_checks_the_env_files_database(
    preflight_host: Any, changes: dict[str, str], line: str
) -> None:
    """The bundled PostgreSQL's profile and DB_URL must agree (the last value wins)."""
    env_file = preflight_host.env_file
    env_file.write_text(
        env_file.read_text() + "".join(f"{name}={value}\n" for name, value in changes.items())
    )
    result = preflight_host()
    assert line.format(env=env_file) in result.stdout, result.stdout
    assert result.returncode == (1 if "[FAIL]" in line else 0), result.stdout
    if "[FAIL]" in line or "[WARN]" in line:
        assert fix_after(result.stdout, line.format(env=env_file)[:40])


def test_preflight_without_an_env_file_says_how_to_make_one(preflight_host: Any) -> None:
    preflight_host.env_file.unlink()
    result = preflight_host()
    assert result.returncode == 0, result.stdout
    warning = f"[WARN] {preflight_host.env_file} not found"
    assert "cp docker/env/per-user.env" in fix_after(result.stdout, warning)


def test_preflight_config_yml_made_a_folder_by_docker(preflight_host: Any) -> None:
    config = preflight_host.host_dir / "config.yml"
    config.unlink()
    config.mkdir()
    result = preflight_host()
    assert result.returncode == 1
    assert "rmdir" in fix_after(result.stdout, "config.yml is a folder")


def test_preflight_usage_errors(preflight_host: Any) -> None:
    assert preflight_host("--no-such-option").returncode == 2
    assert preflight_host("--cluster-only").returncode == 2
    assert preflight_host("--help").returncode == 0


@pytest.mark.parametrize(
    ("overrides", "without"),
    [
        ({}, ()),
        # Without stat, df's device name tells the same.
        ({}, ("stat",)),
        # A bind mount: df names the source differently, the device number is the same.
        ({"FAKE_MODELS_FS": "/dev/disk/by-uuid/0f3a9c"}, ()),
    ],
)
def test_preflight_counts_one_filesystem_once_across_two_mount_points(
    preflight_host: Any, overrides: dict[str, str], without: tuple[str, ...]
) -> None:
    # No weights yet: the images (40 GB) and the weights (30 GB) both need room on it.
    shutil.rmtree(preflight_host.host_dir / "models")
    result = preflight_host(
        without=without,
        FAKE_DISK_KB=str(50 * GB // 1024),
        FAKE_MODELS_MOUNT="/opt",
        **overrides,
    )
    assert result.returncode == 1, result.stdout
    failure = (
        "[FAIL] disk: 50.0 GB free on / and /opt (one filesystem, /dev/nvme0n1p2), "
        "the images and the weights need 70.0 GB"
    )
    assert failure in result.stdout, result.stdout
    assert "data-root" in fix_after(result.stdout, failure)
    assert failures(result.stdout) == 1, result.stdout
    assert "for the weights" not in result.stdout


def test_preflight_enough_room_on_one_filesystem_across_two_mount_points(
    preflight_host: Any,
) -> None:
    shutil.rmtree(preflight_host.host_dir / "models")
    result = preflight_host(FAKE_DISK_KB=str(80 * GB // 1024), FAKE_MODELS_MOUNT="/opt")
    assert result.returncode == 0, result.stdout
    assert (
        "[ OK ] disk: 80.0 GB free on / and /opt (one filesystem, /dev/nvme0n1p2) for the "
        "images and the weights (>= 70.0 GB)"
    ) in result.stdout


def test_preflight_counts_two_filesystems_apart(preflight_host: Any) -> None:
    shutil.rmtree(preflight_host.host_dir / "models")
    result = preflight_host(
        FAKE_DISK_KB=str(50 * GB // 1024),
        FAKE_MODELS_MOUNT="/opt",
        FAKE_MODELS_FS="/dev/sdb1",
        FAKE_MODELS_DEV="2065",
    )
    assert result.returncode == 0, result.stdout
    assert "[ OK ] disk: 50.0 GB free on / for the images (>= 40 GB)" in result.stdout
    assert "[ OK ] disk: 50.0 GB free on /opt for the weights (>= 30 GB)" in result.stdout


@pytest.mark.parametrize(
    ("args", "without", "root", "fix"),
    [
        ((), (), "/var/lib/docker", '"data-root" in /etc/docker/daemon.json'),
        (("--kubernetes",), ("docker",), "/var/lib/containerd", "/etc/containerd/config.toml"),
    ],
)
def test_preflight_disk_smaller_than_the_guides_minimum(
    preflight_host: Any, args: tuple[str, ...], without: tuple[str, ...], root: str, fix: str
) -> None:
    # Room enough for the images on it (the weights are in place): only its size fails.
    result = preflight_host(
        *args,
        without=without,
        FAKE_DISK_SIZE_KB=str(60 * GB // 1024),
        FAKE_DISK_KB=str(55 * GB // 1024),
    )
    assert result.returncode == 1, result.stdout
    failure = f"[FAIL] disk: /, where the images are kept ({root}), is 60.0 GB, below 100 GB"
    assert failure in result.stdout, result.stdout
    assert fix in fix_after(result.stdout, failure)
    assert "at least 100 GB" in fix_after(result.stdout, failure)
    assert failures(result.stdout) == 1, result.stdout


def test_preflight_disk_size_minimum_is_adjustable(preflight_host: Any) -> None:
    result = preflight_host(
        FAKE_DISK_SIZE_KB=str(60 * GB // 1024),
        FAKE_DISK_KB=str(55 * GB // 1024),
        KODIFY_MIN_DISK_GB="50",
    )
    assert result.returncode == 0, result.stdout
    assert "[ OK ] disk: /, where the images are kept, is 60.0 GB (>= 50 GB)" in result.stdout


UBUNTU_24_04 = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\n'
UBUNTU_20_04 = 'PRETTY_NAME="Ubuntu 20.04.6 LTS"\nNAME="Ubuntu"\nVERSION_ID="20.04"\nID=ubuntu\n'
UBUNTU_18_04 = 'PRETTY_NAME="Ubuntu 18.04.6 LTS"\nNAME="Ubuntu"\nVERSION_ID="18.04"\nID=ubuntu\n'
ASTRA = (
    'PRETTY_NAME="Astra Linux"\nNAME="Astra Linux"\nID=astra\nID_LIKE=debian\n'
    "VARIANT_ID=astra\nVERSION_ID=1.7_x86-64\nVERSION_CODENAME=1.7_x86-64\n"
)
ORACLE = (
    'NAME="Oracle Linux Server"\nVERSION="9.4"\nID="ol"\nID_LIKE="fedora"\n'
    'VERSION_ID="9.4"\nPRETTY_NAME="Oracle Linux Server 9.4"\n'
)
FEDORA = (
    'NAME="Fedora Linux"\nVERSION="40 (Workstation Edition)"\nID=fedora\nVERSION_ID=40\n'
    'PRETTY_NAME="Fedora Linux 40 (Workstation Edition)"\n'
)


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        ({}, "[ OK ] operating system: Ubuntu 22.04.4 LTS"),
        ({"FAKE_OS_RELEASE": UBUNTU_24_04}, "[ OK ] operating system: Ubuntu 24.04.1 LTS"),
        ({"FAKE_OS_RELEASE": UBUNTU_20_04}, "[ OK ] operating system: Ubuntu 20.04.6 LTS"),
        ({"FAKE_OS_RELEASE": ASTRA}, "[ OK ] operating system: Astra Linux"),
        ({"FAKE_OS_RELEASE": ORACLE}, "[ OK ] operating system: Oracle Linux Server 9.4"),
        (
            {"FAKE_OS_RELEASE": FEDORA},
            "[WARN] operating system: Fedora Linux 40 (Workstation Edition) is not one of",
        ),
        (
            {"FAKE_OS_RELEASE": UBUNTU_18_04},
            "[WARN] operating system: Ubuntu 18.04.6 LTS, older than Ubuntu 20.04",
        ),
        (
            {"PREFLIGHT_OS_RELEASE": "/nonexistent/os-release"},
            "[WARN] operating system: cannot read /nonexistent/os-release",
        ),
    ],
)
def test_preflight_operating_system_on_linux(
    preflight_host: Any, overrides: dict[str, str], line: str
) -> None:
    # Another distribution is a warning: the host may still run the containers.
    result = preflight_host(**overrides)
    assert result.returncode == 0, result.stdout
    assert line in result.stdout, result.stdout
    assert result.stdout.count("operating system") == 1, result.stdout
    if line.startswith("[WARN]"):
        fix = fix_after(result.stdout, line)
        for supported in ("Ubuntu 24.04 LTS", "22.04.4", "20.04.6", "Oracle Linux", "Astra Linux"):
            assert supported in fix


def test_preflight_fails_off_linux(preflight_host: Any) -> None:
    result = preflight_host(FAKE_UNAME="Darwin")
    assert result.returncode == 1, result.stdout
    failure = "[FAIL] operating system: Darwin, not Linux"
    assert failure in result.stdout, result.stdout
    assert "Ubuntu 24.04 LTS" in fix_after(result.stdout, failure)
    assert failures(result.stdout) == 1, result.stdout


def test_preflight_cluster_only_does_not_check_the_workstation(preflight_host: Any) -> None:
    result = preflight_host(
        "--kubernetes",
        "--cluster-only",
        without=("docker",),
        FAKE_UNAME="Darwin",
        FAKE_DISK_SIZE_KB=str(60 * GB // 1024),
    )
    assert result.returncode == 0, result.stdout
    assert "operating system" not in result.stdout
    assert "disk" not in result.stdout


# --- build, push, save, load with a fake docker -------------------------------------------

FAKE_DOCKER = """
echo "$*" >> "$FAKE_DOCKER_LOG"
case "$1" in
  image) case " $FAKE_MISSING " in *" $3 "*) exit 1 ;; esac ;;
  pull)
    case " $FAKE_UNPULLABLE " in *" $2 "*) echo "pull access denied for $2" >&2; exit 1 ;; esac ;;
  save)
    printf 'image:%s' "$2"
    case " $FAKE_SAVE_FAILS " in *" $2 "*) echo "write: no space left" >&2; exit 1 ;; esac ;;
  load) gzip -dc "$3" | sed 's/^image:/Loaded image: /'; echo ;;
esac
"""


@pytest.fixture
def fake_docker(tmp_path: Path) -> Any:
    docker = write_script(tmp_path / "docker", FAKE_DOCKER)
    log = tmp_path / "docker.log"

    def run(script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("KODIFY_", "VLLM_"))}
        return subprocess.run(
            ["bash", str(DOCKER / script), *args],
            env={
                **base,
                "DOCKER": str(docker),
                "FAKE_DOCKER_LOG": str(log),
                "KODIFY_REGISTRY": "kodify",
                **env,
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    run.calls = lambda: log.read_text().splitlines() if log.exists() else []  # type: ignore[attr-defined]
    return run


def test_build_tags_both_images_with_the_version(fake_docker: Any) -> None:
    result = fake_docker("build.sh", "--pull")
    assert result.returncode == 0, result.stderr
    v = __version__
    assert fake_docker.calls() == [
        f"build --file docker/Dockerfile --build-arg KODIFY_VERSION={v} "
        f"--tag kodify/kodify:{v} --tag kodify/kodify:latest --pull .",
        f"build --file docker/model-server/Dockerfile --build-arg KODIFY_VERSION={v} "
        f"--tag kodify/kodify-model-server:{v} --tag kodify/kodify-model-server:latest --pull .",
    ]


def test_push_to_a_private_registry(fake_docker: Any) -> None:
    result = fake_docker("push.sh", "artifactory.mts.ai/kodify/", "--with-deps")
    assert result.returncode == 0, result.stderr
    v = __version__
    calls = fake_docker.calls()
    for image in (f"kodify:{v}", f"kodify-model-server:{v}"):
        assert f"tag kodify/{image} artifactory.mts.ai/kodify/{image}" in calls
        assert f"push artifactory.mts.ai/kodify/{image}" in calls
    for image in ("postgres:16", "redis:7.4"):
        assert f"push artifactory.mts.ai/kodify/{image}" in calls
    assert "KODIFY_REGISTRY=artifactory.mts.ai/kodify" in result.stdout

    missing = fake_docker("push.sh", "r.example/k", FAKE_MISSING=f"kodify/kodify:{v}")
    assert missing.returncode == 1 and "docker/build.sh" in missing.stderr
    assert fake_docker("push.sh").returncode == 2


def test_save_and_load_for_an_air_gapped_host(fake_docker: Any, tmp_path: Path) -> None:
    v = __version__
    saved = fake_docker("save.sh", "out")
    assert saved.returncode == 0, saved.stderr
    out = tmp_path / "out"
    files = {
        f"kodify-{v}.tar.gz",
        f"kodify-model-server-{v}.tar.gz",
        "postgres-16.tar.gz",
        "redis-7.4.tar.gz",
    }
    assert {p.name for p in out.iterdir()} == files | {"SHA256SUMS"}
    assert gzip.decompress((out / f"kodify-{v}.tar.gz").read_bytes()) == (
        f"image:kodify/kodify:{v}".encode()
    )
    assert len((out / "SHA256SUMS").read_text().splitlines()) == 4

    loaded = fake_docker("load.sh", "out")
    assert loaded.returncode == 0, loaded.stderr
    loads = [call for call in fake_docker.calls() if call.startswith("load")]
    assert sorted(loads) == sorted(f"load --input out/{name}" for name in files)
    assert f"KODIFY_REGISTRY=kodify KODIFY_VERSION={v}" in loaded.stdout

    (out / "redis-7.4.tar.gz").write_bytes(gzip.compress(b"image:tampered"))
    assert fake_docker("load.sh", "out").returncode == 1
    small = fake_docker("save.sh", "small", "--without-model-server")
    assert small.returncode == 0, small.stderr
    assert f"kodify-model-server-{v}.tar.gz" not in {p.name for p in (tmp_path / "small").iterdir()}


def test_load_refuses_a_folder_that_was_not_saved_completely(
    fake_docker: Any, tmp_path: Path
) -> None:
    assert fake_docker("save.sh", "out").returncode == 0
    out = tmp_path / "out"

    (out / "stray-1.0.tar.gz").write_bytes(gzip.compress(b"image:stray"))
    stray = fake_docker("load.sh", "out")
    assert stray.returncode == 1
    assert "stray-1.0.tar.gz is not listed in" in stray.stderr
    (out / "stray-1.0.tar.gz").unlink()

    (out / "SHA256SUMS").unlink()
    before = len([c for c in fake_docker.calls() if c.startswith("load")])
    refused = fake_docker("load.sh", "out")
    assert refused.returncode == 1
    assert "has no SHA256SUMS" in refused.stderr and "--no-checksums" in refused.stderr
    assert len([c for c in fake_docker.calls() if c.startswith("load")]) == before
    forced = fake_docker("load.sh", "--no-checksums", "out")
    assert forced.returncode == 0, forced.stderr
    assert fake_docker("load.sh", "--bogus").returncode == 2


def test_save_checks_every_image_before_writing_anything(fake_docker: Any, tmp_path: Path) -> None:
    v = __version__
    missing = f"kodify/kodify:{v} kodify/kodify-model-server:{v} postgres:16"
    result = fake_docker("save.sh", "out", "--no-pull", FAKE_MISSING=missing)
    assert result.returncode == 1, result.stderr
    assert not (tmp_path / "out").exists()
    assert not any(call.startswith("save") for call in fake_docker.calls())
    lines = result.stderr.splitlines()
    assert "3 image(s) missing, nothing written to out" in lines[0]
    for image, fix in (
        (f"kodify/kodify:{v}", "docker/build.sh"),
        (f"kodify/kodify-model-server:{v}", "docker/build.sh"),
        ("postgres:16", "pull postgres:16"),
    ):
        assert sum(line.strip().startswith(f"{image}:") for line in lines) == 1, result.stderr
        assert fix in next(line for line in lines if line.strip().startswith(f"{image}:"))
    assert "redis" not in result.stderr

    # A folder that was there stays as it was.
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    again = fake_docker("save.sh", "kept", FAKE_MISSING=f"kodify/kodify:{v}")
    assert again.returncode == 1
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]


def test_save_pulls_what_it_may_before_writing_and_names_what_it_cannot(
    fake_docker: Any, tmp_path: Path
) -> None:
    v = __version__
    result = fake_docker(
        "save.sh",
        "out",
        FAKE_MISSING=f"artifactory.mts.ai/kodify/kodify-model-server:{v} postgres:16 redis:7.4",
        FAKE_UNPULLABLE="redis:7.4",
        KODIFY_REGISTRY="artifactory.mts.ai/kodify",
    )
    assert result.returncode == 1
    assert not (tmp_path / "out").exists()
    calls = fake_docker.calls()
    assert "pull postgres:16" in calls and "pull redis:7.4" in calls
    assert not any(call.startswith(("save", "pull artifactory")) for call in calls)
    assert "2 image(s) missing" in result.stderr
    # A registry's images may be pulled from it too.
    assert "docker/build.sh, or pull it from your registry" in result.stderr
    assert "redis:7.4: not here, and pulling it failed" in result.stderr
    assert "postgres" not in result.stderr

    pulled = fake_docker("save.sh", "out", FAKE_MISSING="postgres:16 redis:7.4")
    assert pulled.returncode == 0, pulled.stderr
    calls = fake_docker.calls()
    assert max(i for i, c in enumerate(calls) if c.startswith("pull")) < min(
        i for i, c in enumerate(calls) if c.startswith("save")
    )


def test_save_failing_midway_leaves_no_folder_that_looks_complete(
    fake_docker: Any, tmp_path: Path
) -> None:
    failed = fake_docker("save.sh", "out", FAKE_SAVE_FAILS="postgres:16")
    assert failed.returncode != 0
    assert not (tmp_path / "out").exists()
    assert "saving failed" in failed.stderr

    # Over an earlier, complete save: its SHA256SUMS must not vouch for the new files.
    out = tmp_path / "earlier"
    assert fake_docker("save.sh", "earlier").returncode == 0
    assert (out / "SHA256SUMS").exists()
    failed = fake_docker("save.sh", "earlier", FAKE_SAVE_FAILS="redis:7.4")
    assert failed.returncode != 0
    names = {p.name for p in out.iterdir()}
    assert "SHA256SUMS" not in names
    assert not any(name.endswith(".part") for name in names), names
    assert fake_docker("load.sh", "earlier").returncode == 1


# --- scripts -----------------------------------------------------------------------------------


def test_every_script_parses() -> None:
    scripts = [path for path in DOCKER.rglob("*.sh") if "k8s" not in path.relative_to(DOCKER).parts]
    assert {p.name for p in scripts} >= {
        "build.sh",
        "push.sh",
        "save.sh",
        "load.sh",
        "preflight.sh",
        "images.sh",
        "entrypoint.sh",
        "init-journal.sh",
    }
    for path in scripts:
        shell = "sh" if path.read_text().startswith("#!/bin/sh") else "bash"
        result = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{path}: {result.stderr}"
        if path.name != "images.sh":  # sourced, not run
            assert os.access(path, os.X_OK), f"{path} is not executable"
    dash = shutil.which("dash")
    if dash:  # the image's /bin/sh
        entrypoint = str(DOCKER / "entrypoint.sh")
        assert subprocess.run([dash, "-n", entrypoint]).returncode == 0


def test_journal_database_init_script(tmp_path: Path) -> None:
    """docker/postgres/init-journal.sh against the test run's PostgreSQL."""
    db_url = os.environ.get("DB_URL", "")
    psql = shutil.which("psql")
    if not db_url.startswith("postgres") or not psql:
        pytest.skip("needs PostgreSQL (DB_URL) and psql")
    url = urlsplit(db_url)
    name = f"kodify_journal_{uuid.uuid4().hex[:8]}"
    env = {
        "PATH": os.environ["PATH"],
        "PGHOST": url.hostname or "127.0.0.1",
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
        "PGPASSWORD": url.password or "",
        "PGDATABASE": "postgres",
        "BUNDLED_DB_HOST": url.hostname or "127.0.0.1",
        "LOGS": "True",
        "LOGS_DB_HOST": url.hostname or "127.0.0.1",
        "LOGS_DB_PORT": str(url.port or 5432),
        "LOGS_DB_NAME": name,
        "LOGS_DB_USERNAME": name,
        "LOGS_DB_PASSWORD": "it's-a-secret",
    }
    script = str(DOCKER / "postgres" / "init-journal.sh")

    def sql(query: str) -> str:
        return subprocess.run(
            [psql, "-Atc", query], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        for _ in range(2):  # idempotent: it runs at every `docker compose up`
            result = subprocess.run(["bash", script], env=env, capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
            assert "is ready" in result.stdout
        assert (
            sql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{name}'") == name
        )
        assert sql(f"SELECT rolcanlogin FROM pg_roles WHERE rolname = '{name}'") == "t"

        off = subprocess.run(
            ["bash", script], env={**env, "LOGS": "False"}, capture_output=True, text=True
        )
        assert off.returncode == 0 and "nothing to prepare" in off.stdout
        elsewhere = subprocess.run(
            ["bash", script],
            env={**env, "LOGS_DB_HOST": "journal.example.com"},
            capture_output=True,
            text=True,
        )
        assert elsewhere.returncode == 0 and "nothing to prepare" in elsewhere.stdout
        no_password = subprocess.run(
            ["bash", script], env={**env, "LOGS_DB_PASSWORD": ""}, capture_output=True, text=True
        )
        assert no_password.returncode == 1 and "LOGS_DB_PASSWORD is empty" in no_password.stderr
    finally:
        subprocess.run([psql, "-qc", f'DROP DATABASE IF EXISTS "{name}"'], env=env, check=False)
        subprocess.run([psql, "-qc", f'DROP ROLE IF EXISTS "{name}"'], env=env, check=False)
