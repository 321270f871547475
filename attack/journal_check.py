"""The journal's promise under stress: one row per answered request, none lost, none doubled.

Two stresses, each measured the same way (every answered request's ``X-Request-Id``
against the journal's rows, once they stop coming):

* a uvicorn worker SIGKILLed while 20 clients keep the server busy;
* the journal's database cut off for a few seconds (:class:`~attack.tcp_proxy.TcpProxy`)
  while requests go on, then brought back: records wait in the spool and are written
  when it returns.

The harness measures and reports; it does not judge how the server gets there.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from attack.findings import Row
from attack.hostile import CHAT, chat
from attack.target import WORKERS, Target
from kodify_site.testing import wait_until

CLIENTS = 20
REQUESTS = 400
OUTAGE_S = 4.0
SETTLE_S = 90.0  # how long rows may take to arrive after the stress (spool replay)


def _one(client: httpx.Client, target: Target, index: int) -> str | None:
    """A chat request, streamed every other time; its request id if it was answered whole."""
    try:
        body = chat(stream=bool(index % 2))
        with client.stream("POST", CHAT, json=body, headers=target.bearer()) as response:
            text = response.read()
    except httpx.HTTPError:
        return None
    if response.status_code != 200 or (index % 2 and b"[DONE]" not in text):
        return None
    return response.headers.get("x-request-id")


def worker_pids(target: Target) -> set[int]:
    """The workers' process ids, as ``/health`` tells them (each new connection may land
    on either worker)."""
    pids: set[int] = set()

    def heard_all() -> bool:
        pids.add(int(httpx.get(target.url + "/health", timeout=10).json()["worker"]))
        return len(pids) >= WORKERS

    wait_until(heard_all, 30)
    return pids


def count(row: Row, target: Target, answered: list[str], what: str) -> None:
    """Wait for the rows to stop coming, then report lost and doubled ones."""
    seen: Counter[str] = Counter()

    def complete() -> bool:
        seen.clear()
        seen.update(str(r["request_id"]) for r in target.journal_rows(answered))
        return all(seen[rid] for rid in answered)

    wait_until(complete, SETTLE_S)
    lost = [rid for rid in answered if not seen[rid]]
    doubled = [rid for rid, n in seen.items() if n > 1]
    row.notes.append(f"{what}: {len(answered)} answered, {len(lost)} lost, {len(doubled)} doubled")
    row.expect(not lost, f"{what}: {len(lost)} of {len(answered)} answered requests have no row "
               f"(e.g. {lost[:3]})")  # fmt: skip
    row.expect(not doubled, f"{what}: {len(doubled)} requests have more than one row "
               f"(e.g. {doubled[:3]})")  # fmt: skip


def killed_worker(target: Target, client: httpx.Client) -> Row:
    row = Row("journal: SIGKILLed worker")
    pids = worker_pids(target)
    victim = min(pids)
    done = 0
    lock = threading.Lock()
    killed = threading.Event()

    def job(index: int) -> str | None:
        nonlocal done
        with httpx.Client(base_url=target.url, timeout=60) as own:
            request_id = _one(own, target, index)
        with lock:
            done += 1
            if done == REQUESTS // 2 and not killed.is_set():
                os.kill(victim, signal.SIGKILL)
                killed.set()
        return request_id

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(job, range(REQUESTS)))
    answered = [rid for rid in answers if rid]
    row.notes.append(
        f"killed worker {victim} after {REQUESTS // 2} of {REQUESTS} requests; "
        f"{REQUESTS - len(answered)} not answered (cut off by the kill)"
    )
    count(row, target, answered, "after the kill")
    after = worker_pids(target)
    row.notes.append(f"workers before {sorted(pids)}, after {sorted(after)}")
    return row


def journal_outage(target: Target, client: httpx.Client) -> Row:
    row = Row("journal: database outage")
    answered: list[str] = []
    failed = 0
    target.proxy.cut()
    try:
        deadline = time.monotonic() + OUTAGE_S
        index = 0
        with ThreadPoolExecutor(4) as pool:
            while time.monotonic() < deadline:
                for rid in pool.map(lambda i: _one(client, target, i), range(index, index + 8)):
                    if rid:
                        answered.append(rid)
                    else:
                        failed += 1
                index += 8
        # The proxy is the server's only way to the journal: nothing of this may be there yet.
        early = len(target.journal_rows(answered))
    finally:
        target.proxy.restore()
    row.expect(not early, f"{early} rows were written during the outage: it was none")
    row.expect(not failed, f"{failed} requests failed while the journal's database was away")
    # A few more once it is back: the spool and the live queue meet here.
    answered += [rid for rid in (_one(client, target, i) for i in range(10)) if rid]
    count(row, target, answered, f"{OUTAGE_S:g} s outage")
    return row
