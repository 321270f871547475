"""Prometheus metrics (gateway/metrics.py) and ``GET /metrics`` (gateway/metrics_endpoint.py).

The first tests record and render in this process, in a metrics folder of their own; the
last ones start real servers, two of them with two uvicorn workers whose numbers must
add up in one scrape (each worker's files in the metrics folder).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import metrics, metrics_files
from gateway.errors import OpenAIError
from gateway.metrics_endpoint import MetricsConsumer
from gateway.operators import from_this_machine
from gateway.tests.fake_upstream import FakeUpstreamServer
from gateway.tests.test_per_user import hold_request
from kodify_site.testing import KodifyServer, wait_until

pytestmark = pytest.mark.smoke

CHAT = "/v1/chat/completions"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- recording and rendering in this process ----------------------------------------------


@pytest.fixture
def metrics_dir(tmp_path: Path, settings: Any) -> Iterator[Path]:
    """A metrics folder of the test's own."""
    directory = tmp_path / "metrics"
    settings.KODIFY_METRICS_DIR = directory
    settings.KODIFY_JOURNAL_SPOOL_DIR = tmp_path / "spool"
    metrics.reset_for_tests()
    yield directory
    metrics.reset_for_tests()


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The upstream table the metrics read: one healthy replica serving fake-model."""
    replica = upstream("http://10.0.0.1:8000", models={"fake-model": {}})
    built = SimpleNamespace(upstreams=[replica])
    monkeypatch.setattr(metrics, "_built_table", lambda: built)
    return built


def upstream(url: str, **state: Any) -> SimpleNamespace:
    fields: dict[str, Any] = {"models": {}, "outstanding": 0, "healthy": True, "enabled": True}
    fields.update(state)
    return SimpleNamespace(display_url=url, **fields)


def scrape(accept: str | None = None) -> Samples:
    body, _ = metrics.render(accept)
    return parse(body.decode())


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_a_request_counts_by_route_model_and_status(metrics_dir: Path, table: Any) -> None:
    metrics.start()  # reads the table's models
    endpoint = metrics.request_started("/v1/chat/completions/")
    assert endpoint == CHAT  # the route, whatever the trailing slash
    metrics.request_finished(endpoint, "fake-model", 200, 0.3, 0.08)
    for model in ("no-such-model", ""):
        metrics.request_finished(metrics.request_started(CHAT), model, 404, 0.002)
    metrics.request_finished(metrics.request_started("/v1/../etc/passwd"), "", 404, 0.001)

    samples = scrape()
    chat = {"endpoint": CHAT, "model": "fake-model"}
    assert value(samples, "kodify_requests_total", **chat, status="200") == 1
    assert value(samples, "kodify_requests_total", endpoint=CHAT, model="other", status="404") == 1
    assert value(samples, "kodify_requests_total", endpoint=CHAT, model="none", status="404") == 1
    assert value(samples, "kodify_requests_total", endpoint="other", model="none", status="404")
    assert value(samples, "kodify_request_duration_seconds_count", **chat) == 1
    assert value(samples, "kodify_request_duration_seconds_sum", **chat) == pytest.approx(0.3)
    assert value(samples, "kodify_request_duration_seconds_bucket", **chat, le="0.25") == 0
    assert value(samples, "kodify_request_duration_seconds_bucket", **chat, le="0.5") == 1
    assert value(samples, "kodify_time_to_first_token_seconds_bucket", **chat, le="0.075") == 0
    assert value(samples, "kodify_time_to_first_token_seconds_bucket", **chat, le="0.1") == 1
    # A request without a first token (not streamed) makes no TTFT series.
    other = {"endpoint": CHAT, "model": "other"}
    assert value(samples, "kodify_request_duration_seconds_count", **other) == 1
    assert value(samples, "kodify_time_to_first_token_seconds_count", **other) is None


def test_a_model_the_table_just_learnt_is_no_other(metrics_dir: Path, table: Any) -> None:
    metrics.start()
    table.upstreams[0].models = {"fake-model": {}, "new-model": {}}  # since the last publish
    metrics.request_finished(metrics.request_started(CHAT), "new-model", 200, 0.1)
    samples = scrape()
    assert value(samples, "kodify_requests_total", endpoint=CHAT, model="new-model", status="200")


def test_histogram_buckets_span_milliseconds_to_minutes(metrics_dir: Path, table: Any) -> None:
    for seconds in (0.004, 0.25, 0.2501, 45.0, 450.0, 4000.0):
        metrics.request_finished(metrics.request_started("/v1/models"), "", 200, seconds, seconds)
    samples = scrape()
    labels = {"endpoint": "/v1/models", "model": "none"}

    def bucket(name: str, le: str) -> float | None:
        return value(samples, f"{name}_bucket", **labels, le=le)

    latency = "kodify_request_duration_seconds"
    assert bucket(latency, "0.005") == 1
    assert bucket(latency, "0.25") == 2  # a value on a bound counts in that bucket
    assert bucket(latency, "0.5") == 3
    assert bucket(latency, "30.0") == 3
    assert bucket(latency, "60.0") == 4
    assert bucket(latency, "600.0") == 5
    assert bucket(latency, "+Inf") == 6
    assert value(samples, f"{latency}_sum", **labels) == pytest.approx(4495.5041)
    ttft = "kodify_time_to_first_token_seconds"
    assert bucket(ttft, "0.025") == 1
    assert bucket(ttft, "0.3") == 3
    assert bucket(ttft, "300.0") == 4
    assert bucket(ttft, "+Inf") == 6
    assert metrics.LATENCY_BUCKETS[0] <= 0.01 and metrics.LATENCY_BUCKETS[-1] >= 300
    assert 0.1 in metrics.TTFT_BUCKETS and metrics.TTFT_BUCKETS[-1] >= 120


def test_in_flight_requests(metrics_dir: Path, table: Any) -> None:
    first = metrics.request_started(CHAT)
    metrics.request_started(CHAT)
    metrics.request_started("/v1/completions")
    metrics.request_finished(first, "fake-model", 200, 0.1)
    samples = scrape()
    assert value(samples, "kodify_requests_in_flight", endpoint=CHAT) == 1
    assert value(samples, "kodify_requests_in_flight", endpoint="/v1/completions") == 1


def test_retries_and_authentication_failures(metrics_dir: Path, table: Any) -> None:
    replica: Any = table.upstreams[0]
    metrics.retry(replica, "timeout")
    metrics.retry(replica, "unreachable")
    metrics.retry(replica, "http_500")
    metrics.retry(replica, "made up")  # never a label of its own
    metrics.auth_failure("token_revoked")
    metrics.auth_failure("token_revoked")
    metrics.auth_failure("anything else")
    samples = scrape()
    url = replica.display_url
    for reason in ("timeout", "unreachable", "http_500", "other"):
        assert value(samples, "kodify_upstream_retries_total", upstream=url, reason=reason) == 1
    assert value(samples, "kodify_auth_failures_total", code="token_revoked") == 2
    assert value(samples, "kodify_auth_failures_total", code="other") == 1


def test_upstream_health_and_outstanding_requests(metrics_dir: Path, table: Any) -> None:
    table.upstreams[0].outstanding = 3
    down = upstream("http://10.0.0.2:8000", healthy=False)
    table.upstreams.append(down)
    table.upstreams.append(upstream("http://10.0.0.3:8000", enabled=False))
    samples = scrape()
    assert value(samples, "kodify_upstream_healthy", upstream="http://10.0.0.1:8000") == 1
    assert value(samples, "kodify_upstream_outstanding_requests", upstream="http://10.0.0.1:8000")
    assert value(samples, "kodify_upstream_healthy", upstream=down.display_url) == 0
    assert value(samples, "kodify_upstream_healthy", upstream="http://10.0.0.3:8000") is None

    table.upstreams.remove(down)  # taken out in the console
    samples = scrape()
    assert math.isnan(value(samples, "kodify_upstream_healthy", upstream=down.display_url) or 0)
    assert value(samples, "kodify_upstream_outstanding_requests", upstream=down.display_url) == 0


def test_journal_queue_and_spool(
    metrics_dir: Path, table: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    spool = Path(settings.KODIFY_JOURNAL_SPOOL_DIR)
    (spool / "events").mkdir(parents=True)
    (spool / "spool-1-aaaa.jsonl").write_bytes(b"x" * 100)
    (spool / "spool-2-bbbb.jsonl").write_bytes(b"x" * 20)
    (spool / "rejected-1.jsonl").write_bytes(b"x" * 1000)  # set aside, not waiting
    (spool / "events" / "spool-1-cccc.jsonl").write_bytes(b"x" * 7)
    monkeypatch.setattr("journal.recorder.queued_records", lambda: 3)
    samples = scrape()
    assert value(samples, "kodify_journal_queue_records") == 3
    assert value(samples, "kodify_journal_spool_bytes", spool="requests") == 120
    assert value(samples, "kodify_journal_spool_bytes", spool="events") == 7


def test_openmetrics_on_request(metrics_dir: Path, table: Any) -> None:
    metrics.request_finished(metrics.request_started(CHAT), "fake-model", 200, 0.1)
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    body, content_type = metrics.render(None)
    assert content_type.startswith("text/plain")
    _, content_type = metrics.render("application/openmetrics-text; version=0.0.1")
    assert content_type.startswith("text/plain")  # a version before 1.0: the text format


# -- the folder: several processes, dead ones, a new server -------------------------------


def write_file(path: Path, name: str, labels: dict[str, str], number: float) -> None:
    """A metric file as another process would have left it (a series added to it)."""
    numbers = metrics_files.read_numbers(path)
    numbers.setdefault(name, {})[tuple(labels.values())] = [number]
    metrics_files.write_numbers(path, metrics_files.encode(numbers))


@contextlib.contextmanager
def live_process(directory: Path, pid: int = 424242) -> Iterator[None]:
    """Another worker, as far as the folder can tell: its lock file, locked."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f".pid-{pid}", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        yield
    finally:
        os.close(fd)  # it dies


def test_a_new_server_starts_from_an_empty_folder(metrics_dir: Path, table: Any) -> None:
    metrics_dir.mkdir(parents=True)
    labels = {"endpoint": CHAT, "model": "fake-model", "status": "200"}
    its_totals = metrics_files.totals_path(metrics_dir, 99999)
    write_file(its_totals, "kodify_requests", labels, 41)
    (metrics_dir / ".pid-99999").touch()  # its process is gone: nobody holds the lock
    (metrics_dir / "counter_99999.db").touch()  # an earlier Kodify's prometheus-client file
    metrics.request_finished(metrics.request_started(CHAT), "fake-model", 200, 0.1)
    assert value(scrape(), "kodify_requests_total", **labels) == 1
    assert not its_totals.exists()
    assert not (metrics_dir / "counter_99999.db").exists()


def test_workers_add_up_and_dead_ones_keep_only_their_counters(
    metrics_dir: Path, table: Any
) -> None:
    """Another live worker and the files it wrote: its counter adds to ours; once it is
    dead its gauges go, its counter stays."""
    with live_process(metrics_dir):
        labels = {"endpoint": CHAT, "model": "fake-model", "status": "200"}
        write_file(metrics_files.totals_path(metrics_dir, 424242), "kodify_requests", labels, 5)
        its_gauges = metrics_files.live_path(metrics_dir, 424242)
        in_flight = {"endpoint": CHAT}
        write_file(its_gauges, "kodify_requests_in_flight", in_flight, 2)
        write_file(its_gauges, "kodify_worker_processes", {}, 1)
        replica = {"upstream": "http://10.0.0.1:8000"}
        write_file(its_gauges, "kodify_upstream_healthy", replica, 0)  # ours finds it healthy
        metrics.request_started(CHAT)
        metrics.request_finished(metrics.request_started(CHAT), "fake-model", 200, 0.1)
        samples = scrape()
        assert value(samples, "kodify_requests_total", **labels) == 6
        assert value(samples, "kodify_requests_in_flight", **in_flight) == 3
        assert value(samples, "kodify_worker_processes") == 2
        assert value(samples, "kodify_upstream_healthy", **replica) == 0
    samples = scrape()
    assert value(samples, "kodify_requests_total", **labels) == 6
    assert value(samples, "kodify_requests_in_flight", **in_flight) == 1
    assert value(samples, "kodify_worker_processes") == 1
    assert value(samples, "kodify_upstream_healthy", **replica) == 1
    assert not its_gauges.exists()
    assert metrics_files.totals_path(metrics_dir, 424242).exists()
    assert not (metrics_dir / ".pid-424242").exists()


def test_a_stopped_worker_leaves_its_counts_not_its_gauges(metrics_dir: Path, table: Any) -> None:
    metrics.request_started(CHAT)
    metrics.request_finished(metrics.request_started(CHAT), "fake-model", 200, 0.1)
    with live_process(metrics_dir):  # another worker serves on
        metrics.stop()  # the end of a worker (its last numbers go to its files first)
        assert not metrics_files.live_path(metrics_dir, os.getpid()).exists()
        assert metrics_files.totals_path(metrics_dir, os.getpid()).exists()
        samples = scrape()  # this process again, as a worker uvicorn started anew
    labels = {"endpoint": CHAT, "model": "fake-model", "status": "200"}
    assert value(samples, "kodify_requests_total", **labels) == 1
    assert value(samples, "kodify_requests_in_flight", endpoint=CHAT) is None
    assert value(samples, "kodify_worker_processes") == 1
    metrics.request_finished(metrics.request_started(CHAT), "fake-model", 200, 0.1)
    assert value(scrape(), "kodify_requests_total", **labels) == 2  # on from its last count


def test_an_unusable_folder_falls_back_to_this_process(
    tmp_path: Path, settings: Any, metrics_dir: Path, table: Any, caplog: Any
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.KODIFY_METRICS_DIR = blocker / "metrics"
    metrics.logger.addHandler(caplog.handler)  # "kodify" does not propagate
    try:
        metrics.request_finished(metrics.request_started(CHAT), "fake-model", 200, 0.1)
        samples = scrape()
    finally:
        metrics.logger.removeHandler(caplog.handler)
    labels = {"endpoint": CHAT, "model": "fake-model", "status": "200"}
    assert value(samples, "kodify_requests_total", **labels) == 1
    assert "is not usable" in caplog.text


def test_recording_never_raises(
    metrics_dir: Path, table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Any:
        raise OSError("disk on fire")

    monkeypatch.setattr(metrics, "_start", broken)
    assert metrics.request_started(CHAT) == CHAT
    metrics.request_finished(CHAT, "fake-model", 200, 0.1, 0.01)
    metrics.retry(table.upstreams[0], "timeout")
    metrics.auth_failure("invalid_api_key")


# -- who may read /metrics -------------------------------------------------------------------


def access(client: Any, headers: dict[bytes, bytes] | None = None) -> int:
    """The status check_access gives a request from ``client`` (200 when it passes)."""
    consumer = MetricsConsumer()
    consumer.scope = {"client": client, "headers": list((headers or {}).items())}
    try:
        consumer.check_access()
    except OpenAIError as error:
        return error.status
    return 200


def test_without_a_token_only_this_machine_reads_the_metrics(settings: Any) -> None:
    settings.KODIFY_METRICS_TOKEN = None
    settings.KODIFY_METRICS_PUBLIC = False
    for host in ("127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"):
        assert access((host, 40000)) == 200, host
    for client in (("10.0.0.5", 40000), ("2001:db8::1", 1), ("/run/kodify.sock", 0), None):
        assert access(client) == 403, client
    relayed = {b"x-forwarded-for": b"203.0.113.9"}
    assert access(("127.0.0.1", 40000), relayed) == 403  # a proxy on this machine
    assert access(("127.0.0.1", 40000), {b"forwarded": b"for=203.0.113.9"}) == 403
    settings.KODIFY_METRICS_PUBLIC = True
    assert access(("10.0.0.5", 40000)) == 200
    assert access(("127.0.0.1", 40000), relayed) == 200


def test_with_a_token_everyone_needs_it(settings: Any) -> None:
    settings.KODIFY_METRICS_TOKEN = "metrics-secret"
    settings.KODIFY_METRICS_PUBLIC = True  # the token wins
    assert access(("127.0.0.1", 1)) == 401
    assert access(("127.0.0.1", 1), {b"authorization": b"Bearer wrong"}) == 403
    assert access(("127.0.0.1", 1), {b"authorization": b"Basic bWV0cmljcw=="}) == 401
    assert access(("10.0.0.5", 1), {b"authorization": b"Bearer metrics-secret"}) == 200


def test_this_machine_is_a_loopback_peer_relaying_nobody() -> None:
    def peer(host: str, *headers: tuple[bytes, bytes]) -> bool:
        return from_this_machine({"client": (host, 1), "headers": list(headers)})

    assert peer("127.0.0.1") and peer("::1") and peer("::ffff:127.0.0.1")
    assert not peer("fe80::1%lo")
    assert not peer("localhost")  # a name is not an address
    assert not peer("127.0.0.1", (b"x-forwarded-for", b"203.0.113.7"))


# -- real servers ------------------------------------------------------------------------------


def metrics_of(server: KodifyServer, **headers: str) -> httpx.Response:
    """A scrape on a new connection (so that the kernel may pick either worker)."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return client.get("/metrics", headers=headers)


def per_worker(
    server: KodifyServer, prefix: str, name: str, labels: dict[str, str] | None = None
) -> dict[str, float]:
    """``name``'s value in each worker's own files (what a scrape adds up); ``prefix``:
    that of the totals files or of the live ones."""
    found: dict[str, float] = {}
    suffix = metrics_files.SUFFIX
    for path in (server.data_dir / "metrics").glob(f"{prefix}*{suffix}"):
        pid = path.name[len(prefix) : -len(suffix)]
        for its_labels, numbers in metrics_files.read_numbers(path).get(name, {}).items():
            if labels is None or its_labels == tuple(labels.values()):
                found[pid] = found.get(pid, 0) + numbers[0]
    return found


API_KEY = "api-key-for-the-metrics-tests"


@pytest.fixture(scope="module")
def two_workers(module_kodify_server: Any, module_fake_upstream: FakeUpstreamServer) -> Any:
    server = module_kodify_server(
        {"KODIFY_UPSTREAMS": module_fake_upstream.url, "VLLM_API_KEY": API_KEY}, workers=2
    )
    # Until the gateway records requests, a worker joins the metrics with its first
    # scrape: scrape until both have (new connections, so the kernel picks the worker).
    for _ in range(60):
        scraped = parse(metrics_of(server).text)
        if value(scraped, "kodify_worker_processes") == 2:
            return server
    raise AssertionError("60 scrapes never reached both workers")


def test_the_metrics_of_two_workers_add_up(
    two_workers: KodifyServer, module_fake_upstream: FakeUpstreamServer
) -> None:
    url = module_fake_upstream.url
    response = metrics_of(two_workers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-request-id"]
    assert len(list((two_workers.data_dir / "metrics").glob(".pid-*"))) == 2
    healthy = wait_until(
        lambda: value(parse(metrics_of(two_workers).text), "kodify_upstream_healthy", upstream=url)
    )
    assert healthy == 1  # both workers probed the fake

    # Requests held in flight until both workers have some: each worker's files show its
    # own, and the scrape their sum.
    held: list[socket.socket] = []
    sample = "kodify_upstream_outstanding_requests"
    try:
        for _ in range(20):
            held.append(hold_request(two_workers, API_KEY, module_fake_upstream.fake, 30))
            counts = wait_until(
                lambda: (
                    (c := per_worker(two_workers, metrics_files.LIVE_PREFIX, sample))
                    and sum(c.values()) == len(held)
                    and c
                )
            )
            assert counts, f"the workers' files never showed {len(held)} outstanding requests"
            if sum(1 for count in counts.values() if count) == 2:
                break
        else:
            raise AssertionError("20 requests all reached the same worker")
        scraped = parse(metrics_of(two_workers).text)
        assert value(scraped, sample, upstream=url) == len(held)
    finally:
        for sock in held:
            sock.close()
    assert wait_until(lambda: value(parse(metrics_of(two_workers).text), sample, upstream=url) == 0)


def test_metrics_refuse_relayed_clients_and_other_methods(two_workers: KodifyServer) -> None:
    response = metrics_of(two_workers, **{"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "metrics_forbidden"
    with httpx.Client(base_url=two_workers.url, timeout=30) as client:
        response = client.post("/metrics", content=b"")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_requests_of_both_workers_are_counted(
    two_workers: KodifyServer, module_fake_upstream: FakeUpstreamServer
) -> None:
    labels = {"endpoint": CHAT, "model": "fake-model", "status": "200"}
    stream = {"endpoint": CHAT, "model": "fake-model"}

    def scraped() -> Samples:
        return parse(metrics_of(two_workers).text)

    before = scraped()
    counted = value(before, "kodify_requests_total", **labels) or 0
    streamed = value(before, "kodify_time_to_first_token_seconds_count", **stream) or 0
    refused = value(before, "kodify_auth_failures_total", code="invalid_api_key") or 0
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    sent = 0
    for _ in range(30):  # new connections until both workers served some
        with httpx.Client(base_url=two_workers.url, timeout=30) as client:
            headers = {"Authorization": f"Bearer {API_KEY}"}
            assert client.post(CHAT, json=body, headers=headers).status_code == 200
            response = client.post(CHAT, json={**body, "stream": True}, headers=headers)
            assert response.status_code == 200
        sent += 1
        expected = counted + 2 * sent

        def flushed(expected: float = expected) -> dict[str, float] | None:
            found = per_worker(two_workers, metrics_files.TOTALS_PREFIX, "kodify_requests", labels)
            return found if sum(found.values()) == expected else None

        per_pid = wait_until(flushed)
        assert per_pid, f"the workers' files never counted {expected} requests"
        if sent >= 5 and sum(1 for count in per_pid.values() if count) >= 2:
            break
    else:
        raise AssertionError("30 rounds of requests all reached the same worker")
    with httpx.Client(base_url=two_workers.url, timeout=30) as client:
        wrong = client.post(CHAT, json=body, headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401
    # Each worker writes its counts to its files every PUBLISH_SECONDS: the refusal shows
    # in a scrape of either worker within that.
    assert wait_until(
        lambda: value(scraped(), "kodify_requests_total", **labels) == counted + 2 * sent
    )
    assert wait_until(
        lambda: (
            value(scraped(), "kodify_auth_failures_total", code="invalid_api_key") == refused + 1
        )
    )
    after = scraped()
    assert value(after, "kodify_time_to_first_token_seconds_count", **stream) == streamed + sent
    assert value(after, "kodify_auth_failures_total", code="invalid_api_key") == refused + 1
    assert value(after, "kodify_requests_total", endpoint="/metrics", model="none", status="200")


@pytest.fixture(scope="module")
def guarded(module_kodify_server: Any) -> KodifyServer:
    return module_kodify_server({"KODIFY_METRICS_TOKEN": "metrics-secret"})


def test_a_token_guards_the_metrics_of_a_server(guarded: KodifyServer) -> None:
    missing = metrics_of(guarded)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["error"]["code"] == "missing_api_key"
    wrong = metrics_of(guarded, Authorization="Bearer not-it")
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "invalid_metrics_token"
    right = metrics_of(guarded, Authorization="Bearer metrics-secret")
    assert right.status_code == 200
    assert value(parse(right.text), "kodify_worker_processes") == 1


def test_public_metrics_are_served_to_anyone(module_kodify_server: Any) -> None:
    server = module_kodify_server({"KODIFY_METRICS_PUBLIC": "true"})
    response = metrics_of(server, **{"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 200
    assert "kodify_journal_spool_bytes" in response.text


def test_metrics_under_daphne(kodify_server: Any) -> None:
    """The development server: one process, no lifespan events."""
    server = kodify_server({}, server="daphne")
    response = metrics_of(server)
    assert response.status_code == 200
    assert value(parse(response.text), "kodify_worker_processes") == 1
