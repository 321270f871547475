"""wrk, the load generator: its Lua script, its command line, and reading its report.

The parsing reads wrk's human report (``--latency``) rather than a Lua ``done()`` hook so
that the numbers in the JSON are exactly the ones a person sees when running wrk by hand.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# wrk prints times with these units (format_time_us in wrk's units.c); all kept in ms.
_MS_PER_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_NUMBER_UNIT = r"(\d+(?:\.\d+)?)(us|ms|s|m|h)"

_PERCENTILE = re.compile(rf"^\s*(\d+(?:\.\d+)?)%\s+{_NUMBER_UNIT}\s*$", re.MULTILINE)
_REQUESTS = re.compile(rf"^\s*(\d+) requests in {_NUMBER_UNIT}", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+(\d+(?:\.\d+)?)", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


class WrkError(RuntimeError):
    """wrk could not be run, or said something this module cannot read."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    latency_ms: dict[str, float]  # percentile ("50", "99", …) → milliseconds
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)  # connect/read/write/timeout

    @property
    def p50_ms(self) -> float:
        return self.latency_ms["50"]

    @property
    def p99_ms(self) -> float:
        return self.latency_ms["99"]

    @property
    def failures(self) -> int:
        """Answers that make the figures meaningless: wrong status or a broken socket."""
        return self.non_2xx + sum(self.socket_errors.values())


def to_ms(number: str, unit: str) -> float:
    try:
        return float(number) * _MS_PER_UNIT[unit]
    except KeyError:
        raise WrkError(f"unknown time unit {unit!r} in wrk's output") from None


def parse_duration_ms(text: str) -> float:
    """``"6.38ms"`` → 6.38, ``"812.00us"`` → 0.812, ``"1.02s"`` → 1020.0."""
    match = re.fullmatch(_NUMBER_UNIT, text.strip())
    if match is None:
        raise WrkError(f"not a wrk duration: {text!r}")
    return to_ms(*match.groups())


def parse_output(text: str) -> WrkResult:
    """Read the report ``wrk --latency`` prints."""
    rps = _RPS.search(text)
    requests = _REQUESTS.search(text)
    latency = {
        _percentile_label(percent): to_ms(number, unit)
        for percent, number, unit in _PERCENTILE.findall(text)
    }
    if rps is None or requests is None or not {"50", "99"} <= latency.keys():
        raise WrkError("could not read wrk's report (was --latency given?):\n" + text)
    non_2xx = _NON_2XX.search(text)
    sockets = _SOCKET_ERRORS.search(text)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True))
        if sockets
        else {}
    )
    return WrkResult(
        requests=int(requests.group(1)),
        duration_s=to_ms(requests.group(2), requests.group(3)) / 1e3,
        rps=float(rps.group(1)),
        latency_ms=latency,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def _percentile_label(percent: str) -> str:
    # "50.000" and "50" are the same percentile; keep JSON keys short and stable.
    return f"{float(percent):g}"


def lua_string(text: str) -> str:
    """A Lua string literal for ``text``; wrk's LuaJIT knows no ``\\u`` escapes, so any
    byte that is not printable ASCII (or is a quote or backslash) becomes ``\\ddd``."""
    out = []
    for byte in text.encode():
        char = chr(byte)
        printable = 0x20 <= byte < 0x7F and char not in '"\\'
        out.append(char if printable else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def lua_script(body: str, headers: Mapping[str, str]) -> str:
    """A wrk script that POSTs ``body`` with ``headers`` on every request."""
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(body)}"]
    lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


def command(
    wrk: str, url: str, *, connections: int, duration_s: int, script: Path, threads: int = 1
) -> list[str]:
    return [
        wrk,
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={duration_s}s",
        "--latency",
        f"--script={script}",
        url,
    ]


def run(
    wrk: str, url: str, *, connections: int, duration_s: int, script: Path
) -> tuple[WrkResult, str]:
    """Run one measurement; returns the result and wrk's report as printed."""
    argv = command(wrk, url, connections=connections, duration_s=duration_s, script=script)
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration_s + 30, check=False
        )
    except subprocess.TimeoutExpired:
        raise WrkError(f"wrk did not finish in {duration_s + 30} s: {' '.join(argv)}") from None
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {done.stderr or done.stdout}")
    return parse_output(done.stdout), done.stdout


def ensure_installed() -> str:
    """The path of wrk, installing the Debian package first when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is not installed: running `apt-get install -y wrk`", flush=True)
    installed = subprocess.run(["apt-get", "install", "-y", "wrk"], check=False)
    if installed.returncode != 0:
        # A fresh container often has no package lists yet.
        print("apt-get install failed: running `apt-get update` and trying again", flush=True)
        subprocess.run(["apt-get", "update"], check=False)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False)
    found = shutil.which("wrk")
    if not found:
        raise WrkError("wrk is missing and `apt-get install -y wrk` did not install it")
    return found


def version(wrk: str) -> str:
    # wrk has no --version: an unknown option prints the version line before the usage.
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    lines = (done.stdout or done.stderr).splitlines()
    return lines[0].split(" Copyright")[0].strip() if lines else "unknown"
