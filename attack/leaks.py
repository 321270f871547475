"""Secrets through the real server: are any stored in clear in the journal?

The journal's own tests mask the corpus (``journal/tests/secret_corpus.py``) in-process;
this sends it through a running server (chat and completions, streamed and not), with
each secret both in the prompt and in the upstream's answer, then reads the journal rows
of those requests from the database.  A secret counts as stored in clear when any 8
characters in a row of its random part survive, the journal tests' own measure.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from attack.findings import Row
from attack.hostile import CHAT, COMPLETIONS, describe
from attack.target import MODEL, Target
from journal.tests.secret_corpus import SECRETS, Secret, leaked
from kodify_site.testing import wait_until

ANSWER = "Here you go:\n\n{}\n\nAnything else?"
WAYS = ("chat", "chat stream", "completions stream")


def _send(target: Target, client: httpx.Client, secret: Secret, way: str) -> str | None:
    """One request carrying the secret both ways; its request id, or None if refused."""
    steer = {"text": ANSWER.format(secret.text)}  # the fake upstream answers this
    prompt = f"Why does this fail?\n{secret.text}\nThanks!"
    stream = way.endswith("stream")
    body: dict[str, Any]
    if way.startswith("chat"):
        path, body = CHAT, {"messages": [{"role": "user", "content": prompt}]}
    else:
        path, body = COMPLETIONS, {"prompt": prompt}
    body |= {"model": MODEL, "stream": stream, "fake": steer}
    with client.stream("POST", path, json=body, headers=target.bearer()) as response:
        response.read()
    if response.status_code != 200:
        return None
    return response.headers.get("x-request-id")


def secret_corpus(target: Target, client: httpx.Client) -> Row:
    row = Row("secret corpus")
    sent: dict[str, tuple[Secret, str]] = {}
    jobs = [(secret, way) for secret in SECRETS for way in WAYS]
    with ThreadPoolExecutor(4) as pool:
        answers = pool.map(lambda job: _send(target, client, *job), jobs)
        for (secret, way), request_id in zip(jobs, answers, strict=True):
            if row.expect(request_id is not None, f"{secret.kind} ({way}) was refused"):
                sent[str(request_id)] = (secret, way)
    ids = list(sent)
    rows: dict[str, dict[str, object]] = {}

    def all_stored() -> bool:
        rows.update({str(r["request_id"]): r for r in target.journal_rows(ids)})
        return len(rows) >= len(ids)

    wait_until(all_stored, 60)
    for request_id, (secret, way) in sent.items():
        stored = rows.get(request_id)
        if not row.expect(stored is not None, f"{secret.kind} ({way}): no journal row"):
            continue
        assert stored is not None
        row.expect(
            int(str(stored["redactions"] or 0)) >= 2,
            f"{secret.kind} ({way}): {stored['redactions']} redactions in {request_id}, "
            "expected one in the prompt and one in the answer at least",
        )
        for column in ("request_body", "response_text"):
            pieces = leaked(str(stored[column] or ""), secret)
            row.expect(
                not pieces,
                f"{secret.kind} ({way}) stored in clear in {column} of {request_id}: "
                f"{pieces[0] if pieces else ''!r}…",
            )
    if not sent:
        row.findings.append("no request went through: " + describe(client.get("/health")))
    return row
