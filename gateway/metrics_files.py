"""The metrics folder (``KODIFY_METRICS_DIR``): every worker's numbers, where a scrape of
any worker finds them (gateway/metrics.py).

Each process writes two files of its own, whole, every time it publishes (a temporary
file renamed over the last one, so that a reader never sees half of one):

* ``totals-<pid>.json``: its counters and histograms, which stay after it died: a
  counter must not go backwards while the server runs;
* ``live-<pid>.json``: its gauges, deleted once it died (a dead worker has no requests
  in flight).

Both hold :data:`gateway.metrics_catalog.Numbers` as JSON: ``{name: [[labels, values],
…]}``.  prometheus-client's own multiprocess files are not used: its metric objects bind
to the folder and process id they first wrote to, for the life of the process, and its
public API has no way to close or move them, while a process here must be able to start
over (its gauges deleted at stop, recording again later) and tests give each test a
folder of its own.

Who is alive: every process holds a lock on a ``.pid-<pid>`` file of its own for its
lifetime.  The first process that finds no other alive empties the folder (a new server:
the last run's values must not count), one that finds others (a worker uvicorn restarted)
joins them.  The gauges of a process that died are deleted at every start and scrape.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from gateway.metrics_catalog import Numbers, add_live, add_totals, families

GUARD = ".lock"
PID_PREFIX = ".pid-"
TOTALS_PREFIX = "totals-"
LIVE_PREFIX = "live-"
SUFFIX = ".json"
_TEMPORARY_PREFIX = ".tmp-"
# What an earlier Kodify left here (prometheus-client's multiprocess files): a new server
# deletes them with its own.
_LEGACY_PATTERN = "*.db"


def totals_path(directory: Path, pid: int | str) -> Path:
    return directory / f"{TOTALS_PREFIX}{pid}{SUFFIX}"


def live_path(directory: Path, pid: int | str) -> Path:
    return directory / f"{LIVE_PREFIX}{pid}{SUFFIX}"


# -- a process's numbers on disk -----------------------------------------------------------


def encode(numbers: Numbers) -> bytes:
    """The JSON of ``numbers`` (NaN included: a replica that left the configuration)."""
    return json.dumps(
        {
            name: [[list(labels), values] for labels, values in series.items()]
            for name, series in numbers.items()
        },
        separators=(",", ":"),
    ).encode()


def write_numbers(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (encode's) at once: readers see the old or the new."""
    temporary = path.with_name(f"{_TEMPORARY_PREFIX}{path.name}")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def read_numbers(path: Path) -> Numbers:
    """The numbers in a file; nothing from a file that is gone or not ours."""
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    numbers: Numbers = {}
    if not isinstance(raw, dict):
        return numbers
    for name, entries in raw.items():
        series = numbers.setdefault(str(name), {})
        with contextlib.suppress(TypeError, ValueError):
            for labels, values in entries:
                series[tuple(str(label) for label in labels)] = [float(v) for v in values]
    return numbers


# -- the folder ------------------------------------------------------------------------------


@contextlib.contextmanager
def guarded(directory: Path) -> Iterator[None]:
    """Exclusive use of the folder's bookkeeping, among all processes."""
    fd = os.open(directory / GUARD, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and the lock with it


def claim(directory: Path) -> int:
    """Join the folder as a live process: returns the lock held for the process's life.

    Finding no other live process, empty the folder first (a new server start).
    """
    directory.mkdir(parents=True, exist_ok=True)
    with guarded(directory):
        if not sweep(directory):
            for pattern in (
                f"{TOTALS_PREFIX}*{SUFFIX}",
                f"{LIVE_PREFIX}*{SUFFIX}",
                f"{_TEMPORARY_PREFIX}*",
                _LEGACY_PATTERN,
            ):
                for path in directory.glob(pattern):
                    path.unlink(missing_ok=True)
        fd = os.open(directory / f"{PID_PREFIX}{os.getpid()}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
    return fd


def release(directory: Path, pid_lock: int) -> None:
    """The end of this process in the folder: its gauges and its lock file go, its totals
    stay."""
    with contextlib.suppress(OSError), guarded(directory):
        live_path(directory, os.getpid()).unlink(missing_ok=True)
        (directory / f"{PID_PREFIX}{os.getpid()}").unlink(missing_ok=True)
    os.close(pid_lock)


def sweep(directory: Path) -> int:
    """Delete the gauges of dead processes and their lock files (under :func:`guarded`);
    returns how many processes are alive."""
    alive: set[str] = set()
    for path in directory.glob(f"{PID_PREFIX}*"):
        pid = path.name[len(PID_PREFIX) :]
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
    for path in directory.glob(f"{LIVE_PREFIX}*{SUFFIX}"):
        if _pid_of(path, LIVE_PREFIX) not in alive:
            path.unlink(missing_ok=True)
    return len(alive)


def _pid_of(path: Path, prefix: str) -> str:
    return path.name[len(prefix) : -len(SUFFIX)]


class FolderCollector(Collector):
    """Every process's numbers in the folder, added up (gauges: the live ones only, which
    the last :func:`sweep` left)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        totals: Numbers = {}
        live: Numbers = {}
        for path in sorted(self.directory.glob(f"{TOTALS_PREFIX}*{SUFFIX}")):
            add_totals(totals, read_numbers(path))
        for path in sorted(self.directory.glob(f"{LIVE_PREFIX}*{SUFFIX}")):
            add_live(live, read_numbers(path))
        return families(totals, live)
