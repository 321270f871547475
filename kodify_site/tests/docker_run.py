"""Building Kodify's images and running them with Docker, for the tests that do it for real.

Shared by ``test_docker_deploy.py`` (``make test-docker``) and ``test_docker_model_server.py``
(``make test-docker-vllm``).  Containers use the host's network only; every name (compose
project, database, containers, folders) is the run's own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from kodify_site import __version__
from kodify_site.testing import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"
# Bounds, not expectations: each wait ends as soon as its condition holds.
BUILD_TIMEOUT_S = 900
HEALTHY_TIMEOUT_S = 240
# Each poll runs docker or opens a connection: twice a second is enough.
POLL_S = 0.5
TASK_TIMEOUT_S = 120
ADMIN_DB_URL = os.environ.get(
    "KODIFY_DOCKER_ADMIN_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# --- the Docker daemon ------------------------------------------------------------------


def _daemon_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    return result.returncode == 0


def ensure_docker_daemon() -> None:
    """A daemon that answers, started here (as root) when there is none; else a skip."""
    if _daemon_answers():
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        pytest.skip("no Docker daemon answers and none can be started here (dockerd, as root)")
    descriptor, log = tempfile.mkstemp(prefix="kodify-dockerd-", suffix=".log")
    # A machine service like PostgreSQL: it outlives the test run, as it would under systemd.
    with os.fdopen(descriptor, "w") as output:
        subprocess.Popen([dockerd], stdout=output, stderr=output, start_new_session=True)
    if not wait_until(_daemon_answers, 60, every=POLL_S):
        pytest.skip(f"dockerd did not start within 60 s (its log: {log})")


# --- the run ------------------------------------------------------------------------------


@dataclass
class Timeline:
    start: float = field(default_factory=time.monotonic)
    marks: list[tuple[str, float]] = field(default_factory=list)

    def mark(self, what: str) -> None:
        self.marks.append((what, time.monotonic() - self.start))

    def report(self) -> str:
        lines, before = [], 0.0
        for what, at in self.marks:
            lines.append(f"  {at:7.1f} s  (+{at - before:5.1f})  {what}")
            before = at
        return "\n".join(lines)


def run(*command: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


@dataclass
class Deployment:
    project: Path
    name: str
    port: int
    database_url: str
    timeline: Timeline
    image: str
    image_bytes: int
    containers: dict[str, str] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return run(
            "docker-compose",
            "--project-name",
            self.name,
            "--project-directory",
            str(self.project),
            "-f",
            str(self.project / "compose.yml"),
            "-f",
            str(self.project / "test" / "compose.host.yml"),
            *args,
            timeout=timeout,
            env=compose_environment(),
        )

    def container(self, service: str) -> str:
        if service not in self.containers:
            found = self.compose("ps", "-q", service).stdout.strip()
            assert found, f"no {service} container"
            self.containers[service] = found
        return self.containers[service]

    def inspect(self, service: str, template: str) -> str:
        return run("docker", "inspect", "-f", template, self.container(service)).stdout.strip()

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service).stdout

    def wait_healthy(self, service: str) -> None:
        """Until Docker's health check of ``service`` passes (its log on failure)."""
        wait_for(
            lambda: self.inspect(service, "{{.State.Health.Status}}") == "healthy",
            HEALTHY_TIMEOUT_S,
            f"{service} healthy",
            lambda: self.logs(service),
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def compose_environment() -> dict[str, str]:
    """This process's environment less what would steer compose or Kodify from outside .env."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("KODIFY_", "COMPOSE_", "DOCKER_"))
        and name not in ("DB_URL", "REDIS_URL")
    }


def build_images(timeline: Timeline) -> tuple[str, int]:
    base = run(str(DOCKER_DIR / "test" / "base-image.sh"), timeout=BUILD_TIMEOUT_S)
    base_image = base.stdout.strip().splitlines()[-1]
    timeline.mark(f"base image {base_image} ready")
    image = f"kodify-test/kodify:{__version__}"
    run(
        "docker",
        "build",
        "--network",
        "host",
        "--build-arg",
        f"PYTHON_IMAGE={base_image}",
        "-f",
        str(DOCKER_DIR / "Dockerfile"),
        "-t",
        image,
        str(REPO),
        timeout=BUILD_TIMEOUT_S,
    )
    size = int(run("docker", "image", "inspect", "-f", "{{.Size}}", image).stdout.strip())
    timeline.mark(f"gateway image {image} built ({size / 1e6:.0f} MB)")
    return image, size


def write_project(
    folder: Path, *, port: int, database_url: str, upstream_url: str, tabby_model: str
) -> str:
    """The folder an administrator deploys from, and the compose project's name."""
    shutil.copy(DOCKER_DIR / "compose.yml", folder / "compose.yml")
    shutil.copy(DOCKER_DIR / "compose.override.yml", folder / "compose.override.yml")
    shutil.copytree(DOCKER_DIR / "postgres", folder / "postgres")
    shutil.copytree(DOCKER_DIR / "test", folder / "test")
    (folder / "config.yml").write_text(
        f"upstreams:\n  {upstream_url}:\n    name: upstream\ntabby:\n  model_name: {tabby_model}\n"
    )
    name = f"kodify-test-{uuid.uuid4().hex[:10]}"
    # The guide's per-user example, its blanks filled in, on the administrator's own
    # PostgreSQL and Redis: the bundled ones are left out.
    lines = []
    for line in (DOCKER_DIR / "env" / "per-user.env").read_text().splitlines():
        key = line.partition("=")[0]
        if key not in ("COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME", "KODIFY_REGISTRY", "WORKERS"):
            lines.append(line)
    overrides = {
        "COMPOSE_PROJECT_NAME": name,
        "KODIFY_REGISTRY": "kodify-test",
        "KODIFY_VERSION": __version__,
        "KODIFY_SECRET_KEY": secrets.token_hex(32),
        "POSTGRES_PASSWORD": "",
        "DB_URL": database_url,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "KODIFY_REDIS_PREFIX": name,
        "KODIFY_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "KODIFY_CONFIG_FILE": str(folder / "config.yml"),
        "KODIFY_TEST_PORT": str(port),
        "KODIFY_WAIT_SECONDS": "60",
        "WORKERS": "2",
    }
    kept = [line for line in lines if line.partition("=")[0] not in overrides]
    env_text = "\n".join(kept + [f"{key}={value}" for key, value in overrides.items()]) + "\n"
    (folder / ".env").write_text(env_text)
    return name


def wait_for(condition: Any, timeout: float, what: str, on_failure: Any = None) -> Any:
    """``condition``'s first true answer within ``timeout``; else an AssertionError naming
    ``what``, with ``on_failure()`` (a log) to tell why."""
    value = wait_until(condition, timeout, every=POLL_S)
    if not value:
        details = on_failure() if on_failure else ""
        raise AssertionError(f"{what}: not within {timeout:.0f} s\n{details}")
    return value


@contextlib.contextmanager
def compose_deployment(
    *, upstream_url: str, tabby_model: str, timeline: Timeline
) -> Iterator[Deployment]:
    """compose.yml's project, its images built, on a database of its own; taken down after."""
    ensure_docker_daemon()
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is missing: `make install-dev` installs it")
    image, image_bytes = build_images(timeline)
    database = f"kodify_docker_{uuid.uuid4().hex[:10]}"
    database_url = ADMIN_DB_URL.rsplit("/", 1)[0] + f"/{database}"
    folder = Path(tempfile.mkdtemp(prefix="kodify-compose-"))
    port = free_port()
    name = write_project(
        folder,
        port=port,
        database_url=database_url,
        upstream_url=upstream_url,
        tabby_model=tabby_model,
    )
    found = Deployment(
        project=folder,
        name=name,
        port=port,
        database_url=database_url,
        timeline=timeline,
        image=image,
        image_bytes=image_bytes,
    )
    try:
        yield found
    finally:
        try:
            found.compose("down", "-v", "--remove-orphans", timeout=300)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            with psycopg.connect(ADMIN_DB_URL, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        timeline.mark("down -v")
