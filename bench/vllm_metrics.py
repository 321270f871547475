"""What a vLLM replica says in its Prometheus ``/metrics``: the counters a routing run
compares before and after, and whether it is idle.

The names are vLLM 0.32's (``vllm:prefix_cache_queries`` and ``vllm:prefix_cache_hits``
count prompt tokens looked up in and found in the prefix cache; counters end in
``_total`` in the text).  Each is summed over its label sets (engine, model).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import httpx

PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
PREFIX_HITS = "vllm:prefix_cache_hits_total"
GENERATION_TOKENS = "vllm:generation_tokens_total"
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
COUNTERS = (PREFIX_QUERIES, PREFIX_HITS, GENERATION_TOKENS)


def parse(text: str, names: Iterable[str]) -> dict[str, float]:
    """Each of ``names`` summed over its samples; a name with no sample is absent."""
    wanted = set(names)
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in wanted:
            found[name] = found.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


def read(url: str, names: Iterable[str] = COUNTERS) -> dict[str, float]:
    """The replica's values of ``names``; raises when one is missing (a renamed metric
    would otherwise read as 0 and every comparison would prove nothing)."""
    names = tuple(names)
    response = httpx.get(url + "/metrics", timeout=30)
    response.raise_for_status()
    found = parse(response.text, names)
    missing = [name for name in names if name not in found]
    if missing:
        raise RuntimeError(f"{url}/metrics has no {', '.join(missing)}")
    return found


def busy(url: str) -> float:
    """Requests the replica is running or holding in its queue."""
    values = read(url, (RUNNING, WAITING))
    return values[RUNNING] + values[WAITING]


@dataclass(frozen=True)
class Delta:
    """What the replicas counted between two readings, all replicas together."""

    queries: float
    hits: float
    generated: float

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0


def delta(
    before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]]
) -> Delta:
    """``before`` and ``after``: :func:`read` of each replica, by its URL."""

    def total(name: str) -> float:
        return sum(after[url][name] - before[url][name] for url in after)

    return Delta(
        queries=total(PREFIX_QUERIES), hits=total(PREFIX_HITS), generated=total(GENERATION_TOKENS)
    )
