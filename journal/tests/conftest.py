"""Fixtures of the journal's tests: a private PostgreSQL cluster to pull the plug on.

The outage tests stop and start a database server; doing that to the shared one would
break every other test running beside them, so they get a cluster of their own: initdb
into a temporary folder, its own port and socket folder, trust authentication, run as
the ``postgres`` OS user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import time_machine

from journal.tests.entries import T0
from kodify_site.testing import free_port


@pytest.fixture
def today_at_t0() -> Iterator[dt.date]:
    """The clock set to ``T0`` (noon, UTC) and running: "today" is T0's day for the whole
    test, whatever the real date, and no midnight passes between making rows and reading
    them."""
    with time_machine.travel(T0, tick=True):
        yield T0.date()


PG_BIN = Path(os.environ.get("KODIFY_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
JOURNAL_DB = "journal"
STOP_TIMEOUT_S = 30
START_TIMEOUT_S = 60


def _as_postgres(*command: str) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return list(command)


@dataclass
class PrivateCluster:
    """A PostgreSQL server this test may stop and start at will."""

    data_dir: Path
    socket_dir: Path
    port: int
    log_file: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{JOURNAL_DB}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        subprocess.run(
            _as_postgres(
                str(PG_BIN / "pg_ctl"),
                "start",
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        """Fast shutdown: open sessions are cut off, as in a crash of the network."""
        subprocess.run(
            _as_postgres(
                str(PG_BIN / "pg_ctl"),
                "stop",
                "-w",
                "-t",
                str(STOP_TIMEOUT_S),
                "-m",
                "fast",
                "-D",
                str(self.data_dir),
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def running(self) -> bool:
        status = subprocess.run(
            _as_postgres(str(PG_BIN / "pg_ctl"), "status", "-D", str(self.data_dir)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return status.returncode == 0

    def connect(self, dbname: str = JOURNAL_DB) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True
        )


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    """A fresh PostgreSQL 15 cluster with an empty ``journal`` database."""
    if not (PG_BIN / "initdb").exists() or not shutil.which("runuser"):
        pytest.skip(f"needs PostgreSQL's server programs in {PG_BIN}")
    # Not pytest's tmp_path: its folders are private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="kodify-journal-pg-"))
    os.chmod(base, 0o755)
    shutil.chown(base, user="postgres")
    cluster = PrivateCluster(
        data_dir=base / "data", socket_dir=base, port=free_port(), log_file=base / "server.log"
    )
    try:
        subprocess.run(
            _as_postgres(
                str(PG_BIN / "initdb"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
                str(cluster.data_dir),
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        cluster.start()
        with cluster.connect("postgres") as connection:
            connection.execute(f"CREATE DATABASE {JOURNAL_DB}")
        yield cluster
    finally:
        if cluster.running():
            cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
