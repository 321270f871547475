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
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer
from kodify_site.tests.docker_run import (
    BUILD_TIMEOUT_S,
    HEALTHY_TIMEOUT_S,
    TASK_TIMEOUT_S,
    Deployment,
    Timeline,
    compose_deployment,
    wait_for,
)

SERVICES = ("gateway", "worker", "beat")

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("KODIFY_DOCKER_TESTS") != "1",
        reason="the Docker deployment runs with `make test-docker` (KODIFY_DOCKER_TESTS=1)",
    ),
    # A cold build of the image and the whole compose run; each wait inside has its bound.
    pytest.mark.timeout(2 * BUILD_TIMEOUT_S + 3 * HEALTHY_TIMEOUT_S),
]


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[FakeUpstreamServer]:
    server = FakeUpstreamServer(FakeUpstream(chunks=4)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def upstream(upstream_server: FakeUpstreamServer) -> FakeUpstream:
    return upstream_server.fake


@pytest.fixture(scope="module")
def deployment(upstream_server: FakeUpstreamServer) -> Iterator[Deployment]:
    timeline = Timeline()
    with compose_deployment(
        upstream_url=upstream_server.url, tabby_model="fake-model", timeline=timeline
    ) as found:
        yield found
    print(f"\nDocker deployment timeline ({found.name}):\n{timeline.report()}")


# --- the test -------------------------------------------------------------------------------


def test_compose_deployment_end_to_end(deployment: Deployment, upstream: FakeUpstream) -> None:
    d = deployment

    # The gateway alone first: worker and beat wait for it to be healthy in compose.yml,
    # an order that --no-deps (Redis and PostgreSQL are this machine's) leaves to us.
    d.compose("up", "-d", "--no-deps", "gateway")
    d.timeline.mark("gateway container started")
    d.wait_healthy("gateway")
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
    assert any(r.path == "/v1/chat/completions" for r in upstream.records)
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
    d.wait_healthy("worker")  # its check: celery inspect ping
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
