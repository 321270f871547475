"""The upstream table: which vLLM servers exist, what they serve, whether they are up.

Built once per process from ``config.yml`` and ``KODIFY_UPSTREAMS``; each upstream's
served models are read from its ``GET /v1/models`` in the background every
``KODIFY_MODEL_REFRESH_INTERVAL`` seconds, and again at once (at most once a second) when
a request names a model nobody is known to serve or finds every replica down.

The hot path only reads this in-memory table: :meth:`UpstreamTable.resolve` picks a
replica of the requested model with no I/O when the table is fresh.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import httpx
from django.conf import settings

from gateway import upstream_failures as failures
from gateway.actions.overrides import ActionOverrides
from gateway.affinity import choose
from gateway.config_file import GatewayConfig, UpstreamSpec, gateway_config
from gateway.following import DatabaseFollower
from gateway.probing import (
    UpstreamProbeError,
    describe_failure,
    read_device,
    read_probe,
    without_credentials,
)
from gateway.snapshot import GatewaySnapshot, UpstreamRow

logger = logging.getLogger("kodify.upstreams")

# A request that finds no usable replica may refresh the table, but not more often.
ON_DEMAND_REFRESH_INTERVAL = 1.0


@dataclass(eq=False)
class Upstream:
    """One upstream server and what is known about it."""

    spec: UpstreamSpec
    api_key: str | None
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    healthy: bool | None = None  # None: never checked
    last_check: datetime | None = None
    last_error: str = ""
    outstanding: int = 0
    # Passive health: after a failed request the replica rests until ``down_until``
    # (monotonic), a rest that doubles with each failure in a row; then one request may
    # try it again.  A successful health check or request ends the rest at once.
    failures: int = 0
    down_until: float = 0.0
    # Down because it answered with an error (5xx), not because it could not be reached:
    # it is alive, so when nothing better is left it still gets the request.
    answering: bool = False
    # What it runs on, from its GET /version ("": it did not say); None: not asked yet.
    device: str | None = None

    def __post_init__(self) -> None:
        self.url = self.spec.url
        self.display_url = without_credentials(self.url)
        self.weight = self.spec.weight
        self.enabled = self.spec.enabled
        self.auth_headers: dict[str, str] = (
            {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        )

    def endpoint(self, path: str) -> str:
        return self.url + path

    def configure(self, spec: UpstreamSpec, api_key: str | None) -> None:
        """New settings from the console or config.yml; what was learnt about it stays."""
        self.spec = spec
        self.api_key = api_key
        self.__post_init__()

    def observe(self, row: UpstreamRow) -> None:
        """Take the database's health check when it is newer than what this worker saw."""
        if row.last_check is None or (
            self.last_check is not None and row.last_check <= self.last_check
        ):
            return
        if row.healthy:
            self.models = dict(row.models)
            self.mark_up()
        elif row.healthy is False and self.healthy is not False:
            self.mark_down(row.last_error or "the health check failed")
        self.last_error = row.last_error
        self.last_check = row.last_check

    def mark_down(self, error: str, *, answering: bool = False) -> None:
        self.answering = answering
        self.failures += 1
        rest = min(
            settings.KODIFY_UPSTREAM_COOLDOWN * 2 ** min(self.failures - 1, 16),
            settings.KODIFY_UPSTREAM_COOLDOWN_MAX,
        )
        self.down_until = time.monotonic() + rest
        if self.healthy is not False:
            logger.warning("upstream %s is down (%s); resting %g s", self.display_url, error, rest)
        self.healthy = False
        self.last_error = error
        self.last_check = datetime.now(UTC)

    def mark_up(self) -> None:
        if self.healthy is False:
            logger.info("upstream %s is back", self.display_url)
            self.device = None  # back, perhaps as another server: ask again
        self.healthy = True
        self.failures = 0
        self.down_until = 0.0
        self.answering = False
        self.last_error = ""

    def usable(self, now: float) -> bool:
        """Healthy, or down but rested enough to be tried again; and not at capacity."""
        if self.healthy is None or (self.healthy is False and now < self.down_until):
            return False
        limit = self.spec.max_concurrent
        return not limit or self.outstanding < limit

    def state(self) -> dict[str, Any]:
        return {
            "url": self.display_url,
            "name": self.spec.name or None,
            "healthy": bool(self.healthy),
            "enabled": self.enabled,
            "checked": self.healthy is not None,
            "last_check": self.last_check.isoformat() if self.last_check else None,
            "error": self.last_error or None,
            "models": sorted(self.models),
            "outstanding": self.outstanding,
            "source": self.spec.source,
        }


class UpstreamTable:
    def __init__(
        self,
        specs: Iterable[UpstreamSpec],
        *,
        default_api_key: str | None,
        tabby_model_name: str | None = None,
        connect_timeout: float = 5.0,
        refresh_interval: float = 30.0,
    ) -> None:
        self.file_specs = tuple(specs)
        self.default_api_key = default_api_key
        self.upstreams = [
            Upstream(spec=spec, api_key=spec.api_key or default_api_key) for spec in self.file_specs
        ]
        self.file_tabby_model_name = self.tabby_model_name = tabby_model_name
        # The console's word, when the database has one (see apply_snapshot).
        self.max_n: int = settings.MAX_N
        # The routing switches, read once here rather than per request: the environment's
        # prefix-cache affinity, overridden per model by the console (model_affinity).
        self.prefix_affinity: bool = settings.KODIFY_PREFIX_AFFINITY
        self.affinity_epsilon: float = settings.KODIFY_AFFINITY_EPSILON
        self.supersede: bool = settings.KODIFY_SUPERSEDE
        self.model_affinity: dict[str, bool] = {}
        self.default_max_tokens: int | None = None
        self.model_preprocessing: dict[str, str] = {}
        # The console's action templates and defaults (gateway.actions.overrides).
        self.actions = ActionOverrides()
        self.console_version = ""  # the stamp of the console's state applied last
        self.following = DatabaseFollower(self)
        self.connect_timeout = connect_timeout
        self.refresh_interval = refresh_interval
        self._by_model: dict[str, list[Upstream]] = {}
        self._turn = 0
        self._refreshing: asyncio.Task[None] | None = None
        self._last_refresh = 0.0
        self._refreshed_once = False
        self._background: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # -- reading the table (hot path, no I/O) ------------------------------------------

    def default_model(self) -> str | None:
        for upstream in self.upstreams:
            if upstream.enabled and upstream.models:
                return next(iter(upstream.models))
        return None

    def served_models(self) -> list[dict[str, Any]]:
        """OpenAI model cards, one per model name, in upstream order."""
        cards: dict[str, dict[str, Any]] = {}
        for upstream in self.upstreams:
            if not upstream.enabled:
                continue
            for name, card in upstream.models.items():
                cards.setdefault(name, card)
        return list(cards.values())

    def pick(
        self, model: str, exclude: Collection[Upstream] = (), affinity: bytes | None = None
    ) -> Upstream | None:
        """The least busy usable replica of ``model`` (by outstanding/weight), or None.

        With an ``affinity`` key (prefix-cache affinity on, ``gateway.affinity``): the
        healthy replica the key hashes to, unless it is above its bounded load; the
        rules below when no healthy replica is left.

        Healthy replicas first; a rested one is tried only when no healthy one can take
        the request, and then by one request at a time (its rest starts again meanwhile),
        so a replica that hangs costs one request a timeout, not every request.  Last, a
        replica that is down only because it answered with errors: a request that made
        one replica fail must not make every other request fail while it rests.
        """
        replicas = self._by_model.get(model)
        if replicas and exclude:
            replicas = [u for u in replicas if u not in exclude]
        if not replicas:
            return None
        now = time.monotonic()
        if affinity is not None:
            usable = [u for u in replicas if u.healthy is True and u.usable(now)]
            chosen = choose(affinity, usable, self.affinity_epsilon)
            if chosen is not None:
                return chosen
        self._turn += 1
        best = self._least_busy(replicas, now, healthy=True)
        if best is None:
            best = self._least_busy(replicas, now, healthy=False)
            if best is not None:
                best.down_until = now + settings.KODIFY_UPSTREAM_COOLDOWN
        if best is None:
            answering = [u for u in replicas if u.answering and u.enabled]
            best = self._least_busy(answering, float("inf"), healthy=False)
        return best

    def _least_busy(
        self, replicas: list[Upstream], now: float, *, healthy: bool
    ) -> Upstream | None:
        best: Upstream | None = None
        best_load = 0.0
        count = len(replicas)
        for i in range(count):  # rotate the start so ties take turns
            upstream = replicas[(self._turn + i) % count]
            if upstream.healthy is not healthy or not upstream.usable(now):
                continue
            load = (upstream.outstanding + 1) / upstream.weight
            if best is None or load < best_load:
                best, best_load = upstream, load
        return best

    async def resolve(
        self,
        model: str | None,
        *,
        exclude: Collection[Upstream] = (),
        affinity: bytes | None = None,
    ) -> tuple[Upstream, str]:
        """Where to send a request for ``model`` (None: the default model).

        ``exclude``: replicas this request failed on already; ``affinity``: what its
        prompt starts with (see :meth:`pick`).  Raises OpenAIError 404 for a model nobody
        serves, 503 when its replicas are down.
        """
        self.ensure_background_refresh()
        for attempt in range(2):
            name = model or self.default_model()
            if name is not None:
                upstream = self.pick(name, exclude, affinity)
                if upstream is not None:
                    return upstream, name
            if attempt == 0 and not await self.refresh_on_demand():
                break
        raise failures.unroutable(self, model)

    def retry_after(self, replicas: Iterable[Upstream]) -> int:
        """Whole seconds until the first of ``replicas`` may be tried again (at least 1)."""
        now = time.monotonic()
        waits = [u.down_until - now for u in replicas if u.enabled and u.healthy is False]
        soonest = min(waits, default=ON_DEMAND_REFRESH_INTERVAL)
        return max(1, math.ceil(min(soonest, self.refresh_interval)))

    def affinity_on(self, model: str | None) -> bool:
        """Whether requests for ``model`` (None: the default model) go by prefix-cache
        affinity: the console's choice for the model, else KODIFY_PREFIX_AFFINITY."""
        name = model or self.default_model()
        return self.model_affinity.get(name or "", self.prefix_affinity)

    def replicas(self, model: str) -> list[Upstream]:
        """The enabled upstreams that serve ``model``, as last indexed."""
        return list(self._by_model.get(model, ()))

    def health(self) -> list[dict[str, Any]]:
        return [upstream.state() for upstream in self.upstreams]

    # -- the database's word (console and health checks) --------------------------------

    def apply_snapshot(self, snapshot: GatewaySnapshot) -> None:
        """Rebuild the table from the database and this process's config.yml.

        config.yml's upstreams are this process's own: their database rows only mirror
        them for the console, unless an administrator edited one there (source
        "console"), which then wins.  Upstreams added in the console join them.  Health
        checks stored in the database apply when newer than this worker's own view.
        """
        rows = {row.url: row for row in snapshot.upstreams}
        specs: list[UpstreamSpec] = []
        for spec in self.file_specs:
            row = rows.get(spec.url)
            specs.append(_spec_of(row) if row is not None and row.source == "console" else spec)
        in_file = {spec.url for spec in self.file_specs}
        specs += [
            _spec_of(row)
            for row in snapshot.upstreams
            if row.source == "console" and row.url not in in_file
        ]
        known = {upstream.url: upstream for upstream in self.upstreams}
        upstreams = []
        for spec in specs:
            api_key = spec.api_key or self.default_api_key
            upstream = known.get(spec.url)
            if upstream is None:
                upstream = Upstream(spec=spec, api_key=api_key)
            elif upstream.spec != spec or upstream.api_key != api_key:
                upstream.configure(spec, api_key)
            row = rows.get(spec.url)
            if row is not None:
                upstream.observe(row)
            upstreams.append(upstream)
        self.upstreams = upstreams
        self.tabby_model_name = snapshot.tabby_model_name or self.file_tabby_model_name
        self.max_n = snapshot.max_n or settings.MAX_N
        self.default_max_tokens = snapshot.default_max_tokens
        self.model_preprocessing = dict(snapshot.model_preprocessing)
        self.model_affinity = dict(snapshot.model_affinity)
        self.actions = snapshot.actions
        self.console_version = snapshot.config_version
        self._reindex()

    # -- refreshing (off the hot path) ----------------------------------------------------

    def _reindex(self) -> None:
        by_model: dict[str, list[Upstream]] = {}
        for upstream in self.upstreams:
            if not upstream.enabled:
                continue
            for name in upstream.models:
                by_model.setdefault(name, []).append(upstream)
        self._by_model = by_model

    async def refresh(self) -> None:
        """Read every enabled upstream's health and models; concurrent callers share one run."""
        task = self._refreshing
        if task is None or not _alive_here(task):
            task = self._refreshing = asyncio.ensure_future(self._refresh_all())
        await asyncio.shield(task)

    async def ensure_discovered(self) -> None:
        """Until every upstream has been read once, join (or start) that first reading:
        a list made earlier would miss the slower upstreams."""
        if not self._refreshed_once or not self.served_models():
            await self.refresh_on_demand()

    async def refresh_on_demand(self) -> bool:
        """Refresh unless one ran less than a second ago; True when it ran (or joined one)."""
        running = _alive_here(self._refreshing)
        if not running and time.monotonic() - self._last_refresh < ON_DEMAND_REFRESH_INTERVAL:
            return False
        await self.refresh()
        return True

    async def _refresh_all(self) -> None:
        self._last_refresh = time.monotonic()
        client = self._probe_client()
        await asyncio.gather(*(self._probe(client, u) for u in self.upstreams if u.enabled))
        self._reindex()
        self._refreshed_once = True

    def _probe_client(self) -> httpx.AsyncClient:
        """One client per event loop: making one costs ~25 ms of blocked loop (TLS setup)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            timeout = httpx.Timeout(self.connect_timeout * 2, connect=self.connect_timeout)
            self._client = httpx.AsyncClient(timeout=timeout)
            self._client_loop = loop
        return self._client

    async def _probe(self, client: httpx.AsyncClient, upstream: Upstream) -> None:
        try:
            health, listing = await asyncio.gather(
                client.get(upstream.endpoint("/health"), headers=upstream.auth_headers),
                client.get(upstream.endpoint("/v1/models"), headers=upstream.auth_headers),
            )
            models = read_probe(health, listing)
        except (httpx.HTTPError, UpstreamProbeError, ValueError) as exc:
            upstream.mark_down(describe_failure(exc))
            return
        if upstream.healthy is not True:
            logger.info(
                "upstream %s is up, serving %s",
                upstream.display_url,
                ", ".join(models) or "no model",
            )
        upstream.models = models
        upstream.mark_up()
        upstream.last_check = datetime.now(UTC)

    async def learn_devices(self) -> None:
        """Ask each enabled, healthy upstream not asked yet what it runs on (``GET
        /version``): once per upstream and process, for Tabby's health, never on the path
        of a generation."""
        asking = [u for u in self.upstreams if u.enabled and u.healthy and u.device is None]
        if asking:
            client = self._probe_client()
            await asyncio.gather(*(self._ask_device(client, u) for u in asking))

    async def _ask_device(self, client: httpx.AsyncClient, upstream: Upstream) -> None:
        try:
            response = await client.get(
                upstream.endpoint("/version"), headers=upstream.auth_headers
            )
        except httpx.HTTPError:
            return  # not asked: next time
        upstream.device = read_device(response)

    def ensure_background_refresh(self) -> None:
        """Start this process's refresh loop on the running event loop, once."""
        if not _alive_here(self._background):
            self._background = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        """Follow the database every few seconds; check the upstreams every interval."""
        last_check = -math.inf
        while True:
            try:
                await self.following.follow()
            except Exception:  # keep the loop alive whatever one round does
                logger.exception("refreshing the upstream table failed")
            if time.monotonic() - last_check >= self.refresh_interval:
                last_check = time.monotonic()
                try:
                    await self.following.check(self.refresh)
                except Exception:
                    logger.exception("checking the upstreams failed")
            await asyncio.sleep(min(settings.KODIFY_CONFIG_POLL_INTERVAL, self.refresh_interval))

    async def close(self) -> None:
        for task in (self._background, self._refreshing):
            if task is not None and not task.done():
                task.cancel()
        self._background = None
        self._refreshing = None
        if self._client is not None and self._client_loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None


def _alive_here(task: asyncio.Task[None] | None) -> bool:
    """A task that is still running on the running event loop (tests use several loops)."""
    return task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop()


def _spec_of(row: UpstreamRow) -> UpstreamSpec:
    return UpstreamSpec(
        url=row.url,
        api_key=row.api_key,
        weight=row.weight,
        enabled=row.enabled,
        name=row.name,
        preprocessing=row.preprocessing,
        max_concurrent=row.max_concurrent,
        priority_scheduling=row.priority_scheduling,
        source="console",
    )


def build_table(config: GatewayConfig) -> UpstreamTable:
    return UpstreamTable(
        config.upstreams,
        default_api_key=settings.KODIFY_UPSTREAM_API_KEY or settings.VLLM_API_KEY,
        tabby_model_name=config.tabby_model_name,
        connect_timeout=settings.KODIFY_UPSTREAM_CONNECT_TIMEOUT,
        refresh_interval=settings.KODIFY_MODEL_REFRESH_INTERVAL,
    )


@cache
def get_table() -> UpstreamTable:
    """This process's upstream table."""
    return build_table(gateway_config())
