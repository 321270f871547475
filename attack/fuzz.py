"""Schemathesis against both published schemas: does every answer keep their promises?

The public API's document (``/v1/openapi.json``) is fuzzed with a valid token, the
management API's (``/api/schema/``) with the administrator key.  Checks: no 5xx, answers
conform to the schema, every status is documented.  The command line is used rather than
the Python API: its JSON report is a stable summary, and a crash of the fuzzer stays in
its own process.  A fixed seed makes a run repeatable.

The management API's run creates users and tokens, and may disable or revoke the
attack's own: it runs after every other check that needs them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from attack.findings import Row
from attack.target import Target

SEED = 20261207
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"
# What schemathesis finds that is not a flaw of the server, by failure title and
# operation: the fast run (CI) leaves such failures out and says so, the full run reports
# them.  None today: the review's (streams documented as one string, DRF's parse-error
# 400, a NUL's bare-list 400, PostgreSQL's refusal of far UTC offsets) are fixed.
KNOWN_ANSWERS: dict[str, str] = {}
_SECTION = re.compile(r"^_{3,} (.+?) _{3,}$")
_STATUS = re.compile(r"^\[\d{3}\] ")


def known(title: str, operation: str, answers: list[str]) -> str:
    """Why this failure is left out of the fast run, or ``""``.

    ``answers``: what came back in the failing cases of that operation (status line and
    body), as schemathesis printed them.
    """
    path = operation.partition(" ")[2]
    if title != "Response violates schema" or not path.startswith("/api/") or not answers:
        return ""
    reasons = {KNOWN_ANSWERS[marker] for a in answers for marker in KNOWN_ANSWERS if marker in a}
    if all(any(marker in answer for marker in KNOWN_ANSWERS) for answer in answers):
        return "; ".join(sorted(reasons))
    return ""


def fuzz(
    target: Target,
    *,
    name: str,
    schema_path: str,
    headers: dict[str, str],
    max_examples: int,
    leave_out_known: bool,
    timeout: float,
    log_dir: Path,
) -> Row:
    """One schemathesis run; its log is kept in ``log_dir``."""
    row = Row(name)
    # A folder of its own, removed after: schemathesis keeps a cache where it runs
    # (.schemathesis/) and replays the failures it holds, which would make runs differ.
    work = Path(tempfile.mkdtemp(prefix="kodify-attack-st-"))
    try:
        _run(
            row, target, schema_path, headers, max_examples, leave_out_known, timeout, work, log_dir
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return row


def _run(
    row: Row,
    target: Target,
    schema_path: str,
    headers: dict[str, str],
    max_examples: int,
    leave_out_known: bool,
    timeout: float,
    work: Path,
    log_dir: Path,
) -> None:
    argv = [
        sys.executable, "-m", "schemathesis.cli", "run", target.url + schema_path,
        "--max-examples", str(max_examples), "--seed", str(SEED), "--checks", CHECKS,
        "--workers", "1", "--request-timeout", "30", "--no-color",
        "--report", "json", "--report-dir", str(work),
    ]  # fmt: skip
    for key, value in headers.items():
        argv += ["--header", f"{key}: {value}"]
    try:
        done = subprocess.run(
            argv, cwd=work, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        row.expect(False, f"schemathesis did not finish within {timeout:g} s")
        return
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"schemathesis-{row.check.replace(' ', '-')}.log"
    log.write_text(done.stdout + done.stderr)
    reports = sorted(work.glob("*.json"))
    if not reports:
        row.expect(False, f"schemathesis exited {done.returncode} with no report: see {log}")
        return
    report = json.loads(reports[-1].read_text())
    _rows_from_report(row, report, _failure_sections(done.stdout), leave_out_known, log)


def _rows_from_report(
    row: Row, report: dict[str, Any], sections: dict[str, list[str]], leave_out: bool, log: Path
) -> None:
    row.cases = int(report["test_cases"]["generated"])
    left_out: list[str] = []
    for failure in report["failures"]:
        for operation in failure["operations"]:
            # A failure found by the stateful phase is printed under its own heading.
            answers = sections.get(operation) or sections.get("Stateful tests", [])
            why = known(failure["title"], operation, answers)
            line = f"{failure['code']} {failure['title']}: {operation}"
            if why and leave_out:
                left_out.append(f"{line} ({why})")
                continue
            if answers:
                line += f" — {answers[0][:240]}"
            row.findings.append(f"{line} [known: {why}]" if why else line)
    for error in report["errors"]:
        # The fuzzer's own error: the operation was not fully tried, so it is not a pass.
        title, times = error["title"], error["count"]
        row.findings.append(f"schemathesis's own error: {title} x{times} (see {log})")
    row.notes += [f"left out (known): {line}" for line in left_out]


def _failure_sections(stdout: str) -> dict[str, list[str]]:
    """What came back in each operation's failing cases, from schemathesis's text output:
    the status line (``[400] Bad Request:``) and the first line of the body after it."""
    found: dict[str, list[str]] = {}
    current = ""
    lines = [line.strip() for line in stdout.splitlines()]
    for index, text in enumerate(lines):
        match = _SECTION.match(text)
        if match:
            current = match.group(1)
        elif current and _STATUS.match(text):
            body = next((line for line in lines[index + 1 : index + 4] if line), "")
            found.setdefault(current, []).append(f"{text} {body}")
    return found
