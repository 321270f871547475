"""The fast part of ``make attack`` as a test: zero findings, or the review's flaws are back.

It starts its own production-like server (uvicorn, 2 workers) on the PostgreSQL and Redis
that ``make test`` names (``DB_URL``, ``REDIS_URL``), in a database and under a Redis
prefix of its own, so it runs beside the rest of the suite.  Without them it is skipped.
Schemathesis failures known not to be the server's would be left out and listed in the
table (``attack/fuzz.py``'s ``known``; none today).  The journal's completeness under a
killed worker and a database outage takes minutes: ``make attack`` only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.attack,
    pytest.mark.timeout(300),  # about a minute alone; more beside the suite on 2 cores
    pytest.mark.skipif(
        not (os.environ.get("DB_URL", "").startswith("postgres") and os.environ.get("REDIS_URL")),
        reason="the attack needs PostgreSQL (DB_URL) and Redis (REDIS_URL)",
    ),
]


def test_the_fast_attack_finds_nothing(tmp_path: Path) -> None:
    from attack.findings import table
    from attack.run import FAST, attack

    rows = attack(FAST, os.environ["DB_URL"], os.environ["REDIS_URL"], tmp_path)
    print(table(rows))
    findings = [f"{row.check}: {finding}" for row in rows for finding in row.findings]
    assert not findings, "\n" + table(rows)
