"""Where ``make bench`` measures: the fake vLLM itself and the Kodify servers compared with it.

A :class:`Target` is a started server, its URL and the headers its requests carry.  Each
function here starts one on the ``ExitStack`` (which stops it) and returns it; the direct
target is the baseline, every one of ``CANDIDATES`` gets its own table against it, and
the optional ones (limits in Redis, the journal on) are added by ``bench.run``'s options.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.scenarios import FAKE_MODELS
from bench.servers import (
    LITELLM_MASTER_KEY,
    ServerProcess,
    start_ceiling,
    start_fake_upstream,
    start_kodify,
    start_kodify_per_user,
    start_litellm,
)


class BenchError(RuntimeError):
    """The run cannot go on (a server died); the message says why."""


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    server: ServerProcess
    headers: Mapping[str, str] = field(default_factory=dict)

    def request_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", **self.headers}


def direct_target(stack: ExitStack, workdir: Path, chunks: int) -> Target:
    """The baseline: the fake vLLM itself."""
    server, url = start_fake_upstream(workdir / "fake", chunks, FAKE_MODELS)
    stack.callback(server.stop)
    return Target("direct", url, server)


DUMMY = "kodify"
PER_USER = "per-user"
PER_USER_REDIS = "per-user-redis"
JOURNAL = "journal-on"
CEILING = "bare-asgi"
LITELLM = "litellm"
FULL = "full-stack"
# Other products raced against: their failed requests are their result, not a broken run.
PEERS = (LITELLM,)


def kodify_target(stack: ExitStack, workdir: Path, upstream: Target) -> Target:
    """Kodify with its defaults: embedded SQLite, no authentication (dummy mode), no journal."""
    server, url = start_kodify(workdir / "kodify", upstream.url)
    stack.callback(server.stop)
    return Target(DUMMY, url, server)


def per_user_target(stack: ExitStack, workdir: Path, upstream: Target) -> Target:
    """Kodify in per-user mode: every request carries a user's token, checked against its
    keyed hash (the record cached for 1 s), noted for the last-use batch, and passed
    through the user's limits (in process: the bench runs without Redis)."""
    server, url, token = start_kodify_per_user(workdir / "per-user", upstream.url)
    stack.callback(server.stop)
    return Target(PER_USER, url, server, headers={"Authorization": f"Bearer {token}"})


def per_user_redis_target(redis_url: str) -> Callable[[ExitStack, Path, Target], Target]:
    """Per-user mode with the limits in Redis (``--redis-url``), as several workers have them."""

    def start(stack: ExitStack, workdir: Path, upstream: Target) -> Target:
        server, url, token = start_kodify_per_user(
            workdir / PER_USER_REDIS, upstream.url, {"REDIS_URL": redis_url}, "Kodify Redis"
        )
        stack.callback(server.stop)
        return Target(PER_USER_REDIS, url, server, headers={"Authorization": f"Bearer {token}"})

    return start


def journal_target(database_url: str | None) -> Callable[[ExitStack, Path, Target], Target]:
    """Kodify with the journal on (LOGS=true): every request becomes a journal row, written
    by the background writer to ``--journal-db-url`` (PostgreSQL, as in production) or,
    without it, to the embedded SQLite database."""

    def start(stack: ExitStack, workdir: Path, upstream: Target) -> Target:
        extra = {"LOGS": "true", **({"DB_URL": database_url} if database_url else {})}
        server, url = start_kodify(workdir / JOURNAL, upstream.url, extra, "Kodify journal")
        stack.callback(server.stop)
        return Target(JOURNAL, url, server)

    return start


def ceiling_target(stack: ExitStack, workdir: Path, upstream: Target) -> Target:
    """The bare-ASGI relay (``bench.ceiling``): what Kodify's figures are a share of."""
    server, url = start_ceiling(workdir / CEILING, upstream.url)
    stack.callback(server.stop)
    return Target(CEILING, url, server)


def litellm_target(python: str) -> Callable[[ExitStack, Path, Target], Target]:
    """LiteLLM's proxy (``python`` of its own venv) in front of the same fake upstream."""

    def start(stack: ExitStack, workdir: Path, upstream: Target) -> Target:
        server, url = start_litellm(workdir / LITELLM, python, upstream.url, FAKE_MODELS)
        stack.callback(server.stop)
        return Target(
            LITELLM, url, server, headers={"Authorization": f"Bearer {LITELLM_MASTER_KEY}"}
        )

    return start


def full_stack_target(
    redis_url: str, database_url: str
) -> Callable[[ExitStack, Path, Target], Target]:
    """What production runs: per-user tokens, limits in Redis, the users and the journal in
    PostgreSQL (``database_url``: a database of the run's own, created by the migration)."""

    def start(stack: ExitStack, workdir: Path, upstream: Target) -> Target:
        extra = {
            "REDIS_URL": redis_url,
            # Its keys apart from the other targets' and other runs'.
            "KODIFY_REDIS_PREFIX": f"kodify-bench-full-{os.getpid()}",
            "DB_URL": database_url,
            "LOGS": "true",
        }
        server, url, token = start_kodify_per_user(
            workdir / FULL, upstream.url, extra, "Kodify full stack"
        )
        stack.callback(server.stop)
        return Target(FULL, url, server, headers={"Authorization": f"Bearer {token}"})

    return start


# Each candidate is compared with the direct target; add a function here to add a column
# set (it may create users and return their token in ``Target.headers``).
CANDIDATES: tuple[Callable[[ExitStack, Path, Target], Target], ...] = (
    kodify_target,
    per_user_target,
)


def ensure_alive(target: Target, during: str) -> None:
    if not target.server.alive():
        raise BenchError(f"{target.name} exited during {during}:\n{target.server.tail()}")
