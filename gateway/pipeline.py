"""One proxied request past its body: allowed model, limits, routing, attempts on the
replicas, the relay — and the one record of all it learns.

The consumers (``gateway/consumers.py``) adapt ASGI: they read the body, authenticate,
watch for the client going away and send what they are given.  A :class:`Pipeline`
decides the rest, and writes what it learns into the request's
:class:`journal.record.Record`, which the journal takes when it is on.  A kind of request
changes two steps through its :class:`Delivery`: how the request is adapted to the
replica chosen, and how the upstream's answer reaches the client.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import aiohttp
import orjson

from accounts.auth import Principal
from accounts.limits import NO_SLOT, LimitExceeded, Slot, get_limiter
from gateway import metrics
from gateway.errors import OpenAIError
from gateway.fim.profiles import FimProfile, get_profiles
from gateway.fim.suffix import SuffixRewrite
from gateway.openai_api import ProxyRequest
from gateway.proxy import open_upstream, read_answer, relay
from gateway.scheduling import class_priority
from gateway.tabby_completion import FimCompletion
from gateway.upstream_failures import UpstreamUnavailable
from gateway.upstreams import Upstream, UpstreamTable, get_table
from journal.record import Record

logger = logging.getLogger("kodify.gateway")

# A replica that refuses the connection is retried on another one at most this often.
MAX_ATTEMPTS = 3


class Client(Protocol):
    """What a pipeline needs of the connection it answers."""

    request_id: str  # the X-Request-Id the client receives, sent upstream with every attempt

    def id_header(self) -> tuple[bytes, bytes]: ...

    async def send_headers(self, *, status: int = 200, headers: Any = None) -> None: ...

    async def send_body(self, body: bytes, *, more_body: bool = False) -> None: ...

    async def send_json(self, status: int, data: Any, headers: Any = ()) -> None: ...


class Delivery:
    """The upstream's answer passes through as it comes (chunk by chunk when streamed)."""

    # An autocompletion, which upstreams with priority scheduling run before the rest
    # (gateway/scheduling.py): what the two fill-in-the-middle deliveries below carry.
    autocompletion = False

    def prepare(self, request: Any, upstream: Upstream, model: str) -> None:
        """Adapt the request to the replica chosen (before each attempt)."""

    async def deliver(
        self, pipeline: Pipeline, response: aiohttp.ClientResponse, upstream: Upstream
    ) -> None:
        await relay(
            response,
            upstream,
            pipeline.relay_headers,
            pipeline.relay_body,
            [pipeline.client.id_header()],
            pipeline.record,
            keep_chunks=pipeline.journaled,
            withhold_usage=pipeline.withhold_usage,
        )


class SuffixDelivery(Delivery):
    """An OpenAI completion with ``suffix``: laid out in the chosen model's FIM template
    when its server cannot take ``suffix`` itself; the answer passes through."""

    autocompletion = True

    def __init__(self, rewrite: SuffixRewrite) -> None:
        self.rewrite = rewrite

    def prepare(self, request: Any, upstream: Upstream, model: str) -> None:
        profile = _profile(upstream, model)
        SuffixRewrite.check(profile, model)  # before anything is sent
        if self.rewrite.apply(request.body, profile):
            request.raw = None


class FimDelivery(Delivery):
    """A Tabby completion: a fill-in-the-middle prompt for the chosen model's family, and a
    cleaned-up completion answered in Tabby's shape."""

    autocompletion = True

    def __init__(self, completion: FimCompletion) -> None:
        self.completion = completion

    def prepare(self, request: Any, upstream: Upstream, model: str) -> None:
        card = upstream.models.get(model) or {}
        self.completion.use_profile(
            _profile(upstream, model), context_tokens=card.get("max_model_len")
        )

    async def deliver(
        self, pipeline: Pipeline, response: aiohttp.ClientResponse, upstream: Upstream
    ) -> None:
        data = await read_answer(response, upstream, pipeline.record)
        answer, journaled = self.completion.answer(data)
        if pipeline.journaled:
            pipeline.record.response_chunks.append(orjson.dumps(journaled))
        pipeline.free_slot()  # free before the client sees the answer
        await pipeline.client.send_json(200, answer)


def _profile(upstream: Upstream, model: str) -> FimProfile:
    card = upstream.models.get(model) or {}
    root = card.get("root")
    return get_profiles().for_model(
        model,
        root=root if isinstance(root, str) else "",
        choices=(upstream.spec.preprocessing, get_table().model_preprocessing.get(model, "")),
    )


class Pipeline:
    """One request to the upstreams, from its parsed body to the end of its answer."""

    def __init__(
        self,
        client: Client,
        record: Record,
        *,
        principal: Principal | None,
        upstream_path: str,
        journaled: bool,
        delivery: Delivery | None = None,
    ) -> None:
        self.client = client
        self.record = record
        self.principal = principal
        self.upstream_path = upstream_path
        self.journaled = journaled  # the journal takes the record: keep the answer too
        self.delivery = delivery or Delivery()
        self.withhold_usage = False
        self.slot: Slot = NO_SLOT
        # What the prompt starts with, when prefix-cache affinity is on (gateway.affinity).
        self.affinity: bytes | None = None
        # A generation's priority on upstreams with priority scheduling; None: not one.
        self.priority: int | None = None

    async def forward(self, model: str | None, request: Any) -> None:
        """Route ``request`` (for ``model``; None: the default model) and answer it."""
        table = get_table()
        record = self.record
        record.model = model or ""
        record.stream = bool(getattr(request, "stream", False))
        if model is not None:  # refused before resolving: no hint whether it exists
            self.check_model(model)
        upstream, name = await table.resolve(model, affinity=self.affinity)
        record.model = name
        self.check_model(name)  # the default model too
        if table.default_max_tokens and isinstance(request, ProxyRequest):
            request.default_max_tokens(table.default_max_tokens)
        self.withhold_usage = self.journaled and request.ask_for_usage()
        if request.generates:
            self.priority = class_priority(
                autocompletion=self.delivery.autocompletion, asked=request.asked_priority()
            )
        await self.take_slot()
        try:
            await self._attempts(table, model, upstream, name, request)
        finally:
            await self.release_slot()

    async def _attempts(
        self, table: UpstreamTable, model: str | None, upstream: Upstream, name: str, request: Any
    ) -> None:
        record = self.record
        failed: list[Upstream] = []
        suspects: list[tuple[Upstream, str]] = []
        last_failure: UpstreamUnavailable | None = None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if last_failure is not None:
                upstream, name = await self._another(table, model, failed, last_failure)
            request.set_model(name)
            self.delivery.prepare(request, upstream, name)
            if self.priority is not None:  # vLLM may refuse one it does not schedule by
                request.set_priority(self.priority if upstream.spec.priority_scheduling else None)
            record.model = name
            record.upstream = upstream.display_url
            record.response_chunks = []
            upstream.outstanding += 1
            try:
                try:
                    response = await open_upstream(
                        upstream,
                        self.upstream_path,
                        request.upstream_body(),
                        self.client.request_id,
                    )
                except UpstreamUnavailable as error:
                    if error.answered_because:
                        suspects.append((upstream, error.answered_because))
                    if attempt == MAX_ATTEMPTS:
                        raise
                    failed.append(upstream)
                    last_failure = error
                    metrics.retry(upstream, error.reason)
                    continue  # nothing reached the client yet: another replica may answer
                # Another replica took the very request those answered with an error: the
                # fault is theirs, and they rest.  A request every replica tried fails on is
                # the likelier culprit, and rests none: one client's odd request must not
                # take the model away from the others.
                for suspect, because in suspects:
                    suspect.mark_down(because, answering=True)
                await self.delivery.deliver(self, response, upstream)
                return
            finally:
                upstream.outstanding -= 1

    async def _another(
        self,
        table: UpstreamTable,
        model: str | None,
        failed: list[Upstream],
        last_failure: UpstreamUnavailable,
    ) -> tuple[Upstream, str]:
        """A replica this request has not failed on; else the reason it cannot be served.

        With one replica tried, the client gets that replica's own failure (a timeout is
        a 504, not "every replica is down"), and so when the last one answered with an
        error (the request's own); else the table's summary of them.
        """
        try:
            upstream, name = await table.resolve(model, exclude=failed, affinity=self.affinity)
        except OpenAIError:
            if len(failed) == 1 or last_failure.answered_because:
                raise last_failure from None
            raise
        self.check_model(name)
        return upstream, name

    def check_model(self, model: str) -> None:
        principal = self.principal
        if principal is not None and not principal.may_use(model):
            raise OpenAIError(
                403,
                f"You are not allowed to use the model '{model}'; ask an administrator "
                "to add it to your allowed models.",
                param="model",
                code="model_not_allowed",
            )

    async def take_slot(self) -> None:
        limiter = get_limiter()
        if limiter is None or self.principal is None:
            return
        try:
            self.slot = await limiter.acquire(self.principal)
        except LimitExceeded as exc:
            raise OpenAIError(
                429,
                str(exc),
                code=exc.code,
                headers=((b"retry-after", str(exc.retry_after).encode()),),
            ) from None

    async def release_slot(self) -> None:
        slot, self.slot = self.slot, NO_SLOT
        await slot.release()

    def free_slot(self) -> None:
        """Release the slot without a round trip to the limits' store (see
        :meth:`accounts.limits.Slot.release_nowait`): the answer's end is not delayed."""
        slot, self.slot = self.slot, NO_SLOT
        slot.release_nowait()

    async def relay_headers(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        await self.client.send_headers(status=status, headers=headers)

    async def relay_body(self, body: bytes, more_body: bool) -> None:
        # The slot is free before the client sees the end of the answer, so a client
        # sending one request after another never finds its previous one still counted.
        if not more_body and self.slot is not NO_SLOT:
            self.free_slot()
        await self.client.send_body(body, more_body=more_body)
