"""The bench's CPU accounting: /proc parsing, process trees, services, the race's CPU table."""

from __future__ import annotations

import os
import subprocess
import sys

from bench import cpu, race, wrk
from bench.cpu import CpuMeter, ProcessCpu


def _stat(pid: int, name: str, ppid: int, utime: int, stime: int) -> str:
    # stat(5): pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt
    # cmajflt utime stime ...
    return f"{pid} ({name}) S {ppid} 1 1 0 -1 4194560 10 0 0 0 {utime} {stime} 0 0 20 0 1 0"


def test_a_stat_line_is_read_even_when_the_name_has_spaces_and_parentheses() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    row = cpu.parse_stat(_stat(42, "odd) (name", 7, 3 * ticks, ticks))
    assert row == ProcessCpu(pid=42, ppid=7, name="odd) (name", seconds=4.0)


def test_a_tree_sums_the_root_and_every_descendant_but_nothing_else() -> None:
    table = [
        ProcessCpu(10, 1, "uvicorn", 1.0),
        ProcessCpu(11, 10, "python", 2.0),  # the journal's helper
        ProcessCpu(12, 11, "python", 0.5),  # its own child
        ProcessCpu(20, 1, "other", 100.0),
    ]
    assert cpu.tree_seconds(10, table) == 3.5
    assert cpu.tree_seconds(99, table) == 0.0  # gone


def test_services_are_counted_by_process_name() -> None:
    table = [
        ProcessCpu(30, 1, "postgres", 1.0),
        ProcessCpu(31, 30, "postgres", 2.0),
        ProcessCpu(40, 1, "redis-server", 0.25),
        ProcessCpu(50, 1, "python", 9.0),
    ]
    assert cpu.service_seconds(table) == {"postgres": 3.0, "redis": 0.25}


def test_the_meter_sees_a_child_process_work() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sum(range(3_000_000)); print('done', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "done\n"  # it has worked and is still running
        snapshot = CpuMeter({"me": os.getpid()}).snapshot()
        child_seconds = cpu.tree_seconds(child.pid, cpu.processes())
        assert child_seconds > 0
        assert snapshot["me"] >= child_seconds
        assert set(snapshot) == {"me", "postgres", "redis"}
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)


def test_shares_are_per_core_and_never_negative() -> None:
    before = {"kodify": 1.0, "postgres": 5.0}
    after = {"kodify": 2.5, "postgres": 4.0}  # a backend ended: its time went with it
    assert CpuMeter.shares(before, after, 2.0) == {"kodify": 0.75, "postgres": 0.0}


def _result(rps: float) -> wrk.WrkResult:
    return wrk.WrkResult(
        requests=int(rps * 5), duration_s=5.0, rps=rps, latency_ms={"50": 1.0, "99": 2.0}
    )


def test_the_cpu_table_adds_the_services_and_gives_the_cost_per_chunk() -> None:
    by_wrk = {
        "direct": {"non-stream c=32": _result(5000), "stream c=32": _result(2000)},
        "full-stack": {"non-stream c=32": _result(1000), "stream c=32": _result(500)},
    }
    shares = {
        "full-stack": {
            "non-stream c=32": {"Kodify full stack": 0.5, "postgres": 0.2, "redis": 0.1},
            "stream c=32": {"Kodify full stack": 0.5, "postgres": 0.05, "redis": 0.05},
        }
    }
    text = race.cpu_table(by_wrk, shares, {"full-stack": "Kodify full stack"}, chunks=16)
    row = next(line for line in text.splitlines() if line.startswith("| full-stack"))
    # non-stream: 500 + 200 + 100 = 800 us; stream: 1000 + 100 + 100 = 1200 us; (1200-800)/16
    assert row == "| full-stack | 500 | 200 | 100 | 800 | 1,200 | 25.0 |"
    assert "| direct" not in text
