"""CPU time spent by whatever serves a target's requests, read from ``/proc``.

A server's own process is not all it costs: Kodify's journal converts rows in a helper
process (a child), and the full stack makes PostgreSQL and Redis work too.  On a machine
with two cores those share the cores with the server and with wrk, so RPS alone hides
where the time went; CPU time per request, counted over the server's process tree and
the database services, says it.

The services are counted by process name over the whole machine (every ``postgres``
backend and ``redis-server``), so their figure is only the target's own while nothing
else uses them: the bench's targets take turns, and the others are idle meanwhile.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Service label -> the process names (comm) that make it up.
SERVICES: Mapping[str, tuple[str, ...]] = {
    "postgres": ("postgres",),
    "redis": ("redis-server",),
}
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcessCpu:
    pid: int
    ppid: int
    name: str
    seconds: float  # user + system, since the process started


def parse_stat(text: str) -> ProcessCpu:
    """One ``/proc/<pid>/stat`` line (the name may hold spaces and parentheses)."""
    head, _, tail = text.rpartition(")")
    pid, _, name = head.partition(" (")
    fields = tail.split()
    # After the name: state, ppid, ... utime and stime are the 12th and 13th (stat(5)).
    return ProcessCpu(
        pid=int(pid),
        ppid=int(fields[1]),
        name=name,
        seconds=(int(fields[11]) + int(fields[12])) / _TICKS,
    )


def processes(proc: Path = Path("/proc")) -> list[ProcessCpu]:
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            found.append(parse_stat((entry / "stat").read_text()))
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
    return found


def tree_seconds(root: int, table: Iterable[ProcessCpu]) -> float:
    """CPU seconds of ``root`` and every descendant still running."""
    rows = list(table)
    children: dict[int, list[ProcessCpu]] = {}
    by_pid = {}
    for row in rows:
        children.setdefault(row.ppid, []).append(row)
        by_pid[row.pid] = row
    if root not in by_pid:
        return 0.0
    total, todo = 0.0, [by_pid[root]]
    while todo:
        row = todo.pop()
        total += row.seconds
        todo.extend(children.get(row.pid, ()))
    return total


def service_seconds(table: Iterable[ProcessCpu]) -> dict[str, float]:
    totals = dict.fromkeys(SERVICES, 0.0)
    for row in table:
        for label, names in SERVICES.items():
            if row.name in names:
                totals[label] += row.seconds
    return totals


class CpuMeter:
    """Snapshots of CPU seconds: each named server's process tree, then each service.

    A service's backend that ends between two snapshots takes its time with it, which
    undercounts; PostgreSQL's backends live as long as the connection, so a server's
    pooled connections keep their time in view.
    """

    def __init__(self, servers: Mapping[str, int]) -> None:
        self.servers = dict(servers)

    def snapshot(self) -> dict[str, float]:
        table = processes()
        found = {name: tree_seconds(pid, table) for name, pid in self.servers.items()}
        found.update(service_seconds(table))
        return found

    @staticmethod
    def shares(
        before: Mapping[str, float], after: Mapping[str, float], seconds: float
    ) -> dict[str, float]:
        """Share of one core each used between two snapshots ``seconds`` apart."""
        return {
            name: max(0.0, after.get(name, 0.0) - used) / seconds
            for name, used in before.items()
            if seconds > 0
        }
