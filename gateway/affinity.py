"""Prefix-cache affinity: requests that share a long prompt prefix go to the same replica.

vLLM reuses the KV cache of a prefix it has computed, but only on the replica that
computed it.  A developer's completions resend nearly the same file prefix on every pause
in typing; spread over the replicas by load alone, each replica recomputes it.  So a
request that names what its prompt starts with (an *affinity key*: the caller and the
document for a completion, the leading messages for a chat) is sent to the replica that
key hashes to, unless that replica is too busy.

The hashing is rendezvous (highest random weight): every replica gets a score for the
key, and the replicas in descending score are the key's "ring order".  When a replica
joins or leaves, only the keys whose first choice it is (or becomes) move, as on a
consistent-hash ring, with no virtual nodes to tune.  Weights scale the scores
(weighted rendezvous), so a replica of weight 2 is first for about twice the keys.

**Bounded load**: a replica is taken only while its outstanding requests, this one
included, stay within ``(1 + epsilon)`` times its share of them (by weight, rounded up);
otherwise the key spills to the next replica in its order.  The bound keeps a hot key
(one busy developer, one long shared system prompt) from queueing on one replica while
the others idle; with ``epsilon`` small the load is near even, with it large affinity
is near absolute.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Protocol, TypeVar

# Enough of a prompt's beginning to tell documents and conversations apart, small enough
# to hash on every request (BLAKE2b runs at about a gigabyte a second).
KEY_PREFIX_BYTES = 4096


class Replica(Protocol):
    url: str
    weight: float
    outstanding: int


R = TypeVar("R", bound=Replica)


def score(key: bytes, replica: Replica) -> float:
    """The replica's weighted rendezvous score for ``key`` (higher: preferred)."""
    digest = hashlib.blake2b(key + b"\0" + replica.url.encode(), digest_size=8).digest()
    # A uniform number in (0, 1); -w / ln(u) keeps each replica's share proportional to w.
    unit = (int.from_bytes(digest, "big") + 1) / (2**64 + 1)
    return -replica.weight / math.log(unit)


def ring_order(key: bytes, replicas: Sequence[R]) -> list[R]:
    """``replicas`` in the key's order of preference (stable for a given set)."""
    return sorted(replicas, key=lambda replica: score(key, replica), reverse=True)


def capacities(replicas: Sequence[Replica], epsilon: float) -> list[int]:
    """How many outstanding requests each replica may hold, this request counted:
    ``ceil((1 + epsilon) * total * weight / total weight)``.  Rounding up is what makes the
    bound always satisfiable: the capacities add up to at least the requests."""
    total = sum(replica.outstanding for replica in replicas) + 1
    weight = sum(replica.weight for replica in replicas)
    return [math.ceil((1 + epsilon) * total * replica.weight / weight) for replica in replicas]


def choose(key: bytes, replicas: Sequence[R], epsilon: float) -> R | None:
    """The first replica in the key's order that can take one more request within its
    capacity; None when there is no replica."""
    if not replicas:
        return None
    limit = {id(r): cap for r, cap in zip(replicas, capacities(replicas, epsilon), strict=True)}
    order = ring_order(key, replicas)
    for replica in order:
        if replica.outstanding + 1 <= limit[id(replica)]:
            return replica
    # Only when outstanding counts went negative or weights are not positive; never for a
    # well-formed table, as the capacities cover every request.
    return order[0]


def completion_key(caller: str, document: str) -> bytes:
    """A completion's key: who asks, and in which document (their prefix is that file)."""
    return f"fim\0{caller}\0{document}".encode()


def prompt_key(prompt: bytes) -> bytes:
    """A chat's or a prompt's key: how it starts (the system prompt, the first turns)."""
    return b"prompt\0" + prompt[:KEY_PREFIX_BYTES]
