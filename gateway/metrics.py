"""Prometheus metrics of the gateway, served by ``GET /metrics`` (gateway/metrics_endpoint.py).

Kodify serves from several worker processes and Prometheus scrapes one of them, so the
values live where every worker can read them: a few files per process in
``KODIFY_METRICS_DIR`` (gateway/metrics_files.py).  A scrape adds up the files of every
process, including the counters of workers that died since the server started: a counter
must not go backwards while the server runs.  What the metrics are, and how the numbers
of several processes combine: gateway/metrics_catalog.py.

What the gateway calls (none of it raises; a request's calls cost it about a microsecond):

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

A request only adds to plain numbers of its process (a few additions to a list; writing
a file for each would cost it several times as much): a thread of each process writes
them to its files every :data:`PUBLISH_SECONDS`, with the process's state (requests in
flight, each replica's health and outstanding requests as this worker's upstream table
has them, the journal writer's queue), and the process serving a scrape writes its own
just before.  So a scrape shows every worker's numbers at most that old; a worker killed
outright loses at most that much.  Across workers, in-flight requests, outstanding
requests and the journal queue add up; a replica counts as healthy only when every
worker finds it so.  The journal spool's size is read from the disk at scrape time
(every worker spools to the same folder).

When the folder is not usable, the process serves its own numbers only.

Labels are bounded: ``endpoint`` is the route (any other path: ``other``), ``model`` a
model the upstream table serves (``other`` for any other name, ``none`` when the request
named none), ``status`` the HTTP status, ``upstream`` the replica's URL without
credentials.
"""

from __future__ import annotations

import atexit
import bisect
import contextlib
import logging
import math
import multiprocessing.util
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from gateway.metrics_catalog import (
    AUTH_FAILURES,
    DURATION,
    IN_FLIGHT,
    JOURNAL_QUEUE,
    LATENCY_BUCKETS,
    REQUESTS,
    RETRIES,
    SUPERSEDED,
    TTFT,
    TTFT_BUCKETS,
    UPSTREAM_HEALTHY,
    UPSTREAM_OUTSTANDING,
    WORKERS,
    Labels,
    Numbers,
    SpoolCollector,
    add,
    add_totals,
    encoder,
    families,
)
from gateway.metrics_files import (
    FolderCollector,
    claim,
    encode,
    guarded,
    live_path,
    read_numbers,
    release,
    sweep,
    totals_path,
    write_numbers,
)

if TYPE_CHECKING:
    from gateway.upstreams import Upstream, UpstreamTable

logger = logging.getLogger("kodify.metrics")

# How old a worker's numbers may be in a scrape.
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
    "/tokenize",
    "/detokenize",
    "/v1/tokenize",
    "/v1/detokenize",
)
_ENDPOINT_OF = {**{route: route for route in ENDPOINTS}, **{f"{r}/": r for r in ENDPOINTS}}
_ENDPOINT_LABELS = frozenset((*ENDPOINTS, OTHER))
# AuthenticationFailed's codes (accounts/auth.py).
AUTH_CODES = frozenset(
    {
        "missing_api_key",
        "invalid_api_key",
        "token_revoked",
        "token_expired",
        "user_disabled",
        "too_many_failures",
    }
)
# UpstreamUnavailable.reason (gateway/upstream_failures.py) for a replica that did not
# answer; one that answered with a 5xx is "http_<status>".  Anything else: "other".
_RETRY_REASONS = frozenset({"timeout", "unreachable", "connection_broken"})

# A request's tally: [count, duration sum, TTFT sum, duration buckets…, TTFT buckets…];
# bucket i counts the values above bound i-1 and up to bound i (the last: above all, +Inf).
_COUNT, _DURATION_SUM, _TTFT_SUM = 0, 1, 2
_DURATION_BUCKET = 3
_TTFT_BUCKET = _DURATION_BUCKET + len(LATENCY_BUCKETS) + 1
_TALLY_SIZE = _TTFT_BUCKET + len(TTFT_BUCKETS) + 1


class _Metrics:
    """This process's numbers, from its start to its stop."""

    def __init__(self, directory: Path | None, pid_lock: int | None) -> None:
        self.directory = directory  # None: this process only (the folder is unusable)
        self.pid_lock = pid_lock
        # What the requests add to, from the event loop: plain numbers, cheap to add to.
        self.in_flight_counts: dict[str, int] = {}
        self.tallies: dict[tuple[str, str, int], list[float]] = {}  # (endpoint, model, status)
        self.counts: dict[str, dict[Labels, int]] = {
            RETRIES.name: {},
            AUTH_FAILURES.name: {},
            SUPERSEDED.name: {},
        }
        self.known_models: frozenset[str] = frozenset()
        # The replicas' gauges as last published, and every replica ever published: one
        # gone from the table shows no request and no health (NaN) rather than vanishing,
        # so that a scrape tells "taken out" from "not scraped".
        self.upstream_gauges: Numbers = {}
        self.upstreams_seen: set[str] = set()
        # A process that recorded before in this folder under this pid (stopped and
        # started again): its totals go on from there, a counter never goes backwards.
        self.base: Numbers = {}
        if directory is not None:
            add_totals(self.base, read_numbers(totals_path(directory, os.getpid())))
        # The last published numbers, and what was last written to each file.
        self.totals: Numbers = {}
        self.live: Numbers = {}
        self.written: dict[Path, bytes] = {}
        self.publish_lock = threading.Lock()  # the publisher thread and a scrape's thread
        self.closed = False
        self.publisher = _Publisher(self)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(
            _LocalCollector(self) if directory is None else FolderCollector(directory)
        )
        self.registry.register(SpoolCollector())

    def new_tally(self, key: tuple[str, str, int]) -> list[float]:
        tally = self.tallies[key] = [0.0] * _TALLY_SIZE
        return tally

    def publish(self) -> None:
        """Gather the process's numbers, and write them to its files."""
        with self.publish_lock:
            if self.closed:
                return
            self.totals = self.gather_totals()
            self.live = _gather_live(self)
            if self.directory is not None:
                pid = os.getpid()
                self.write(totals_path(self.directory, pid), encode(self.totals))
                self.write(live_path(self.directory, pid), encode(self.live))

    def write(self, path: Path, data: bytes) -> None:
        if self.written.get(path) != data or not path.exists():
            write_numbers(path, data)
            self.written[path] = data

    def gather_totals(self) -> Numbers:
        numbers: Numbers = {}
        add_totals(numbers, self.base)
        for (endpoint, model, status), tally in list(self.tallies.items()):
            # One copy, taken while the event loop may be halfway through a request's
            # additions: the rest of them goes with the next publish.
            now = tally[:]
            add(numbers, REQUESTS.name, (endpoint, model, str(status)), [now[_COUNT]])
            labels = (endpoint, model)
            durations = now[_DURATION_BUCKET:_TTFT_BUCKET]
            add(numbers, DURATION.name, labels, [*durations, now[_DURATION_SUM]])
            ttfts = now[_TTFT_BUCKET:]
            if any(ttfts):  # no series for what was never observed (TTFT of a non-stream)
                add(numbers, TTFT.name, labels, [*ttfts, now[_TTFT_SUM]])
        for name, counts in self.counts.items():
            for key, count in list(counts.items()):
                add(numbers, name, key, [float(count)])
        return numbers

    def close(self) -> None:
        self.publisher.stopping.set()
        if self.publisher.is_alive() and self.publisher is not threading.current_thread():
            self.publisher.join(2 * PUBLISH_SECONDS)
        with contextlib.suppress(Exception):
            self.publish()  # the last counts, to the totals file that outlives the process
        with self.publish_lock:
            self.closed = True
        if self.directory is not None and self.pid_lock is not None:
            release(self.directory, self.pid_lock)
            self.pid_lock = None


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
        counts = (_metrics or _start()).counts[RETRIES.name]
        key = (upstream.display_url, reason if known else OTHER)
        counts[key] = counts.get(key, 0) + 1
    except Exception:
        _report("count a retry")


def auth_failure(code: str) -> None:
    """A request's API token was refused; ``code``: AuthenticationFailed's code."""
    try:
        counts = (_metrics or _start()).counts[AUTH_FAILURES.name]
        key = (code if code in AUTH_CODES else OTHER,)
        counts[key] = counts.get(key, 0) + 1
    except Exception:
        _report("count an authentication failure")


def superseded() -> None:
    """A code completion was cancelled because a newer one for its document arrived."""
    try:
        counts = (_metrics or _start()).counts[SUPERSEDED.name]
        counts[()] = counts.get((), 0) + 1
    except Exception:
        _report("count a superseded completion")


def render(accept: str | None = None) -> tuple[bytes, str]:
    """The exposition of every worker's metrics: (body, content type).

    ``accept``: the scrape's Accept header (OpenMetrics when it asks for it).  Reads
    files: call it off the event loop.
    """
    m = _metrics or _start()
    m.publish()  # this worker's numbers, fresh
    if m.directory is not None:
        with contextlib.suppress(OSError), guarded(m.directory):
            sweep(m.directory)
    generate, content_type = encoder(accept or "")
    return generate(m.registry), content_type


def start() -> None:
    """Claim the metrics folder and start publishing this process's numbers (idempotent;
    the first metric recorded does it too)."""
    if _metrics is None:
        _start()


def stop() -> None:
    """Forget this process's gauges (its counters stay) and let its folder go; at exit
    too.  A later call records again, its counters going on from their last values."""
    global _metrics
    with _start_lock:
        m, _metrics = _metrics, None
    if m is not None:
        m.close()


def reset_for_tests() -> None:
    """:func:`stop`, so that the next call starts over with the settings of the test at
    hand (``KODIFY_METRICS_DIR``)."""
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
            pid_lock = claim(directory)
        except OSError as exc:
            logger.warning(
                "Metrics folder %s is not usable (%s): /metrics shows only the worker "
                "that answers the scrape.",
                directory,
                exc.strerror or exc,
            )
        m = _Metrics(directory if pid_lock is not None else None, pid_lock)
        try:
            m.publish()
        except Exception:  # the publisher tries again; recording goes on meanwhile
            _report("publish the metrics")
        m.publisher.start()
        _metrics = m
        # uvicorn's workers are multiprocessing children, which end without atexit.
        multiprocessing.util.Finalize(None, stop, exitpriority=10)
        return m


class _Publisher(threading.Thread):
    """Writes the process's numbers to its files every PUBLISH_SECONDS."""

    def __init__(self, metrics: _Metrics) -> None:
        super().__init__(name="kodify-metrics", daemon=True)
        self.metrics = metrics
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(PUBLISH_SECONDS):
            try:
                self.metrics.publish()
            except Exception:
                _report("publish the metrics")


def _gather_live(m: _Metrics) -> Numbers:
    """The process's gauges."""
    in_flight = list(m.in_flight_counts.items())
    live: Numbers = {
        IN_FLIGHT.name: {(endpoint,): [float(count)] for endpoint, count in in_flight},
        JOURNAL_QUEUE.name: {(): [float(_journal_queue())]},
        WORKERS.name: {(): [1.0]},
    }
    table = _built_table()
    if table is not None:
        m.upstream_gauges = _upstream_gauges(m, table)
    live.update(m.upstream_gauges)
    return live


def _upstream_gauges(m: _Metrics, table: UpstreamTable) -> Numbers:
    models: set[str] = set()
    outstanding: dict[Labels, list[float]] = {}
    healthy: dict[Labels, list[float]] = {}
    for upstream in list(table.upstreams):
        if not upstream.enabled:
            continue
        key = (upstream.display_url,)
        models.update(list(upstream.models))
        outstanding[key] = [outstanding.get(key, [0.0])[0] + upstream.outstanding]
        healthy[key] = [min(healthy.get(key, [1.0])[0], 1.0 if upstream.healthy else 0.0)]
    m.known_models = frozenset(models)
    present = {url for (url,) in outstanding}
    m.upstreams_seen |= present
    for url in m.upstreams_seen - present:
        outstanding[(url,)] = [0.0]  # taken out of the configuration
        healthy[(url,)] = [math.nan]
    return {UPSTREAM_OUTSTANDING.name: outstanding, UPSTREAM_HEALTHY.name: healthy}


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


class _LocalCollector(Collector):
    """This process's numbers as last published (when the folder is not usable)."""

    def __init__(self, metrics: _Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return families(self.metrics.totals, self.metrics.live)


def _report(what: str) -> None:
    """Log a failure to record, once per kind and process: metrics never fail a request."""
    if what not in _reported:
        _reported.add(what)
        logger.exception("Metrics: could not %s (reported once)", what)


def _forget_in_child() -> None:
    """A forked child records as a process of its own: the parent's numbers and its lock
    are not the child's (closing the inherited descriptor leaves the parent's lock held)."""
    global _metrics, _start_lock
    inherited, _metrics = _metrics, None
    _start_lock = threading.Lock()
    if inherited is not None and inherited.pid_lock is not None:
        with contextlib.suppress(OSError):
            os.close(inherited.pid_lock)
        inherited.pid_lock = None


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(stop)
