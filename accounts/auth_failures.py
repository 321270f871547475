"""Failed authentications per client address, counted in each worker.

Past ``KODIFY_AUTH_FAILURES_PER_MINUTE`` failures in a minute from one address, a token
whose prefix this worker does not know as a real token's is refused (429) without asking
the database: made-up tokens cannot turn into database lookups, and guessing is slowed
down.  Tokens of known prefixes keep working, so clients behind the same address (a
proxy, a NAT) that hold good tokens are not locked out by one that holds a bad one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class FailedAuthentications:
    MAX_ADDRESSES = 50_000

    def __init__(
        self, per_minute: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = per_minute
        self.window = window
        self._clock = clock
        self._counts: dict[str, tuple[float, int]] = {}  # address -> (window start, failures)

    def wait(self, address: str | None) -> int:
        """Whole seconds ``address`` must wait before its next unknown token (0: none)."""
        if not self.limit or address is None:
            return 0
        counted = self._counts.get(address)
        if counted is None or counted[1] < self.limit:
            return 0
        left = counted[0] + self.window - self._clock()
        if left <= 0:
            del self._counts[address]
            return 0
        return max(1, math.ceil(left))

    def failed(self, address: str | None) -> None:
        if not self.limit or address is None:
            return
        now = self._clock()
        start, failures = self._counts.get(address, (now, 0))
        if now - start >= self.window:
            start, failures = now, 0
        if address not in self._counts and len(self._counts) >= self.MAX_ADDRESSES:
            self._counts.clear()
        self._counts[address] = (start, failures + 1)
