"""What the gateway's metrics are (gateway/metrics.py), and how numbers become families.

Each process keeps its numbers as :data:`Numbers`: metric name -> label values (in the
metric's label order) -> a list of floats: ``[value]`` for a counter or a gauge,
``[count of bucket 0, …, count above the last bound (+Inf), sum]`` for a histogram,
bucket i counting the values above bound i-1 and up to bound i.  Buckets are kept apart
(not cumulative) so that the numbers of several processes add up element by element.

A scrape merges every process's numbers (:func:`add_totals`, :func:`add_live`) and turns
the result into prometheus-client's metric families (:func:`families`), with the journal
spool's size read from the disk then (:class:`SpoolCollector`); :func:`encoder` picks
the exposition format the scraper asked for.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from django.conf import settings
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector

from journal.spool import EVENT_SPOOL_SUBDIR, SPOOL_PREFIX, SPOOL_SUFFIX

Labels = tuple[str, ...]
Series = dict[Labels, list[float]]
Numbers = dict[str, Series]

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


@dataclass(frozen=True)
class Spec:
    """One metric: its name (a counter's without ``_total``), help, label names, kind."""

    name: str
    help: str
    labels: Labels
    kind: Literal["counter", "histogram", "gauge"]
    buckets: tuple[float, ...] = ()  # a histogram's upper bounds, +Inf left out
    # A gauge across live workers: "sum" adds their values, "min" keeps the lowest.
    across: Literal["sum", "min"] = "sum"

    @property
    def size(self) -> int:
        """How many floats a series holds."""
        return len(self.buckets) + 2 if self.kind == "histogram" else 1


REQUESTS = Spec(
    "kodify_requests",
    "Requests answered, by endpoint (route), model and HTTP status (499: the client went "
    "away first).",
    ("endpoint", "model", "status"),
    "counter",
)
DURATION = Spec(
    "kodify_request_duration_seconds",
    "Time from a request's arrival to the end of its answer (a stream's last byte).",
    ("endpoint", "model"),
    "histogram",
    buckets=LATENCY_BUCKETS,
)
TTFT = Spec(
    "kodify_time_to_first_token_seconds",
    "Time from a streamed request's arrival to the upstream's first chunk.",
    ("endpoint", "model"),
    "histogram",
    buckets=TTFT_BUCKETS,
)
RETRIES = Spec(
    "kodify_upstream_retries",
    "Requests sent to another replica after this one failed before answering, by reason "
    "(timeout, unreachable, connection_broken, http_<5xx status>).",
    ("upstream", "reason"),
    "counter",
)
AUTH_FAILURES = Spec(
    "kodify_auth_failures",
    "API requests refused for their token, by error code.",
    ("code",),
    "counter",
)
SUPERSEDED = Spec(
    "kodify_completions_superseded",
    "Code completions cancelled upstream because the same caller asked again for the same "
    "document before they were answered (the developer typed on).",
    (),
    "counter",
)
IN_FLIGHT = Spec(
    "kodify_requests_in_flight",
    "Requests being served, all workers together.",
    ("endpoint",),
    "gauge",
)
UPSTREAM_HEALTHY = Spec(
    "kodify_upstream_healthy",
    "1 when every worker finds the replica healthy (its last health check or request "
    "succeeded), else 0; NaN once it left the configuration.",
    ("upstream",),
    "gauge",
    across="min",
)
UPSTREAM_OUTSTANDING = Spec(
    "kodify_upstream_outstanding_requests",
    "Requests sent to the replica and not finished yet, all workers together.",
    ("upstream",),
    "gauge",
)
JOURNAL_QUEUE = Spec(
    "kodify_journal_queue_records",
    "Journal records waiting in memory for the journal writer, all workers together.",
    (),
    "gauge",
)
WORKERS = Spec(
    "kodify_worker_processes",
    "Server processes that serve and report metrics.",
    (),
    "gauge",
)
# Counters and histograms: a process's totals, which count even once it died.
TOTALS = (REQUESTS, DURATION, TTFT, RETRIES, AUTH_FAILURES, SUPERSEDED)
# Gauges: a live process's state, which goes with it.
LIVE = (IN_FLIGHT, UPSTREAM_HEALTHY, UPSTREAM_OUTSTANDING, JOURNAL_QUEUE, WORKERS)
SPECS = {spec.name: spec for spec in (*TOTALS, *LIVE)}


def add(numbers: Numbers, name: str, labels: Labels, values: list[float]) -> None:
    """Add ``values`` to a series, element by element (a new series starts at 0)."""
    series = numbers.setdefault(name, {})
    into = series.get(labels)
    if into is None:
        series[labels] = list(values)
    else:
        for i, number in enumerate(values):
            into[i] += number


def add_totals(into: Numbers, numbers: Numbers) -> None:
    """Add one process's counters and histograms to the sum of all (``into``)."""
    for name, series in numbers.items():
        spec = SPECS.get(name)
        if spec is None or spec.kind == "gauge":
            continue  # a metric this version no longer has
        for labels, values in series.items():
            if len(labels) == len(spec.labels) and len(values) == spec.size:
                add(into, name, labels, values)


def add_live(into: Numbers, numbers: Numbers) -> None:
    """Combine one live process's gauges with the others' (``into``).

    ``min``: a worker that no longer has the replica says NaN; NaN shows only when none
    of them has it any more (workers reload the configuration each at its own time).
    """
    for name, series in numbers.items():
        spec = SPECS.get(name)
        if spec is None or spec.kind != "gauge":
            continue
        merged = into.setdefault(name, {})
        for labels, values in series.items():
            if len(labels) != len(spec.labels) or len(values) != 1:
                continue
            value = values[0]
            before = merged.get(labels)
            if before is None:
                merged[labels] = [value]
            elif spec.across == "sum":
                before[0] += value
            elif math.isnan(before[0]) or value < before[0]:
                before[0] = value


def families(totals: Numbers, live: Numbers) -> Iterator[Metric]:
    """The metric families of merged numbers, every metric even with no series yet."""
    for spec in TOTALS:
        yield _family(spec, totals.get(spec.name, {}))
    for spec in LIVE:
        yield _family(spec, live.get(spec.name, {}))


def _family(spec: Spec, series: Series) -> Metric:
    family: CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily
    if spec.kind == "counter":
        family = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
    elif spec.kind == "gauge":
        family = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
    else:
        family = HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
        bounds = (*(repr(bound) for bound in spec.buckets), "+Inf")
        for labels, values in sorted(series.items()):
            *counts, total = values
            cumulative: list[tuple[str, float]] = []
            seen = 0.0
            for bound, count in zip(bounds, counts, strict=True):
                seen += count
                cumulative.append((bound, seen))
            family.add_metric(labels, cumulative, total)
        return family
    for labels, values in sorted(series.items()):
        family.add_metric(labels, values[0])
    return family


class SpoolCollector(Collector):
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


def encoder(accept: str) -> tuple[Callable[[CollectorRegistry], bytes], str]:
    """OpenMetrics for a scraper that asks for it (version 1 or none named), else the
    Prometheus text format."""
    for entry in accept.split(","):
        media, *parameters = (part.strip() for part in entry.split(";"))
        if media.lower() != "application/openmetrics-text":
            continue
        version = next((p[8:] for p in parameters if p.lower().startswith("version=")), "1")
        major = version.split(".", 1)[0]
        if major.isdigit() and int(major) >= 1:
            return openmetrics.generate_latest, openmetrics.CONTENT_TYPE_LATEST
    return generate_latest, CONTENT_TYPE_PLAIN_0_0_4
