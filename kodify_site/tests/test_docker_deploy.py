"""The Docker deployment built and run for real (``make test-docker``).

The gateway image is built from ``docker/Dockerfile`` on a stand-in for the Python base
image made from Debian's packages (``docker/test/base-image.sh``: no image registry is
reachable here), then compose starts ``compose.yml``'s gateway, worker and beat, as the
administrator guide does, with ``docker/test/compose.host.yml`` putting them on this
machine's network, against this machine's PostgreSQL (a database of the run's own, named
by ``DB_URL`` in ``.env``: the administrator's own PostgreSQL) and Redis.  Read-only roots,
the tmpfs folders and the per-service environments are compose.yml's own.

Checked: ``/health``; the first administrator's login to the console (the password that
``kodify_bootstrap_admin`` prints); a user and a token made with the guide's commands and a
chat completion with it through the fake upstream; the worker answering a ping; the upstream
health check that beat schedules, run by the worker; ``down -v`` leaving nothing behind.
The timeline (build, start, healthy, first answer) is printed.

Opt-in (``KODIFY_DOCKER_TESTS=1``, set by ``make test-docker``); skipped with the reason
where no Docker daemon answers and none can be started.
"""

from __future__ import annotations

import os
import re
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

import httpx
import psycopg
import pytest

from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer
from kodify_site import __version__
from kodify_site.testing import free_port

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"
SERVICES = ("gateway", "worker", "beat")
# Bounds, not expectations: each wait ends as soon as its condition holds.
BUILD_TIMEOUT_S = 900
HEALTHY_TIMEOUT_S = 240
TASK_TIMEOUT_S = 120
ADMIN_DB_URL = os.environ.get(
    "KODIFY_DOCKER_ADMIN_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("KODIFY_DOCKER_TESTS") != "1",
        reason="the Docker deployment runs with `make test-docker` (KODIFY_DOCKER_TESTS=1)",
    ),
    # A cold build of the image and the whole compose run; each wait inside has its bound.
    pytest.mark.timeout(2 * BUILD_TIMEOUT_S + 3 * HEALTHY_TIMEOUT_S),
]


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
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _daemon_answers():
            return
        time.sleep(0.5)
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
    upstream: FakeUpstream
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


def write_project(folder: Path, *, port: int, database_url: str, upstream_url: str) -> str:
    """The folder an administrator deploys from, and the compose project's name."""
    shutil.copy(DOCKER_DIR / "compose.yml", folder / "compose.yml")
    shutil.copy(DOCKER_DIR / "compose.override.yml", folder / "compose.override.yml")
    shutil.copytree(DOCKER_DIR / "postgres", folder / "postgres")
    shutil.copytree(DOCKER_DIR / "test", folder / "test")
    (folder / "config.yml").write_text(
        f"upstreams:\n  {upstream_url}:\n    name: fake\ntabby:\n  model_name: fake-model\n"
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
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            details = on_failure() if on_failure else ""
            raise AssertionError(f"{what}: not within {timeout:.0f} s\n{details}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    ensure_docker_daemon()
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is missing: `make install-dev` installs it")
    timeline = Timeline()
    image, image_bytes = build_images(timeline)
    upstream = FakeUpstream(chunks=4)
    server = FakeUpstreamServer(upstream).start()
    database = f"kodify_docker_{uuid.uuid4().hex[:10]}"
    database_url = ADMIN_DB_URL.rsplit("/", 1)[0] + f"/{database}"
    folder = Path(tempfile.mkdtemp(prefix="kodify-compose-"))
    port = free_port()
    name = write_project(folder, port=port, database_url=database_url, upstream_url=server.url)
    found = Deployment(
        project=folder,
        name=name,
        port=port,
        database_url=database_url,
        upstream=upstream,
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
            server.stop()
            shutil.rmtree(folder, ignore_errors=True)
            with psycopg.connect(ADMIN_DB_URL, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        timeline.mark("down -v")
        print(f"\nDocker deployment timeline ({name}):\n{timeline.report()}")


# --- the test -------------------------------------------------------------------------------


def test_compose_deployment_end_to_end(deployment: Deployment) -> None:
    d = deployment
    health = "{{.State.Health.Status}}"

    # The gateway alone first: worker and beat wait for it to be healthy in compose.yml,
    # an order that --no-deps (Redis and PostgreSQL are this machine's) leaves to us.
    d.compose("up", "-d", "--no-deps", "gateway")
    d.timeline.mark("gateway container started")
    wait_for(
        lambda: d.inspect("gateway", health) == "healthy",
        HEALTHY_TIMEOUT_S,
        "the gateway healthy",
        lambda: d.logs("gateway"),
    )
    d.timeline.mark("gateway healthy (migrated, serving)")

    answer = httpx.get(d.url("/health"), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] in ("ok", "degraded"), answer.text

    # The promises compose.yml makes: read-only roots, the tmpfs folders of the user,
    # only Kodify's variables (no model-server or PostgreSQL settings) in its containers.
    assert d.inspect("gateway", "{{.HostConfig.ReadonlyRootfs}}") == "true"
    environment = d.inspect("gateway", "{{range .Config.Env}}{{println .}}{{end}}")
    names = {line.partition("=")[0] for line in environment.splitlines() if line}
    assert "DB_URL" in names and "KODIFY_SECRET_KEY" in names
    for foreign in ("MODEL", "GPUUTIL", "MAX_MODEL_LEN", "NVIDIA_VISIBLE_DEVICES"):
        assert foreign not in names, f"{foreign} handed to the gateway"
    probe = d.compose(
        "exec",
        "-T",
        "gateway",
        "sh",
        "-c",
        "touch /run/kodify/metrics/probe /tmp/probe && ! touch /app/probe 2>/dev/null && echo ok",
    )
    assert probe.stdout.strip() == "ok", probe.stdout + probe.stderr

    # The first administrator, as the guide has it, and a login to the console.
    bootstrap = d.compose(
        "exec",
        "-T",
        "gateway",
        "python",
        "manage.py",
        "kodify_bootstrap_admin",
        "--url",
        d.url("/admin/"),
    )
    password = re.search(r"password:\s*(\S+)", bootstrap.stdout)
    assert password, bootstrap.stdout
    with httpx.Client(base_url=d.url(""), timeout=10, follow_redirects=True) as browser:
        form = browser.get("/admin/login/")
        assert form.status_code == 200
        token = browser.cookies["csrftoken"]
        logged_in = browser.post(
            "/admin/login/?next=/admin/",
            data={
                "username": "admin",
                "password": password.group(1),
                "csrfmiddlewaretoken": token,
                "next": "/admin/",
            },
            headers={"Referer": d.url("/admin/login/")},
        )
        assert logged_in.status_code == 200
        assert str(logged_in.url).endswith("/admin/"), logged_in.url
        assert "logout" in logged_in.text.lower()
        static = browser.get("/static/admin/css/base.css")
        assert static.status_code == 200 and "body" in static.text
    d.timeline.mark("administrator logged in")

    # A user and a token with the guide's commands, then a chat completion with it.
    d.compose("exec", "-T", "gateway", "python", "manage.py", "kodify_user", "create", "ada")
    issued = d.compose(
        "exec", "-T", "gateway", "python", "manage.py", "kodify_token", "issue", "ada"
    )
    api_token = issued.stdout.strip().splitlines()[-1]
    chat = httpx.post(
        d.url("/v1/chat/completions"),
        headers={"Authorization": f"Bearer {api_token}"},
        json={"model": "fake-model", "messages": [{"role": "user", "content": "hello"}]},
        timeout=30,
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["content"]
    assert any(r.path == "/v1/chat/completions" for r in d.upstream.records)
    refused = httpx.post(
        d.url("/v1/chat/completions"),
        headers={"Authorization": "Bearer not-a-token"},
        json={"model": "fake-model", "messages": [{"role": "user", "content": "hello"}]},
        timeout=30,
    )
    assert refused.status_code == 401
    d.timeline.mark("chat completion answered through the fake upstream")

    # Worker and beat: the worker answers a ping; the health check that beat schedules
    # (due at once on a first start) runs on the worker and stores the upstream's state.
    before = _last_check(d.database_url)
    d.compose("up", "-d", "--no-deps", "worker", "beat")
    d.timeline.mark("worker and beat containers started")
    wait_for(
        lambda: d.inspect("worker", health) == "healthy",
        HEALTHY_TIMEOUT_S,
        "the worker healthy (celery inspect ping)",
        lambda: d.logs("worker"),
    )
    d.timeline.mark("worker healthy")
    wait_for(
        lambda: (
            (after := _last_check(d.database_url)) is not None
            and (before is None or after > before)
        ),
        TASK_TIMEOUT_S,
        "beat's health check run by the worker",
        lambda: d.logs("beat") + d.logs("worker"),
    )
    d.timeline.mark("beat's health check done by the worker")
    assert "gateway.check_upstreams" in d.logs("worker")
    for service in SERVICES:
        assert d.inspect(service, "{{.State.Restarting}}") == "false", d.logs(service)
        assert d.inspect(service, "{{.RestartCount}}") == "0", d.logs(service)
        assert d.inspect(service, "{{.HostConfig.ReadonlyRootfs}}") == "true"


def _last_check(database_url: str) -> Any:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT max(last_check) FROM gateway_upstreamserver").fetchone()
    return row[0] if row else None
