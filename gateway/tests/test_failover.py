"""Faults between Kodify and its upstreams: replicas that die, hang or come back.

Replicas here are fake vLLM servers in processes of their own, so that one can be killed
with SIGKILL in the middle of the load, as a crashed vLLM would be.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.tests.fake_upstream import DEFAULT_MODEL
from kodify_site.testing import WAIT_S, KodifyServer, journal_entry, wait_until

pytestmark = pytest.mark.smoke

REPO = Path(__file__).resolve().parents[2]
BODY = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hi"}]}
START_TIMEOUT = WAIT_S


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Replica:
    """A fake vLLM in its own process, on a fixed port (so it can come back there)."""

    port: int
    args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Replica:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.tests.fake_upstream",
                "--port",
                str(self.port),
                *self.args,
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_until(self._answers, START_TIMEOUT):
            raise RuntimeError(f"the fake replica on {self.port} did not start")
        return self

    def _answers(self) -> bool:
        try:
            httpx.get(self.url + "/health", timeout=1).raise_for_status()
        except httpx.HTTPError:
            return False
        return True

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def requests_seen(self) -> int:
        return int(httpx.get(self.url + "/_fake/stats", timeout=5).json()["requests"])


@pytest.fixture
def replicas() -> Iterator[Callable[..., Replica]]:
    started: list[Replica] = []

    def start(*args: str) -> Replica:
        replica = Replica(free_port(), args).start()
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.kill()


def serve(kodify_server: Any, *urls: str, **env: str) -> KodifyServer:
    server: KodifyServer = kodify_server({"KODIFY_UPSTREAMS": ",".join(urls), **env})
    return server


def healthy_count(server: KodifyServer) -> int:
    return int(httpx.get(server.url + "/health", timeout=5).json()["upstreams_healthy"])


def test_killing_one_of_two_replicas_under_load_fails_no_request(
    kodify_server: Any, replicas: Callable[..., Replica]
) -> None:
    # Each answer takes ~0.2 s, so requests are in flight on the replica when it dies.
    first, second = replicas("--chunks", "4", "--delay", "0.05"), replicas("--chunks", "4")
    server = serve(kodify_server, first.url, second.url)
    assert wait_until(lambda: healthy_count(server) == 2)

    def one(_: int) -> int:
        return httpx.post(server.url + "/v1/chat/completions", json=BODY, timeout=60).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(one, i) for i in range(200)]
        assert wait_until(lambda: first.requests_seen() >= 10)
        first.kill()
        statuses = [future.result() for future in futures]
    assert statuses.count(200) == len(statuses), {s: statuses.count(s) for s in set(statuses)}
    assert second.requests_seen() > 0


def test_a_replica_that_hangs_before_answering_is_left_for_the_other(
    kodify_server: Any, replicas: Callable[..., Replica]
) -> None:
    hanging = replicas("--first-byte-delay", "60")
    working = replicas()
    server = serve(
        kodify_server,
        hanging.url,
        working.url,
        KODIFY_UPSTREAM_FIRST_BYTE_TIMEOUT="1",
        KODIFY_UPSTREAM_COOLDOWN="30",
        KODIFY_MODEL_REFRESH_INTERVAL="600",  # no health check restores it meanwhile
    )
    assert wait_until(lambda: healthy_count(server) == 2)
    statuses = [
        httpx.post(server.url + "/v1/chat/completions", json=BODY, timeout=30).status_code
        for _ in range(6)
    ]
    assert statuses == [200] * 6
    # It cost at most one request a first-byte timeout; then the replica rested.
    assert hanging.requests_seen() == 1
    assert working.requests_seen() == 6


def test_a_replica_that_comes_back_gets_traffic_after_the_next_health_check(
    kodify_server: Any, replicas: Callable[..., Replica]
) -> None:
    first, second = replicas(), replicas()
    server = serve(kodify_server, first.url, second.url, KODIFY_MODEL_REFRESH_INTERVAL="1")
    assert wait_until(lambda: healthy_count(server) == 2)
    first.kill()
    for _ in range(4):  # whichever replica it picks, every request is served
        response = httpx.post(server.url + "/v1/chat/completions", json=BODY, timeout=30)
        assert response.status_code == 200
    assert wait_until(lambda: healthy_count(server) == 1)
    served_before = second.requests_seen()
    first.start()  # the same port: the operator restarted it
    assert wait_until(lambda: healthy_count(server) == 2)
    for _ in range(6):
        assert httpx.post(server.url + "/v1/chat/completions", json=BODY).status_code == 200
    assert first.requests_seen() > 0  # the new process counts from zero
    assert second.requests_seen() - served_before < 10


def test_all_replicas_down_is_a_quick_503_with_retry_after_and_a_journal_row(
    kodify_server: Any, replicas: Callable[..., Replica]
) -> None:
    first, second = replicas(), replicas()
    server = serve(
        kodify_server,
        first.url,
        second.url,
        LOGS="true",
        KODIFY_JOURNAL_FLUSH_SECONDS="0.05",
        KODIFY_UPSTREAM_FIRST_BYTE_TIMEOUT="120",
    )
    assert wait_until(lambda: healthy_count(server) == 2)
    first.kill()
    second.kill()
    response = httpx.post(server.url + "/v1/chat/completions", json=BODY, timeout=20)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "upstream_unavailable"
    # The reason is the health check's or the proxy's, whichever saw it first.
    assert error["message"].startswith("Every upstream serving model 'fake-model' is down (")
    for replica in (first, second):  # the operator's business: in the log, not the answer
        assert str(replica.port) not in error["message"]
    row = journal_entry(server, response.headers["x-request-id"])
    assert row is not None and row["status"] == 503
