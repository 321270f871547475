"""``python -m attack.run [--full]``: start the target, run the checks, print the table.

The fast part (the default; ``make attack-fast`` and ``attack/test_attack.py``) is
schemathesis with few examples, the hostile cases and the secret corpus, well under two
minutes on a 2-core machine.  ``--full`` (``make attack``) fuzzes with more examples and
adds the journal's completeness under a killed worker and a journal-database outage,
bounded to about ten minutes.  Exits 1 when any check found something.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from attack import access, hostile, journal_check, leaks
from attack.findings import Row, table, write_record
from attack.fuzz import fuzz
from attack.target import Target, started

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DB_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Mode:
    name: str
    max_examples: int
    fuzz_timeout_s: float
    extended: bool  # the known failures, the journal's completeness (load, kill, outage)
    leave_out_known: bool  # known schemathesis failures not counted (the CI run)


FAST = Mode("fast", max_examples=5, fuzz_timeout_s=90, extended=False, leave_out_known=True)
FULL = Mode("full", max_examples=100, fuzz_timeout_s=240, extended=True, leave_out_known=False)

Check = Callable[[Target, httpx.Client], Row]


def checks(mode: Mode, results: Path) -> list[Check]:
    """In order: the management API's fuzzing may disable the attack's users, so it is
    last; the journal's checks kill a worker, so they come after the rest of the public
    API; the upstream check stops an upstream, whose 503s the public fuzzing would take
    for findings, so it follows that."""

    def public_schema(target: Target, client: httpx.Client) -> Row:
        return fuzz(
            target, name="schemathesis public API", schema_path="/v1/openapi.json",
            headers=target.bearer("fuzzer"), max_examples=mode.max_examples,
            leave_out_known=mode.leave_out_known, timeout=mode.fuzz_timeout_s, log_dir=results,
        )  # fmt: skip

    def management_schema(target: Target, client: httpx.Client) -> Row:
        return fuzz(
            target, name="schemathesis management API", schema_path="/api/schema/?format=json",
            headers=target.admin(), max_examples=mode.max_examples,
            leave_out_known=mode.leave_out_known, timeout=mode.fuzz_timeout_s, log_dir=results,
        )  # fmt: skip

    found: list[Check] = [*hostile.CASES, *access.CASES, leaks.secret_corpus, public_schema]
    found.append(hostile.upstream_addresses)
    if mode.extended:
        found += [journal_check.killed_worker, journal_check.journal_outage]
    return [*found, management_schema]


def run_checks(target: Target, mode: Mode, results: Path) -> list[Row]:
    rows = []
    with httpx.Client(base_url=target.url, timeout=30) as client:
        for check in checks(mode, results):
            row = Row(check.__name__)
            started_at = time.monotonic()
            try:
                row = check(target, client)
            except Exception:  # a crashed check is a finding, and the others still run
                row.findings.append("the check crashed: " + traceback.format_exc(limit=3))
            row.seconds = time.monotonic() - started_at
            if not target.server.alive():
                row.findings.append("the server exited:\n" + target.server.tail())
            rows.append(row)
            print(f"  {row.check}: {row.cases} cases, {len(row.findings)} findings", flush=True)
            if not target.server.alive():
                break
    return rows


def attack(mode: Mode, db_url: str, redis_url: str, results: Path = RESULTS) -> list[Row]:
    """Start the target, run the mode's checks, stop everything; the rows."""
    startup = Row("startup", cases=1)
    began = time.monotonic()
    with started(db_url, redis_url) as target:
        startup.seconds = time.monotonic() - began
        print(f"  target up at {target.url} in {startup.seconds:.1f} s", flush=True)
        rows = run_checks(target, mode, results)
    return [startup, *rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full run (make attack)")
    parser.add_argument(
        "--db-url",
        default=os.environ.get("DB_URL") or DEFAULT_DB_URL,
        help="a PostgreSQL the run may create its databases on (its database name is ignored)",
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    mode = FULL if args.full else FAST
    started_at = time.monotonic()
    print(f"attack ({mode.name}) on 127.0.0.1", flush=True)
    rows = attack(mode, args.db_url, args.redis_url, args.results)
    seconds = time.monotonic() - started_at
    print()
    print(table(rows))
    record = write_record(rows, args.results, mode.name, seconds)
    findings = sum(len(row.findings) for row in rows)
    print(f"\n{findings} finding(s) in {seconds:.0f} s; record: {record}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
