"""What a check reports: cases tried and findings, one row per check, as a table and JSON.

A *finding* is a case whose answer was not the one a secure server gives (a 5xx, a
secret stored in clear, a forged address believed...).  Each carries a line that says
what was sent and what came back, so that a red row can be reproduced by hand.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

PASS = "pass"
FAIL = "FAIL"
SKIP = "skipped"


@dataclass
class Row:
    """One line of the table: a check, how many cases it tried, what it found."""

    check: str
    cases: int = 0
    findings: list[str] = field(default_factory=list)
    skipped: str = ""  # why the check did not run, when it did not
    notes: list[str] = field(default_factory=list)  # e.g. known failures left out of CI
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        if self.skipped:
            return SKIP
        return FAIL if self.findings else PASS

    def expect(self, ok: bool, finding: str) -> bool:
        """Count one case; a finding unless ``ok``.  Returns ``ok``."""
        self.cases += 1
        if not ok:
            self.findings.append(finding)
        return ok


def table(rows: Iterable[Row]) -> str:
    """The rows as a plain-text table, then each finding under its check."""
    rows = list(rows)
    header = ("check", "cases", "findings", "verdict", "s")
    lines = [
        (r.check, str(r.cases), str(len(r.findings)), r.verdict, f"{r.seconds:.1f}") for r in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]

    def fmt(cells: tuple[str, ...]) -> str:
        return " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    out = [fmt(header), "-+-".join("-" * width for width in widths), *map(fmt, lines)]
    for row in rows:
        if row.skipped:
            out.append(f"\n{row.check}: skipped: {row.skipped}")
        if row.notes:
            out.append(f"\n{row.check}: notes")
            out += [f"  - {note}" for note in row.notes]
        if row.findings:
            out.append(f"\n{row.check}: {len(row.findings)} finding(s)")
            out += [f"  - {finding}" for finding in row.findings[:30]]
            if len(row.findings) > 30:
                out.append(f"  ... and {len(row.findings) - 30} more (see the JSON record)")
    return "\n".join(out)


def write_record(rows: Iterable[Row], folder: Path, mode: str, seconds: float) -> Path:
    """The run as JSON, ``<folder>/attack-<mode>-<UTC time>.json``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = folder / f"attack-{mode}-{stamp}.json"
    record = {
        "mode": mode,
        "finished_at": stamp,
        "seconds": round(seconds, 1),
        "rows": [{**asdict(row), "verdict": row.verdict} for row in rows],
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
