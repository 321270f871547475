"""Prometheus metrics of the gateway, served by ``GET /metrics`` (gateway/metrics_endpoint.py).

Kodify serves from several worker processes and Prometheus scrapes one of them, so the
values live where every worker can read them: prometheus-client's multiprocess mode, a
few memory-mapped files per process in ``KODIFY_METRICS_DIR`` (``settings.py`` exports it
as ``PROMETHEUS_MULTIPROC_DIR``, which prometheus-client reads).  A scrape adds up the
files of every process, including the counters of workers that died since the server
started: a counter must not go backwards while the server runs.

What the gateway calls (none of it raises; a request's calls cost it under a microsecond):

* :func:`request_started` when a request arrives, :func:`request_finished` when it ends:
  requests by endpoint, model and status, latency and time-to-first-token histograms,
  requests in flight;
* :func:`retry` when a replica failed a request that goes to another replica;
* :func:`auth_failure` when a request's API token is refused;
* :func:`start` when a server process starts, :func:`stop` when it ends: from the ASGI
  lifespan, since uvicorn ends a worker on SIGTERM by raising the signal again once it
  has shut down, so that neither ``atexit`` nor multiprocessing's finalizers run (they
  call it too, for the other ways out).  A process that ends without it loses its last
  second of counts, and its gauges are deleted at the next scrape;
* :func:`render` for the exposition.

A request only adds to plain numbers of its process (a file write costs about 0.6 µs,
and a request would need five): a thread of each process copies them into its files
every :data:`PUBLISH_SECONDS`, with the process's state (requests in flight, each
replica's health and outstanding requests as this worker's upstream table has them, the
journal writer's queue), and the process serving a scrape copies its own just before.
So a scrape shows every worker's numbers at most that old; a worker killed outright
loses at most that much.  Across workers, in-flight requests, outstanding requests and
the journal queue add up (``livesum``); a replica counts as healthy only when every
worker finds it so (``livemin``).  The journal spool's size is read from the disk at
scrape time (every worker spools to the same folder).

The folder: every process holds a lock on a ``.pid-<pid>`` file of its own for its
lifetime.  The first process that finds no other alive empties the folder (a new server:
the last run's values must not count), one that finds others (a worker uvicorn restarted)
joins them.  The gauges of a process that died are deleted (at every start and scrape),
its counters and histograms stay.

Labels are bounded: ``endpoint`` is the route (any other path: ``other``), ``model`` a
model the upstream table serves (``other`` for any other name, ``none`` when the request
named none), ``status`` the HTTP status, ``upstream`` the replica's URL without
credentials.
"""

from __future__ import annotations

import atexit
import bisect
import contextlib
import fcntl
import logging
import math
import multiprocessing.util
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from journal.spool import EVENT_SPOOL_SUBDIR, SPOOL_PREFIX, SPOOL_SUFFIX

if TYPE_CHECKING:
    from gateway.upstreams import Upstream, UpstreamTable

logger = logging.getLogger("kodify.metrics")

# Seconds, from a model list served from memory (ms) to a long generation (minutes).
LATENCY_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
    *(1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0),
)
# Autocompletion wants its first token within 100-300 ms, chat within a few seconds; a
# long prompt waiting in vLLM's queue can take minutes.
TTFT_BUCKETS = (
    *(0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75),
    *(1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0),
)
# How old a worker's gauges may be in a scrape.
PUBLISH_SECONDS = 1.0

OTHER = "other"
NO_MODEL = "none"
# The public API's routes (gateway/routing.py); a trailing slash is the same route.
ENDPOINTS = (
    "/health",
    "/metrics",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/models",
    "/v1/openapi.json",
    "/v1/health",
    "/v1/events",
    "/v1beta/server_setting",
    "/v1beta/chat/completions",
)
_ENDPOINT_OF = {**{route: route for route in ENDPOINTS}, **{f"{r}/": r for r in ENDPOINTS}}
_ENDPOINT_LABELS = frozenset((*ENDPOINTS, OTHER))
# AuthenticationFailed's codes (accounts/auth.py).
AUTH_CODES = frozenset(
    {"missing_api_key", "invalid_api_key", "token_revoked", "token_expired", "user_disabled"}
)
# UpstreamUnavailable.reason (gateway/upstream_failures.py) for a replica that did not
# answer; one that answered with a 5xx is "http_<status>".  Anything else: "other".
_RETRY_REASONS = frozenset({"timeout", "unreachable", "connection_broken"})

_GUARD = ".lock"
_PID_PREFIX = ".pid-"
_LIVE_GAUGE_PREFIX = "gauge_live"


class _Metrics:
    """This process's metrics, created once its folder is claimed (creating a metric
    creates its file)."""

    def __init__(self, directory: Path | None, pid_lock: int | None) -> None:
        self.directory = directory  # None: single-process mode (the folder is unusable)
        self.pid_lock = pid_lock
        registry = CollectorRegistry(auto_describe=True)  # single-process mode's
        self.requests = Counter(
            "kodify_requests",
            "Requests answered, by endpoint (route), model and HTTP status (499: the "
            "client went away first).",
            ("endpoint", "model", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "kodify_request_duration_seconds",
            "Time from a request's arrival to the end of its answer (a stream's last byte).",
            ("endpoint", "model"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "kodify_time_to_first_token_seconds",
            "Time from a streamed request's arrival to the upstream's first chunk.",
            ("endpoint", "model"),
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "kodify_requests_in_flight",
            "Requests being served, all workers together.",
            ("endpoint",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.retries = Counter(
            "kodify_upstream_retries",
            "Requests sent to another replica after this one failed before answering, by "
            "reason (timeout, unreachable, connection_broken, http_<5xx status>).",
            ("upstream", "reason"),
            registry=registry,
        )
        self.auth_failures = Counter(
            "kodify_auth_failures",
            "API requests refused for their token, by error code.",
            ("code",),
            registry=registry,
        )
        self.upstream_healthy = Gauge(
            "kodify_upstream_healthy",
            "1 when every worker finds the replica healthy (its last health check or "
            "request succeeded), else 0; NaN once it left the configuration.",
            ("upstream",),
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.upstream_outstanding = Gauge(
            "kodify_upstream_outstanding_requests",
            "Requests sent to the replica and not finished yet, all workers together.",
            ("upstream",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.journal_queue = Gauge(
            "kodify_journal_queue_records",
            "Journal records waiting in memory for the journal writer, all workers together.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.workers = Gauge(
            "kodify_worker_processes",
            "Server processes that serve and report metrics.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.own_registry = registry
        # The process's numbers, which the publisher copies into the files.
        self.in_flight_counts: dict[str, int] = {}
        self.known_models: frozenset[str] = frozenset()
        self.published_upstreams: set[str] = set()
        # (endpoint, model, status) -> its _Tally, and what of it is in the files.
        self.tallies: dict[tuple[str, str, int], list[float]] = {}
        self.flushed: dict[tuple[str, str, int], list[float]] = {}
        self.flush_lock = threading.Lock()
        self.publisher = _Publisher(self)
        self.scrape_registry = self._scrape_registry()

    def _scrape_registry(self) -> CollectorRegistry:
        if self.directory is None:
            registry = self.own_registry
        else:
            registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(registry, path=str(self.directory))
        registry.register(_SpoolCollector())
        return registry

    def new_tally(self, key: tuple[str, str, int]) -> list[float]:
        tally = self.tallies[key] = [0.0] * _TALLY_SIZE
        return tally

    def flush(self) -> None:
        """Add what the requests counted since the last flush to the files."""
        with self.flush_lock:
            for key, tally in list(self.tallies.items()):
                # One copy, taken while the event loop may be halfway through a request's
                # additions: the rest of them goes with the next flush.
                now = tally[:]
                before = self.flushed.get(key) or _EMPTY_TALLY
                if now == before:
                    continue
                self.flushed[key] = now
                delta = [a - b for a, b in zip(now, before, strict=True)]
                endpoint, model, status = key
                if delta[_COUNT]:
                    self.requests.labels(endpoint, model, str(status)).inc(delta[_COUNT])
                labels = (endpoint, model)
                _add_to_histogram(self.duration, labels, delta, _DURATION_SUM, _DURATION_BUCKET)
                _add_to_histogram(self.ttft, labels, delta, _TTFT_SUM, _TTFT_BUCKET)

    def close(self) -> None:
        self.publisher.stopping.set()
        if self.publisher.is_alive() and self.publisher is not threading.current_thread():
            self.publisher.join(2 * PUBLISH_SECONDS)
        with contextlib.suppress(Exception):
            self.flush()
        if self.directory is None or self.pid_lock is None:
            return
        values.close_all_multiprocess_files()
        with contextlib.suppress(OSError), _guarded(self.directory):
            mark_process_dead(os.getpid(), str(self.directory))
            (self.directory / f"{_PID_PREFIX}{os.getpid()}").unlink(missing_ok=True)
        os.close(self.pid_lock)
        self.pid_lock = None


# A request's tally: [count, duration sum, TTFT sum, duration buckets…, TTFT buckets…];
# bucket i counts the values above bound i-1 and up to bound i (the last: above all, +Inf),
# as prometheus-client keeps them (a scrape adds them up).
_COUNT, _DURATION_SUM, _TTFT_SUM = 0, 1, 2
_DURATION_BUCKET = 3
_TTFT_BUCKET = _DURATION_BUCKET + len(LATENCY_BUCKETS) + 1
_TALLY_SIZE = _TTFT_BUCKET + len(TTFT_BUCKETS) + 1
_EMPTY_TALLY = [0.0] * _TALLY_SIZE


def _add_to_histogram(
    histogram: Histogram,
    labels: tuple[str, str],
    delta: list[float],
    sum_at: int,
    first_bucket: int,
) -> None:
    """Add counted observations to a histogram (prometheus-client observes one value at
    a time; ``_sum`` and ``_buckets`` are the values its ``observe`` adds to)."""
    counts = delta[first_bucket : first_bucket + len(histogram._upper_bounds)]  # with +Inf
    if not any(counts) and not delta[sum_at]:
        return  # no series for what was never observed (TTFT of a non-stream)
    child = histogram.labels(*labels)
    if delta[sum_at]:
        child._sum.inc(delta[sum_at])
    for bucket, count in zip(child._buckets, counts, strict=True):
        if count:
            bucket.inc(count)


_metrics: _Metrics | None = None
_start_lock = threading.Lock()
_reported: set[str] = set()


# -- what the gateway calls -----------------------------------------------------------------


def request_started(path: str) -> str:
    """Count a request in flight; returns its ``endpoint`` label for request_finished.

    ``path``: the request's path (``scope["path"]``); a path that is not a route of the
    public API counts as ``other``.
    """
    endpoint = _ENDPOINT_OF.get(path, OTHER)
    try:
        counts = (_metrics or _start()).in_flight_counts
        counts[endpoint] = counts.get(endpoint, 0) + 1
    except Exception:
        _report("count a request")
    return endpoint


def request_finished(
    endpoint: str, model: str, status: int, seconds: float, ttft: float | None = None
) -> None:
    """Count a finished request: once per request_started, whatever happened.

    ``endpoint``: what request_started returned; ``model``: the model that served it
    (after the default was resolved; "" when none); ``status``: the HTTP status sent (499
    when the client went away first); ``seconds``: arrival to the end of the answer;
    ``ttft``: arrival to the upstream's first chunk, for streams only (None otherwise).
    """
    try:
        m = _metrics or _start()
        counts = m.in_flight_counts
        counts[endpoint] = counts.get(endpoint, 0) - 1
        if endpoint not in _ENDPOINT_LABELS:
            endpoint = OTHER
        if model not in m.known_models:
            model = _model_label(m, model)
        key = (endpoint, model, status)
        tally = m.tallies.get(key) or m.new_tally(key)
        tally[_COUNT] += 1
        tally[_DURATION_SUM] += seconds
        tally[_DURATION_BUCKET + bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        if ttft is not None:
            tally[_TTFT_SUM] += ttft
            tally[_TTFT_BUCKET + bisect.bisect_left(TTFT_BUCKETS, ttft)] += 1
    except Exception:
        _report("count a finished request")


def _model_label(m: _Metrics, model: str) -> str:
    """A model missing from the publisher's last list: one the table serves by now (it
    learnt it in the last second), else ``other``; ``none`` when there is no name."""
    if not model:
        return NO_MODEL
    table = _built_table()
    if table is not None and any(
        model in upstream.models for upstream in table.upstreams if upstream.enabled
    ):
        m.known_models = m.known_models | {model}
        return model
    return OTHER


def retry(upstream: Upstream, reason: str) -> None:
    """A replica failed before answering (``reason``: the failure's name), and the request
    goes to another."""
    try:
        known = reason in _RETRY_REASONS or (
            reason.startswith("http_5") and len(reason) == 8 and reason[5:].isdigit()
        )
        label = reason if known else OTHER
        (_metrics or _start()).retries.labels(upstream.display_url, label).inc()
    except Exception:
        _report("count a retry")


def auth_failure(code: str) -> None:
    """A request's API token was refused; ``code``: AuthenticationFailed's code."""
    try:
        label = code if code in AUTH_CODES else OTHER
        (_metrics or _start()).auth_failures.labels(label).inc()
    except Exception:
        _report("count an authentication failure")


def render(accept: str | None = None) -> tuple[bytes, str]:
    """The exposition of every worker's metrics: (body, content type).

    ``accept``: the scrape's Accept header (OpenMetrics when it asks for it).  Reads
    files: call it off the event loop.
    """
    m = _metrics or _start()
    _publish(m)  # this worker's gauges, fresh
    if m.directory is not None:
        with contextlib.suppress(OSError), _guarded(m.directory):
            _sweep(m.directory)
    encoder, content_type = choose_encoder(accept or "")
    return encoder(m.scrape_registry), content_type


def start() -> None:
    """Claim the metrics folder and start publishing this process's gauges (idempotent;
    the first metric recorded does it too)."""
    if _metrics is None:
        _start()


def stop() -> None:
    """Forget this process's gauges (its counters stay) and let its folder go; at exit
    too.  A later call records again from scratch."""
    global _metrics
    with _start_lock:
        m, _metrics = _metrics, None
    if m is not None:
        m.close()


def reset_for_tests() -> None:
    """:func:`stop`, so that the next call starts over with the settings of the test at
    hand (``KODIFY_METRICS_DIR`` and ``PROMETHEUS_MULTIPROC_DIR`` both)."""
    stop()
    _reported.clear()


# -- the process's state ------------------------------------------------------------------


def _start() -> _Metrics:
    global _metrics
    with _start_lock:
        if _metrics is not None:
            return _metrics
        directory = Path(settings.KODIFY_METRICS_DIR)
        pid_lock: int | None = None
        try:
            pid_lock = _claim(directory)
        except OSError as exc:
            logger.warning(
                "Metrics folder %s is not usable (%s): /metrics shows only the worker "
                "that answers the scrape.",
                directory,
                exc.strerror or exc,
            )
        if pid_lock is not None:
            # A fresh class: its files are opened in the folder as it is now.
            values.ValueClass = values.MultiProcessValue()
        else:
            values.ValueClass = values.MutexValue
        m = _Metrics(directory if pid_lock is not None else None, pid_lock)
        m.workers.set(1)
        _publish(m)
        m.publisher.start()
        _metrics = m
        # uvicorn's workers are multiprocessing children, which end without atexit.
        multiprocessing.util.Finalize(None, stop, exitpriority=10)
        return m


class _Publisher(threading.Thread):
    """Copies the process's gauges into its metric files every PUBLISH_SECONDS."""

    def __init__(self, metrics: _Metrics) -> None:
        super().__init__(name="kodify-metrics", daemon=True)
        self.metrics = metrics
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(PUBLISH_SECONDS):
            try:
                _publish(self.metrics)
            except Exception:
                _report("publish the gauges")


def _publish(m: _Metrics) -> None:
    m.flush()
    for endpoint, count in list(m.in_flight_counts.items()):
        m.in_flight.labels(endpoint).set(count)
    table = _built_table()
    if table is not None:
        _publish_upstreams(m, table)
    m.journal_queue.set(_journal_queue())


def _publish_upstreams(m: _Metrics, table: UpstreamTable) -> None:
    models: set[str] = set()
    outstanding: dict[str, int] = {}
    healthy: dict[str, int] = {}
    for upstream in list(table.upstreams):
        if not upstream.enabled:
            continue
        url = upstream.display_url
        models.update(list(upstream.models))
        outstanding[url] = outstanding.get(url, 0) + upstream.outstanding
        healthy[url] = min(healthy.get(url, 1), 1 if upstream.healthy else 0)
    m.known_models = frozenset(models)
    for url, count in outstanding.items():
        m.upstream_outstanding.labels(url).set(count)
        m.upstream_healthy.labels(url).set(healthy[url])
    # A file keeps every series it ever had: a replica gone from the table shows
    # no request and no health rather than its last ones.
    for url in m.published_upstreams - outstanding.keys():
        m.upstream_outstanding.labels(url).set(0)
        m.upstream_healthy.labels(url).set(math.nan)
    m.published_upstreams = set(outstanding)


def _built_table() -> UpstreamTable | None:
    """This process's upstream table, if a request built it already (building it here,
    beside the event loop, could make a second one)."""
    from gateway import upstreams  # gateway.upstreams may record metrics one day

    cache_info = getattr(upstreams.get_table, "cache_info", None)
    if cache_info is not None and not cache_info().currsize:
        return None
    return upstreams.get_table()


def _journal_queue() -> int:
    from journal import recorder

    return recorder.queued_records()


class _SpoolCollector(Collector):
    """The journal spool's size on disk, read at scrape time (shared by all workers)."""

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "kodify_journal_spool_bytes",
            "Journal records waiting on disk for the journal database (spool files of "
            "every worker, requests and Tabby events), in bytes.",
            labels=("spool",),
        )
        directory = Path(settings.KODIFY_JOURNAL_SPOOL_DIR)
        family.add_metric(("requests",), _spool_bytes(directory))
        family.add_metric(("events",), _spool_bytes(directory / EVENT_SPOOL_SUBDIR))
        yield family


def _spool_bytes(directory: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for path in directory.glob(f"{SPOOL_PREFIX}*{SPOOL_SUFFIX}"):
            with contextlib.suppress(OSError):
                total += path.stat().st_size
    return total


def _report(what: str) -> None:
    """Log a failure to record, once per kind and process: metrics never fail a request."""
    if what not in _reported:
        _reported.add(what)
        logger.exception("Metrics: could not %s (reported once)", what)


# -- the folder -----------------------------------------------------------------------------


@contextlib.contextmanager
def _guarded(directory: Path) -> Iterator[None]:
    """Exclusive use of the folder's bookkeeping, among all processes."""
    fd = os.open(directory / _GUARD, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and the lock with it


def _claim(directory: Path) -> int:
    """Join the folder as a live process: returns the lock held for the process's life.

    Finding no other live process, empty the folder first (a new server start).
    """
    directory.mkdir(parents=True, exist_ok=True)
    with _guarded(directory):
        if not _sweep(directory):
            for path in directory.glob("*.db"):
                path.unlink(missing_ok=True)
        fd = os.open(directory / f"{_PID_PREFIX}{os.getpid()}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
    return fd


def _sweep(directory: Path) -> int:
    """Delete the live gauges of dead processes and their lock files (under _guarded);
    returns how many processes are alive."""
    alive: set[str] = set()
    for path in directory.glob(f"{_PID_PREFIX}*"):
        pid = path.name[len(_PID_PREFIX) :]
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            alive.add(pid)
        else:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    for path in directory.glob(f"{_LIVE_GAUGE_PREFIX}*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid not in alive:
            path.unlink(missing_ok=True)
    return len(alive)


def _forget_in_child() -> None:
    """A forked child records as a process of its own (the parent's lock is not its)."""
    global _metrics, _start_lock
    _metrics = None
    _start_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(stop)
