"""``make attack``: the security review kept as code.

A bounded, repeatable attack on a production-like Kodify started on 127.0.0.1 (uvicorn
with production's flags, PostgreSQL, Redis, per-user tokens, the journal on), so that what
the review found stays found: each check gives rows of (check, cases, findings, verdict),
printed as a table and kept as JSON under ``attack/results/``.  ``attack/test_attack.py``
runs the fast part in ``make test``.
"""
