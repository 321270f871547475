"""The upstream health checks: what they store, what they bump, the Celery task and its
beat schedule."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django_celery_beat.models import PeriodicTask

from gateway import selectors, services, tasks
from gateway.models import SOURCE_CONFIG, ServedModel, UpstreamServer
from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer
from kodify_site.testing import free_port, server_environment

pytestmark = [pytest.mark.smoke, pytest.mark.django_db, pytest.mark.usefixtures("fresh_stamps")]


@pytest.fixture
def start_fake() -> Iterator[Callable[..., FakeUpstreamServer]]:
    started: list[FakeUpstreamServer] = []

    def start(**options: Any) -> FakeUpstreamServer:
        server = FakeUpstreamServer(FakeUpstream(**options)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def upstream(url: str, **fields: Any) -> UpstreamServer:
    fields.setdefault("source", SOURCE_CONFIG)
    return UpstreamServer.objects.create(url=url, **fields)


def test_a_healthy_upstream_is_stored_with_its_models(
    start_fake: Callable[..., FakeUpstreamServer], committed: Any
) -> None:
    fake = start_fake(models=("coder-7b", "chat-70b"), max_model_len=8192)
    row = upstream(fake.url)
    updated_at = row.updated_at

    with committed():
        results = services.check_upstreams()

    assert [(r.url, r.healthy, r.error) for r in results] == [(fake.url, True, "")]
    row.refresh_from_db()
    assert row.healthy is True and row.last_error == "" and row.last_check is not None
    assert [card["id"] for card in row.models] == ["coder-7b", "chat-70b"]
    assert row.models[0]["max_model_len"] == 8192
    # A health check is not a console edit: the source and updated_at stay.
    assert row.source == SOURCE_CONFIG and row.updated_at == updated_at
    assert set(ServedModel.objects.values_list("name", flat=True)) == {"coder-7b", "chat-70b"}
    assert ServedModel.objects.get(name="coder-7b").last_seen == row.last_check
    # New models: both stamps (a worker must learn the models' settings rows too).
    health, config = selectors.health_version(), selectors.config_version()
    assert health and config

    with committed():
        services.check_upstreams()

    # Nothing new: only the health stamp moves.
    assert selectors.health_version() not in ("", health)
    assert selectors.config_version() == config


def test_an_upstream_that_refuses_connections_is_down_and_keeps_its_models(
    committed: Any,
) -> None:
    cards = [{"id": "coder-7b", "object": "model"}]
    row = upstream(f"http://127.0.0.1:{free_port()}", healthy=True, models=cards)

    with committed():
        (result,) = services.check_upstreams(timeout=2)

    assert not result.healthy and result.error == "connection refused or host unreachable"
    row.refresh_from_db()
    assert row.healthy is False and row.last_error == result.error
    assert row.models == cards  # what it served last: the router's rest decides meanwhile
    assert selectors.health_version() and not selectors.config_version()


def test_a_refused_key_is_an_error_and_the_default_key_is_sent(
    start_fake: Callable[..., FakeUpstreamServer], settings: Any
) -> None:
    fake = start_fake(api_key="the-right-key")
    wrong = upstream(fake.url, api_key="a-wrong-key")

    (result,) = services.check_upstreams()

    assert not result.healthy
    assert result.error == "/v1/models refused Kodify's API key (HTTP 401)"
    assert "a-wrong-key" not in result.error

    wrong.api_key = ""
    wrong.save()
    settings.KODIFY_UPSTREAM_API_KEY = None
    settings.VLLM_API_KEY = "the-right-key"
    (result,) = services.check_upstreams()
    assert result.healthy  # the fake answers 401 to any other key


def test_disabled_upstreams_are_not_checked_unless_named(
    start_fake: Callable[..., FakeUpstreamServer],
) -> None:
    fake = start_fake()
    row = upstream(fake.url, enabled=False)

    assert services.check_upstreams() == []
    row.refresh_from_db()
    assert row.healthy is None

    (result,) = services.check_upstreams(upstream_ids=[row.pk])
    assert result.healthy


def test_several_upstreams_are_checked_at_once(
    start_fake: Callable[..., FakeUpstreamServer],
) -> None:
    fakes = [start_fake(models=(f"model-{i}",)) for i in range(3)]
    for position, fake in enumerate(fakes):
        upstream(fake.url, position=position)
    upstream(f"http://127.0.0.1:{free_port()}", position=9)

    results = services.check_upstreams(timeout=2)

    assert [r.healthy for r in results] == [True, True, True, False]
    assert [list(r.models) for r in results[:3]] == [["model-0"], ["model-1"], ["model-2"]]


def test_the_task_checks_and_returns_what_it_found(
    start_fake: Callable[..., FakeUpstreamServer],
) -> None:
    fake = start_fake(models=("coder-7b",))
    upstream(fake.url)

    found = tasks.check_upstreams.apply().get(timeout=30)

    assert found == [
        {
            "url": fake.url,
            "healthy": True,
            "error": None,
            "models": ["coder-7b"],
            "checked_at": found[0]["checked_at"],
        }
    ]
    assert UpstreamServer.objects.get(url=fake.url).healthy is True


# -- the beat schedule ---------------------------------------------------------------------


def test_the_migration_created_the_beat_schedule() -> None:
    task = PeriodicTask.objects.select_related("interval").get(name="Check upstream health")

    assert task.task == tasks.check_upstreams.name == "gateway.check_upstreams"
    assert task.enabled
    assert task.interval is not None
    assert task.interval.period == "seconds"
    assert task.interval.every == max(1, round(settings.KODIFY_MODEL_REFRESH_INTERVAL))
    assert task.expire_seconds == task.interval.every
    assert selectors.health_schedule() == task


@pytest.mark.skipif(not os.environ.get("DB_URL"), reason="the beat process needs the test database")
def test_celery_beat_sends_the_health_check(tmp_path: Path) -> None:
    """The real `celery -A kodify_site beat` with the database scheduler sends the task
    (to an in-memory broker: nothing lands in a shared Redis)."""
    env = server_environment(tmp_path, {})
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "kodify_site",
            "-b",
            "memory://",
            "beat",
            "-l",
            "info",
            "--max-interval",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    sent = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "Sending due task Check upstream health (gateway.check_upstreams)" in line:
                sent.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert sent.wait(60), "".join(lines)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        reader.join(5)
