"""``make bench``: the fake vLLM upstream measured directly and through Kodify, side by side.

One run starts the fake upstream and Kodify (one uvicorn worker, as in production) on
127.0.0.1, drives every scenario with wrk against each target in turn, times the first
stream chunk with a small asyncio client, prints the comparison and writes it to
``bench/results/<timestamp>.json``.

New comparisons slot in as data: a :class:`~bench.scenarios.Scenario` in ``SCENARIOS``
(``bench.scenarios``), or a function that starts a target (per-user auth, the journal on,
a LiteLLM peer) in ``CANDIDATES`` (``bench.targets``).  ``bench.measure`` drives the load
and ``bench.run_report`` makes the record and the report; this module is the command line
and runs them in order, with every server stopped on the way out.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from bench import chart, race, report, streams, wrk
from bench.measure import (
    LoadAverage,
    Measured,
    Settings,
    measure_auth_rounds,
    measure_fim_cpu,
    measure_journal_rounds,
    measure_load,
    measure_streams,
    measure_tabby_rounds,
    measure_ttft,
)
from bench.run_report import build_record, git_commit, peer_failures, print_report
from bench.scenarios import SCENARIOS, TABBY_CONNECTIONS
from bench.servers import StartupError
from bench.targets import (
    CANDIDATES,
    DUMMY,
    BenchError,
    Target,
    ceiling_target,
    direct_target,
    full_stack_target,
    journal_target,
    litellm_target,
    per_user_redis_target,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def run_bench(settings: Settings) -> int:
    wrk_path = wrk.ensure_installed()
    started = datetime.now(UTC)
    measured = Measured(loadavg_before=os.getloadavg(), commit=git_commit())
    warn_if_busy(measured.loadavg_before)
    measure_fim_cpu(settings, measured)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kodify-bench-")))
        direct = direct_target(stack, workdir, settings.chunks)
        starts = list(CANDIDATES)
        if settings.redis_url:
            starts.append(per_user_redis_target(settings.redis_url))
        if settings.journal:
            journal_db = settings.journal_db_url
            starts.append(journal_target(journal_db and own_database(stack, journal_db, "journal")))
        if settings.race:
            starts.append(ceiling_target)
            if settings.litellm_python:
                starts.append(litellm_target(settings.litellm_python))
            if settings.redis_url and settings.journal_db_url:
                full_db = own_database(stack, settings.journal_db_url, "full")
                starts.append(full_stack_target(settings.redis_url, full_db))
        candidates = [start(stack, workdir, direct) for start in starts]
        targets = [direct, *candidates]
        measured.servers = {t.name: t.server.name for t in targets}
        print(_banner(targets, settings), flush=True)
        measure_load(wrk_path, targets, settings, workdir, measured)
        measured.rss_mb = race.rss_of({t.name: t.server.process.pid for t in targets})
        measure_auth_rounds(wrk_path, targets, settings, workdir, measured)
        measure_journal_rounds(wrk_path, targets, settings, workdir, measured)
        measure_tabby_rounds(wrk_path, targets, settings, workdir, measured)
        measure_ttft(targets, settings, measured)
        if settings.race:
            measure_streams(targets, settings, measured)
        measured.logs = {t.name: t.server.lines_after_startup() for t in targets}
        measured.loadavg_after = os.getloadavg()
    # Every server is stopped here; what follows only reports.
    urls = {target.name: target.url for target in targets}
    record = build_record(measured, settings, urls, [c.name for c in candidates], started)
    print_report(measured, record, [c.name for c in candidates])
    if race.race_names([c.name for c in candidates]):
        text = race.table(
            measured.by_wrk,
            measured.rss_mb,
            {name: result.p50_ms for name, result in measured.first_chunk.items()},
        )
        text += "\n\n" + race.cpu_table(
            measured.by_wrk, measured.cpu, measured.servers, settings.chunks
        )
        if measured.open_streams or measured.disconnects:
            text += (
                f"\n\n{settings.open_streams:,} streams held open {settings.open_streams_s:g} s"
                f" at once; {settings.disconnects} streams cut off by their client after the "
                "first chunk:\n\n"
                + streams.streams_table(measured.open_streams, measured.disconnects)
            )
        peers = peer_failures(measured)
        if peers:
            text += "\n\nUnder the same load (wrk's 2 s timeout):\n" + "\n".join(
                f"- {line}" for line in peers
            )
        print(f"\nThe race (requests per second, same run; ratios of RPS):\n{text}")
        race.write_results(
            text,
            started=started,
            commit=record.get("commit"),
            settings_line=f"wrk {settings.duration_s} s per scenario after {settings.warmup_s} s "
            f"warm-up, {settings.chunks}-chunk streams, one worker per server",
            path=settings.race_dir / race.RESULTS_MD.name,
        )
        print(f"written: {settings.race_dir / race.RESULTS_MD.name}")
        png = chart.write_chart(
            measured.by_wrk,
            settings.race_dir / chart.CHART_PNG.name,
            title=f"Kodify race: {race.machine()}, {started:%Y-%m-%d %H:%M} UTC, "
            f"commit {record.get('commit') or 'unknown'}",
        )
        print(f"written: {png}")
    path = settings.results_dir / f"{started:%Y%m%d-%H%M%S}.json"
    report.write_json(path, record)
    print(f"\nresults: {path}")
    return 0 if record["valid"] else 1


def own_database(stack: ExitStack, server_url: str, purpose: str) -> str:
    """A database of this run's own on ``server_url``'s server (created by Kodify's
    migration), dropped when the run ends: runs side by side never share rows."""
    import psycopg

    base, _, _ = server_url.rpartition("/")
    name = f"kodify_bench_{purpose}_{os.getpid()}"

    def drop() -> None:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    stack.callback(drop)
    return f"{base}/{name}"


def warn_if_busy(load: LoadAverage) -> None:
    # Kodify, the fake and wrk already share the cores; anything else running skews the
    # comparison, and the record keeps the load so that a reader can tell.
    cpus = os.cpu_count() or 1
    if load[0] > cpus / 2:
        print(
            f"note: the machine is busy (load average {load[0]:.1f} on {cpus} cores); "
            "expect noisy figures",
            flush=True,
        )


def _banner(targets: Sequence[Target], settings: Settings) -> str:
    runs = len(SCENARIOS) * len(targets)
    seconds = runs * (settings.warmup_s + settings.duration_s)
    where = ", ".join(f"{t.name} {t.url}" for t in targets)
    tabby = ""
    if settings.tabby_rounds > 0 and any(t.name == DUMMY for t in targets):
        tabby_runs = settings.tabby_rounds * len(TABBY_CONNECTIONS) * 2
        tabby = (
            f", {tabby_runs} paired OpenAI/Tabby completion runs (about "
            f"{tabby_runs * (settings.warmup_s + settings.duration_s)} s)"
        )
    return (
        f"targets: {where}\n"
        f"{runs} wrk runs of {settings.warmup_s} s warm-up + {settings.duration_s} s "
        f"(about {seconds} s){tabby}, then {settings.ttft_requests} sequential streams per "
        "target"
    )


# -- entry point -------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up before each")
    parser.add_argument("--chunks", type=int, default=16, help="chunks per fake stream")
    parser.add_argument("--ttft-requests", type=int, default=200)
    parser.add_argument(
        "--auth-rounds",
        type=int,
        default=3,
        help="paired dummy/per-user measurements of non-stream c=32 for the auth cost",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--redis-url",
        help="also measure per-user mode with its limits in this Redis (e.g. "
        "redis://127.0.0.1:6379/0); the bench itself never reads REDIS_URL",
    )
    parser.add_argument("--no-journal", action="store_true", help="skip the journal-on comparison")
    parser.add_argument(
        "--journal-db-url",
        help="a PostgreSQL server (any database on it, e.g. "
        "postgresql://postgres@127.0.0.1:5432/postgres) on which the journal-on and full-stack "
        "Kodify get databases of the run's own, dropped at its end; default: embedded SQLite",
    )
    parser.add_argument("--journal-rounds", type=int, default=3)
    parser.add_argument(
        "--race",
        action="store_true",
        help="also race the bare-ASGI ceiling, LiteLLM (--litellm-python) and the full stack "
        "(--redis-url and --journal-db-url) and write bench/RESULTS.md",
    )
    parser.add_argument("--litellm-python", help="python of a venv with litellm[proxy]")
    parser.add_argument(
        "--open-streams",
        type=int,
        default=1000,
        help="with --race: streams each server holds open at once (0 skips it)",
    )
    parser.add_argument("--open-streams-seconds", type=float, default=60.0)
    parser.add_argument(
        "--race-dir",
        type=Path,
        default=race.RESULTS_MD.parent,
        help="where the race's RESULTS.md and chart go (default: bench/, committed)",
    )
    parser.add_argument(
        "--disconnects",
        type=int,
        default=20,
        help="with --race: streams cut off by their client, timed to the upstream's close",
    )
    parser.add_argument(
        "--tabby-rounds",
        type=int,
        default=2,
        help="paired OpenAI/Tabby completion measurements at c=1 and c=32 (0 skips them)",
    )
    parser.add_argument(
        "--fim-iterations",
        type=int,
        default=2000,
        help="iterations of bench.fim's in-process FIM timing per workload (0 skips it)",
    )
    args = parser.parse_args(argv)
    return Settings(
        duration_s=args.duration,
        warmup_s=args.warmup,
        chunks=args.chunks,
        ttft_requests=args.ttft_requests,
        ttft_warmup=20,
        results_dir=args.results_dir,
        redis_url=args.redis_url,
        auth_rounds=args.auth_rounds,
        journal=not args.no_journal,
        journal_db_url=args.journal_db_url,
        journal_rounds=args.journal_rounds,
        tabby_rounds=args.tabby_rounds,
        fim_iterations=args.fim_iterations,
        race=args.race,
        litellm_python=args.litellm_python,
        open_streams=args.open_streams,
        open_streams_s=args.open_streams_seconds,
        disconnects=args.disconnects,
        race_dir=args.race_dir,
    )


class Terminated(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _unwind_on_signals() -> None:
    # Every way out must unwind the ExitStack, which stops the servers. SIGINT is reset too:
    # a shell that starts the bench in the background hands it down ignored.
    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signum)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--journal-rows" or a.startswith("--journal-rows=") for a in arguments):
        from bench import journal  # the console's pages over N rows: no servers, no wrk

        return journal.main(arguments)
    settings = parse_args(argv)
    _unwind_on_signals()
    try:
        return run_bench(settings)
    except KeyboardInterrupt:
        print("\ninterrupted; every process the bench started is stopped", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"\n{exc}: every process the bench started is stopped", file=sys.stderr)
        return 128 + exc.signum
    except (BenchError, StartupError, wrk.WrkError, EOFError, OSError) as exc:
        print(f"\nbench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
