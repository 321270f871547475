"""The public API's ASGI handlers: Channels ``AsyncHttpConsumer``s, ahead of Django.

These run without Django's request machinery: a Django async view costs about 5x the
throughput, and the hot path needs neither ORM nor middleware.

:class:`GatewayConsumer` replaces Channels' dispatch loop for two measured reasons:
Channels hands ``http.disconnect`` to the consumer only after ``handle()`` returns (so a
stream would run on for nobody), and it closes old database connections in a thread before
every message.  Here a small watcher task listens for the client going away and cancels the
handler at once; the handler itself never touches the database.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import aiohttp
import orjson
from channels.generic.http import AsyncHttpConsumer
from django.conf import settings

from accounts.auth import AuthenticationFailed, Principal, get_authenticator
from accounts.limits import NO_SLOT, LimitExceeded, Slot, get_limiter
from gateway import health, metrics, openapi, tabby
from gateway.errors import OpenAIError
from gateway.fim.profiles import FimProfile, get_profiles
from gateway.fim.suffix import SuffixRewrite
from gateway.openai_api import (
    Endpoint,
    ProxyRequest,
    check_request,
    decode_json,
    is_tabby_body,
    parse_request,
)
from gateway.proxy import Outcome, open_upstream, read_answer, relay
from gateway.tabby_completion import FimCompletion
from gateway.upstream_failures import UpstreamUnavailable
from gateway.upstreams import Upstream, UpstreamTable, get_table
from journal import recorder
from journal.features import Feature
from journal.record import EventRecord, Record

logger = logging.getLogger("kodify.gateway")

JSON_HEADERS = [(b"content-type", b"application/json")]
# Status recorded for a request whose client left before any answer was sent (nginx's).
CLIENT_CLOSED_REQUEST = 499
_FEATURES = frozenset(Feature.values)
# A replica that refuses the connection is retried on another one at most this often.
MAX_ATTEMPTS = 3


class GatewayConsumer(AsyncHttpConsumer):
    """Base of every public endpoint: body limits, errors in OpenAI shape, cancellation."""

    methods: ClassVar[tuple[str, ...]] = ("POST",)
    needs_token: ClassVar[bool] = True
    # Endpoints that get one journal row per request, and their default feature.
    journaled: ClassVar[bool] = False
    feature: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_id = ""
        self.principal: Principal | None = None
        self.headers_sent = False
        self.response_complete = False
        self.client_gone = False
        self.record: Record | None = None
        self.status = 0
        self.model = ""
        self.streamed = False
        self.first_byte_at: float | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self.base_send = send
        self.request_id = secrets.token_hex(8)
        started = time.perf_counter()
        endpoint = metrics.request_started(scope["path"])
        if self.journaled and recorder.journal_on():
            self.record = self.new_record()
        try:
            await self.serve(receive)
        finally:
            if self.record is not None:
                self.journal(self.record)
            first_byte_at = self.first_byte_at
            metrics.request_finished(
                endpoint,
                self.model,
                self.status or (CLIENT_CLOSED_REQUEST if self.client_gone else 0),
                time.perf_counter() - started,
                first_byte_at - started if self.streamed and first_byte_at is not None else None,
            )

    async def serve(self, receive: Any) -> None:
        try:
            self.check_method(self.scope["method"])
            body = await self.read_body(receive)
        except OpenAIError as error:
            await self.send_error(error)
            return
        except _ClientGone:
            self.client_gone = True
            return
        if self.record is not None:
            self.record.request_body = body
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.ensure_future(self._watch_disconnect(receive, task))
        try:
            await self.answer(body)
        except asyncio.CancelledError:
            if not self.client_gone:
                raise
            task.uncancel()  # we cancelled ourselves because the client left
        finally:
            watcher.cancel()

    async def _watch_disconnect(self, receive: Any, task: asyncio.Task[Any]) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
        if not self.response_complete:
            self.client_gone = True
            task.cancel()

    # -- the journal ---------------------------------------------------------------------

    def new_record(self) -> Record:
        feature = self.header(b"x-kodify-feature")
        chosen = feature.decode("latin-1").strip().lower() if feature else ""
        client = self.scope.get("client")
        user_agent = self.header(b"user-agent")
        return Record(
            request_id=self.request_id,
            endpoint=self.journal_endpoint(),
            feature=chosen if chosen in _FEATURES else self.feature,
            client_ip=client[0] if client else None,
            user_agent=user_agent.decode("latin-1") if user_agent else "",
        )

    def journal_endpoint(self) -> str:
        return str(self.scope["path"]).rstrip("/") or "/"

    def journal(self, record: Record) -> None:
        """Hand the finished record to the journal (a queue put; never waits)."""
        record.finished_at = time.perf_counter()
        record.cancelled = self.client_gone
        if not record.status and self.client_gone:
            record.status = CLIENT_CLOSED_REQUEST
        principal = self.principal
        if principal is not None:
            record.auth_mode = principal.mode.value
            record.user_id = principal.user_id
            record.username = principal.username
            record.token_id = principal.token_id
        recorder.record(record)

    def check_method(self, method: str) -> None:
        if method not in self.methods:
            allow = ", ".join(self.methods).encode()
            raise OpenAIError(
                405,
                f"Method {method} is not allowed here; use {', '.join(self.methods)}.",
                code="method_not_allowed",
                headers=((b"allow", allow),),
            )

    async def read_body(self, receive: Any) -> bytes:
        limit = settings.KODIFY_MAX_BODY_BYTES
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body"):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.scope["headers"]:
            if key == name:
                return bytes(value)
        return None

    async def authenticate(self) -> Principal:
        try:
            return await get_authenticator().authenticate(
                self.header(b"authorization"), self.header(b"user-agent")
            )
        except AuthenticationFailed as exc:
            metrics.auth_failure(exc.code)
            raise OpenAIError(
                401,
                str(exc),
                code=exc.code,
                headers=((b"www-authenticate", b'Bearer realm="kodify"'),),
            ) from None

    async def answer(self, body: bytes) -> None:
        try:
            if self.needs_token:
                self.principal = await self.authenticate()
            await self.handle(body)
        except OpenAIError as error:
            if error.status >= 500:
                logger.warning("request %s: %s", self.request_id, error.message)
            await self.send_error(error)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("request %s failed", self.request_id)
            await self.send_error(
                OpenAIError(
                    500,
                    f"Internal error in Kodify (request {self.request_id}); "
                    "the administrator can find it in the server log.",
                    code="internal_error",
                )
            )

    # -- sending -----------------------------------------------------------------------

    def id_header(self) -> tuple[bytes, bytes]:
        return (b"x-request-id", self.request_id.encode())

    async def send_headers(self, *, status: int = 200, headers: Any = None) -> None:
        self.headers_sent = True
        self.status = status
        if self.record is not None:
            self.record.status = status
        await super().send_headers(status=status, headers=headers)

    async def send_body(self, body: bytes, *, more_body: bool = False) -> None:
        if not more_body:
            self.response_complete = True
        await super().send_body(body, more_body=more_body)

    async def send_json(self, status: int, data: Any, headers: Any = ()) -> None:
        payload = orjson.dumps(data)
        await self.send_headers(
            status=status,
            headers=[
                *JSON_HEADERS,
                (b"content-length", str(len(payload)).encode()),
                self.id_header(),
                *headers,
            ],
        )
        await self.send_body(payload)

    async def send_error(self, error: OpenAIError) -> None:
        if self.record is not None and not self.record.error:
            self.record.error = error.message
        if self.headers_sent:  # too late for a status: end the body instead
            if not self.response_complete:
                await self.send_body(b"")
            return
        await self.send_json(error.status, error.as_dict(), error.headers)


class _ClientGone(Exception):
    pass


def _too_large(limit: int) -> OpenAIError:
    return OpenAIError(
        413,
        f"The request body is larger than this server accepts ({limit} bytes, "
        "KODIFY_MAX_BODY_BYTES).",
        code="request_too_large",
    )


class ProxyConsumer(GatewayConsumer):
    """``POST /v1/chat/completions`` and ``POST /v1/completions``."""

    endpoint: ClassVar[Endpoint]
    upstream_path: ClassVar[str]
    journaled = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slot: Slot = NO_SLOT

    async def handle(self, body: bytes) -> None:
        request = parse_request(self.endpoint, body, max_n=get_table().max_n)
        await self.forward(request.model, request)

    async def forward(self, model: str | None, request: Any) -> None:
        table = get_table()
        self.model = model or ""
        self.streamed = bool(getattr(request, "stream", False))
        if self.record is not None:
            self.record.model, self.record.stream = self.model, self.streamed
        if model is not None:  # refused before resolving: no hint whether it exists
            self.check_model(model)
        upstream, name = await table.resolve(model)
        self.model = name
        self.check_model(name)  # the default model too
        if table.default_max_tokens and isinstance(request, ProxyRequest):
            request.default_max_tokens(table.default_max_tokens)
        await self.take_slot()
        try:
            await self._forward(table, model, upstream, name, request)
        finally:
            await self.release_slot()

    async def _forward(
        self, table: UpstreamTable, model: str | None, upstream: Upstream, name: str, request: Any
    ) -> None:
        record = self.record
        withhold_usage = record is not None and request.ask_for_usage()
        failed: list[Upstream] = []
        last_failure: UpstreamUnavailable | None = None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            if last_failure is not None:
                upstream, name = await self._another(table, model, failed, last_failure)
            request.set_model(name)
            self.prepare(request, upstream, name)
            outcome = Outcome()
            if record is not None:
                record.model = name
                record.upstream = upstream.display_url
                outcome.chunks = record.response_chunks = []
                outcome.withhold_usage = withhold_usage
            upstream.outstanding += 1
            try:
                try:
                    response = await open_upstream(
                        upstream, self.upstream_path, request.upstream_body()
                    )
                except UpstreamUnavailable as error:
                    if attempt == MAX_ATTEMPTS:
                        raise
                    failed.append(upstream)
                    last_failure = error
                    metrics.retry(upstream, error.reason)
                    continue  # nothing reached the client yet: another replica may answer
                await self.deliver(response, upstream, outcome)
                return
            finally:
                upstream.outstanding -= 1
                self.first_byte_at = outcome.first_byte_at
                if record is not None:
                    record.first_byte_at = outcome.first_byte_at
                    if outcome.error:
                        record.error = outcome.error

    async def _another(
        self,
        table: UpstreamTable,
        model: str | None,
        failed: list[Upstream],
        last_failure: UpstreamUnavailable,
    ) -> tuple[Upstream, str]:
        """A replica this request has not failed on; else the reason it cannot be served.

        With one replica tried, the client gets that replica's own failure (a timeout is
        a 504, not "every replica is down"); with several, the table's summary of them.
        """
        try:
            upstream, name = await table.resolve(model, exclude=failed)
        except OpenAIError:
            if len(failed) == 1:
                raise last_failure from None
            raise
        self.check_model(name)
        return upstream, name

    def prepare(self, request: Any, upstream: Upstream, model: str) -> None:
        """Adapt the request to the replica chosen (before each attempt)."""

    async def deliver(
        self, response: aiohttp.ClientResponse, upstream: Upstream, outcome: Outcome
    ) -> None:
        """Answer the client from the upstream's response (passed through as it comes)."""
        await relay(
            response, upstream, self._relay_headers, self._relay_body, [self.id_header()], outcome
        )

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

    async def send_body(self, body: bytes, *, more_body: bool = False) -> None:
        # The slot is free before the client sees the end of the answer, so a client
        # sending one request after another never finds its previous one still counted.
        if not more_body and self.slot is not NO_SLOT:
            await self.release_slot()
        await super().send_body(body, more_body=more_body)

    async def _relay_headers(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        await self.send_headers(status=status, headers=headers)

    async def _relay_body(self, body: bytes, more_body: bool) -> None:
        await self.send_body(body, more_body=more_body)


class ChatCompletionsConsumer(ProxyConsumer):
    endpoint = Endpoint.CHAT
    upstream_path = "/v1/chat/completions"
    feature = Feature.CHAT


class CompletionsConsumer(ProxyConsumer):
    """OpenAI completions, and Tabby's: a body with ``segments`` is a Tabby request.

    Tabby requests become a fill-in-the-middle prompt for the model's family and get a
    cleaned-up completion in Tabby's shape; OpenAI requests with ``suffix`` are laid out
    in the model's FIM template when its server cannot take ``suffix``.
    """

    endpoint = Endpoint.COMPLETIONS
    upstream_path = "/v1/completions"
    feature = Feature.COMPLETION

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fim: FimCompletion | None = None
        self.rewrite: SuffixRewrite | None = None

    async def handle(self, body: bytes) -> None:
        data = decode_json(body)
        if is_tabby_body(data):
            await self.complete(tabby.parse_completion(data))
            return
        request = check_request(self.endpoint, data, body, max_n=get_table().max_n)
        if SuffixRewrite.wanted(request.body):
            self.rewrite = SuffixRewrite(request.body)
        await self.forward(request.model, request)

    async def complete(self, request: tabby.CompletionRequest) -> None:
        self.fim = completion = FimCompletion(request)
        if self.record is not None:
            self.record.language = request.language[:32] or completion.language.id
        model = request.model
        if model is None:
            table = get_table()
            table.ensure_background_refresh()
            await table.ensure_discovered()
            model = tabby.completion_model(table) or None
        await self.forward(model, completion)

    def prepare(self, request: Any, upstream: Upstream, model: str) -> None:
        if self.fim is None and self.rewrite is None:
            return
        card = upstream.models.get(model) or {}
        profile = _profile(get_table(), upstream, model, card)
        if self.fim is not None:
            self.fim.use_profile(profile, context_tokens=card.get("max_model_len"))
        elif self.rewrite is not None and self.rewrite.apply(request.body, profile):
            request.raw = None

    async def deliver(
        self, response: aiohttp.ClientResponse, upstream: Upstream, outcome: Outcome
    ) -> None:
        if self.fim is None:
            await super().deliver(response, upstream, outcome)
            return
        data = await read_answer(response, upstream, outcome)
        answer, journaled = self.fim.answer(data)
        if outcome.chunks is not None:
            outcome.chunks.append(orjson.dumps(journaled))
        await self.send_json(200, answer)


def _profile(
    table: UpstreamTable, upstream: Upstream, model: str, card: dict[str, Any]
) -> FimProfile:
    root = card.get("root")
    return get_profiles().for_model(
        model,
        root=root if isinstance(root, str) else "",
        choices=(upstream.spec.preprocessing, table.model_preprocessing.get(model, "")),
    )


class EventsConsumer(GatewayConsumer):
    """``POST /v1/events``: Tabby's completion events (shown, accepted, dismissed).

    Answered at once with 200 and an empty body, as Tabby's server does; the event goes
    to the journal's queue, where it is linked to its completion by the completion's id.
    """

    async def handle(self, body: bytes) -> None:
        query = dict(parse_qsl(self.scope.get("query_string", b"").decode("latin-1")))
        event = tabby.parse_event(decode_json(body), query)
        principal = self.principal
        user_agent = self.header(b"user-agent")
        recorder.record_event(
            EventRecord(
                kind=event.kind,
                response_id=event.completion_id,
                choice_index=event.choice_index,
                user_id=principal.user_id if principal is not None else None,
                username=principal.username if principal is not None else "",
                user_agent=user_agent.decode("latin-1") if user_agent else "",
                payload=event.payload,
            )
        )
        await self.send_headers(status=200, headers=[(b"content-length", b"0"), self.id_header()])
        await self.send_body(b"")


class ModelsConsumer(GatewayConsumer):
    """``GET /v1/models``: the union of the upstreams' models, in OpenAI shape."""

    methods = ("GET",)

    async def handle(self, body: bytes) -> None:
        table = get_table()
        table.ensure_background_refresh()
        await table.ensure_discovered()
        cards = table.served_models()
        principal = self.principal
        if principal is not None and principal.allowed_models:
            cards = [card for card in cards if principal.may_use(card["id"])]
        await self.send_json(200, {"object": "list", "data": cards})


class HealthConsumer(GatewayConsumer):
    """``GET /health``: liveness plus each upstream's state; never needs a token."""

    methods = ("GET", "HEAD")
    needs_token = False

    async def handle(self, body: bytes) -> None:
        table = get_table()
        table.ensure_background_refresh()
        await self.send_json(200, health.report(table))


class TabbyHealthConsumer(GatewayConsumer):
    """``GET|POST /v1/health``: Tabby's health shape, which Tabby clients read on start.

    Needs the caller's token, as Tabby's own server does: a plugin learns at start-up
    that its token is wrong, not at its first completion.
    """

    methods = ("GET", "POST")

    async def handle(self, body: bytes) -> None:
        table = get_table()
        table.ensure_background_refresh()
        await table.ensure_discovered()
        await self.send_json(200, tabby.health_report(table))


class ServerSettingConsumer(GatewayConsumer):
    """``GET /v1beta/server_setting``: what Tabby clients may do (telemetry)."""

    methods = ("GET",)

    async def handle(self, body: bytes) -> None:
        await self.send_json(200, tabby.SERVER_SETTING)


class OpenAPIConsumer(GatewayConsumer):
    """``GET /v1/openapi.json``: the public API's OpenAPI 3.1 document."""

    methods = ("GET",)
    needs_token = False

    async def handle(self, body: bytes) -> None:
        await self.send_json(200, openapi.document(get_table().max_n))


class NotFoundConsumer(GatewayConsumer):
    """Any other ``/v1/…`` path: a 404 in OpenAI shape rather than Django's HTML page."""

    methods = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
    needs_token = False

    async def handle(self, body: bytes) -> None:
        raise OpenAIError(
            404,
            f"Unknown API path {self.scope['path']}. See /v1/openapi.json for the API.",
            code="unknown_url",
        )
