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
import re
import secrets
import time
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import orjson
from channels.generic.http import AsyncHttpConsumer
from django.conf import settings

from accounts.auth import AuthenticationFailed, Principal, get_authenticator
from gateway import actions, affinity, health, metrics, openapi, tabby
from gateway.actions.fitting import DoesNotFit, fit
from gateway.api_schema.requests import ActionRequest
from gateway.api_schema.validation import convert
from gateway.errors import OpenAIError
from gateway.fim.suffix import SuffixRewrite
from gateway.openai_api import (
    Endpoint,
    check_request,
    decode_json,
    is_tabby_body,
    parse_request,
)
from gateway.operators import from_this_machine, shows_metrics_token
from gateway.pipeline import Delivery, FimDelivery, Pipeline, SuffixDelivery
from gateway.tabby_completion import FimCompletion
from gateway.upstreams import UpstreamTable, get_table
from journal import recorder
from journal.features import Feature
from journal.record import EventRecord, Record

logger = logging.getLogger("kodify.gateway")

JSON_HEADERS = [(b"content-type", b"application/json")]
# Status recorded for a request whose client left before any answer was sent (nginx's).
CLIENT_CLOSED_REQUEST = 499
_FEATURES = frozenset(Feature.values)
# A client's own X-Request-Id is kept when it is this: enough for UUIDs, trace ids and
# the ids proxies make, and nothing that could break a header or a log line.
_CLIENT_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class GatewayConsumer(AsyncHttpConsumer):
    """Base of every public endpoint: body limits, errors in OpenAI shape, cancellation."""

    methods: ClassVar[tuple[str, ...]] = ("POST",)
    needs_token: ClassVar[bool] = True
    # Endpoints whose requests each have a record (one journal row when the journal is
    # on, unless ``journal_rows`` is false), and their default feature.
    journaled: ClassVar[bool] = False
    journal_rows: ClassVar[bool] = True
    feature: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_id = ""  # the one the client receives, the upstream and the log see
        self.own_id = ""  # Kodify's own, unique: the journal's key
        self.client_request_id = ""  # the client's well-formed X-Request-Id, if any
        self.principal: Principal | None = None
        self.headers_sent = False
        self.response_complete = False
        self.client_gone = False
        self.record: Record | None = None
        self.journal_on = False
        self.handed_over = False  # the record went to the journal
        self.status = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        self.base_send = send
        self.own_id = secrets.token_hex(8)
        self.client_request_id = client_request_id(self.header(b"x-request-id"))
        self.request_id = self.client_request_id or self.own_id
        started = time.perf_counter()
        endpoint = metrics.request_started(scope["path"])
        if self.journaled:
            self.record = self.new_record()
            self.journal_on = self.journal_rows and recorder.journal_on()
        try:
            await self.serve(receive)
        finally:
            record = self.record
            if record is not None and self.journal_on and not self.handed_over:
                self.journal(record)
            first_byte_at = record.first_byte_at if record is not None else None
            metrics.request_finished(
                endpoint,
                record.model if record is not None else "",
                self.status or (CLIENT_CLOSED_REQUEST if self.client_gone else 0),
                time.perf_counter() - started,
                first_byte_at - started
                if record is not None and record.stream and first_byte_at is not None
                else None,
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
            # Not the client's id: clients reuse theirs, and the journal keys on this one.
            request_id=self.own_id,
            client_request_id=self.client_request_id,
            endpoint=self.journal_endpoint(),
            feature=chosen if chosen in _FEATURES else self.feature,
            client_ip=client[0] if client else None,
            user_agent=user_agent.decode("latin-1") if user_agent else "",
        )

    def journal_endpoint(self) -> str:
        return str(self.scope["path"]).rstrip("/") or "/"

    def journal(self, record: Record) -> None:
        """Hand the finished record to the journal (a queue put; never waits)."""
        self.handed_over = True
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

    async def authenticate(self, body: bytes = b"") -> Principal:
        authenticator = get_authenticator()
        try:
            client = self.scope.get("client")
            return await authenticator.authenticate(
                self.header(b"authorization"),
                self.header(b"user-agent"),
                client[0] if client else None,
            )
        except AuthenticationFailed as exc:
            metrics.auth_failure(exc.code)
            if self.record is not None and exc.token_id is not None:
                _attribute_refusal(self.record, authenticator.mode.value, exc, body)
            headers = [(b"www-authenticate", b'Bearer realm="kodify"')]
            if exc.retry_after is not None:
                headers.append((b"retry-after", str(exc.retry_after).encode()))
            raise OpenAIError(exc.status, str(exc), code=exc.code, headers=tuple(headers)) from None

    async def answer(self, body: bytes) -> None:
        try:
            if self.needs_token:
                self.principal = await self.authenticate(body)
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
            record = self.record
            if record is not None and self.journal_on and not self.handed_over:
                # Before the answer's last bytes leave: a client that has its whole answer
                # has its journal row, even if this process is killed the next instant.
                self.journal(record)
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


def _attribute_refusal(record: Record, mode: str, exc: AuthenticationFailed, body: bytes) -> None:
    """A recognised token refused (revoked, expired, its user disabled) is journaled as
    its owner's: an auditor looks for who still uses a withdrawn token, and for what."""
    record.auth_mode = mode
    record.user_id = exc.user_id
    record.username = exc.username
    record.token_id = exc.token_id
    if not record.model:
        record.model = requested_model(body)


def requested_model(body: bytes) -> str:
    """The body's ``model`` when it is a JSON object naming one as a string, else ""."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) else ""


def _prompt_without_code(action: str, asked: ActionRequest, table: UpstreamTable) -> str:
    """The text an action's messages hold besides the code and the context (the template's
    words, the file path, the user's instructions), for fitting them to the window."""
    messages = actions.build_messages(
        action,
        code="x",
        language=asked.language,
        filepath=asked.filepath,
        instructions=asked.instructions,
        overrides=table.actions.templates,
    )
    return "".join(str(message.get("content", "")) for message in messages)


def client_request_id(value: bytes | None) -> str:
    """The client's X-Request-Id when well-formed (1-128 of ``A-Za-z0-9._:-``), else ""."""
    if value is None or not _CLIENT_REQUEST_ID.fullmatch(value):
        return ""
    return value.decode("ascii")


def _too_large(limit: int) -> OpenAIError:
    return OpenAIError(
        413,
        f"The request body is larger than this server accepts ({limit} bytes, "
        "KODIFY_MAX_BODY_BYTES).",
        code="request_too_large",
    )


class ProxyConsumer(GatewayConsumer):
    """``POST /v1/chat/completions`` and ``POST /v1/completions``: the request's body is
    checked here, and its :class:`~gateway.pipeline.Pipeline` does the rest."""

    endpoint: ClassVar[Endpoint]
    upstream_path: ClassVar[str]
    journaled = True

    async def handle(self, body: bytes) -> None:
        request = parse_request(self.endpoint, body, max_n=get_table().max_n)
        await self.pipeline().forward(request.model, request)

    def pipeline(self, delivery: Delivery | None = None) -> Pipeline:
        assert self.record is not None  # every proxied request has one
        return Pipeline(
            self,
            self.record,
            principal=self.principal,
            upstream_path=self.upstream_path,
            journaled=self.journal_on,
            delivery=delivery,
        )


class ChatCompletionsConsumer(ProxyConsumer):
    """OpenAI chat; a request to an action model (``<model>:explain``…) gets the action's
    template applied to its last user message and goes to ``<model>``."""

    endpoint = Endpoint.CHAT
    upstream_path = "/v1/chat/completions"
    feature = Feature.CHAT

    async def handle(self, body: bytes) -> None:
        table = get_table()
        request = parse_request(self.endpoint, body, max_n=table.max_n)
        model = request.model
        if model is not None and ":" in model and settings.KODIFY_ACTION_MODELS:
            split = actions.action_and_model(model)
            if split is not None and not table.replicas(model):
                base, action = split
                try:
                    request.body["messages"] = actions.messages_for_chat(
                        action, request.body["messages"], overrides=table.actions.templates
                    )
                except ValueError as exc:
                    raise OpenAIError(400, str(exc), param="messages") from None
                table.actions.defaults_for(action).fill(request.body, model=False)
                request.raw = None
                request.set_model(base)
                if self.record is not None:
                    self.record.feature = action
                model = base
        pipeline = self.pipeline()
        if table.affinity_on(model):
            pipeline.affinity = affinity.prompt_key(
                orjson.dumps(request.body.get("messages", [])[:2])
            )
        await pipeline.forward(model, request)


class ActionConsumer(ProxyConsumer):
    """``POST /v1/actions/{docs|fix|tests|explain}``: code and its language in, the
    action's messages built from the server's template, then the chat pipeline (limits,
    routing, failover, the journal with the action as the feature), answered as a chat
    completion."""

    endpoint = Endpoint.CHAT
    upstream_path = "/v1/chat/completions"
    feature = Feature.CHAT

    async def handle(self, body: bytes) -> None:
        action = self.scope.get("url_route", {}).get("kwargs", {}).get("action", "")
        if action not in actions.ACTIONS:
            raise OpenAIError(
                404,
                f"Unknown action {action!r}: POST /v1/actions/ takes {', '.join(actions.ACTIONS)}.",
                code="unknown_action",
            )
        if self.record is not None:
            self.record.feature = action
        asked = convert(decode_json(body), ActionRequest)
        limit = settings.KODIFY_ACTION_MAX_CHARS
        size = len(asked.code) + len(asked.context or "")
        if size > limit:
            raise OpenAIError(
                400,
                f"'code' and 'context' hold {size:,} characters; this server takes at most "
                f"{limit:,} (KODIFY_ACTION_MAX_CHARS): send the selection, not the file.",
                param="code",
                code="code_too_long",
            )
        table = get_table()
        chat: dict[str, Any] = {"stream": bool(asked.stream)}
        for key in ("model", "temperature", "max_tokens"):
            value = getattr(asked, key)
            if value is not None:
                chat[key] = value
        # The console's defaults for this action, where the request sets nothing.
        table.actions.defaults_for(action).fill(chat, model=True)
        context = self.fitted_context(table, asked, action, chat)
        chat["messages"] = actions.build_messages(
            action,
            code=asked.code,
            language=asked.language,
            filepath=asked.filepath,
            context=context,
            instructions=asked.instructions,
            overrides=table.actions.templates,
        )
        request = check_request(Endpoint.CHAT, chat, None, max_n=table.max_n)
        await self.pipeline().forward(request.model, request)

    def fitted_context(
        self, table: UpstreamTable, asked: ActionRequest, action: str, chat: dict[str, Any]
    ) -> str | None:
        """The context trimmed to the model's window (the code must fit whole); ``chat``:
        the request's model and max_tokens, the action's defaults included."""
        model = chat.get("model") or table.default_model()
        max_tokens = chat.get("max_tokens")
        replicas = table.replicas(model) if model else []
        card = replicas[0].models.get(model or "", {}) if replicas else {}
        length = card.get("max_model_len")
        try:
            fitted = fit(
                asked.code,
                asked.context,
                model=model or "",
                max_model_len=length if isinstance(length, int) else None,
                answer_tokens=int(max_tokens) if max_tokens else None,
                extra_text=_prompt_without_code(action, asked, table),
            )
        except DoesNotFit as exc:
            raise OpenAIError(400, str(exc), param="code", code="context_length_exceeded") from None
        return fitted.context


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
        self.superseded = False
        self.handler_task: asyncio.Task[Any] | None = None

    async def handle(self, body: bytes) -> None:
        self.handler_task = asyncio.current_task()
        data = decode_json(body)
        if is_tabby_body(data):
            await self.complete(tabby.parse_completion(data, self.principal))
            return
        request = check_request(self.endpoint, data, body, max_n=get_table().max_n)
        delivery: Delivery | None = None
        if SuffixRewrite.wanted(request.body):
            delivery = SuffixDelivery(SuffixRewrite(request.body))
        await self.pipeline(delivery).forward(request.model, request)

    async def complete(self, request: tabby.CompletionRequest) -> None:
        completion = FimCompletion(request)
        if self.record is not None:
            self.record.language = request.language[:32] or completion.language.id
        model = request.model
        table = get_table()
        if model is None:
            table.ensure_background_refresh()
            await table.ensure_discovered()
            model = tabby.completion_model(table) or None
        pipeline = self.pipeline(FimDelivery(completion))
        segments = request.segments
        document = segments.filepath or segments.git_url or ""
        caller = self.caller()
        if table.affinity_on(model):
            pipeline.affinity = affinity.completion_key(caller, document)
        key = (caller, document) if document and table.supersede else None
        if key is not None:
            earlier = _COMPLETING.get(key)
            _COMPLETING[key] = self
            if earlier is not None:
                earlier.supersede()
        try:
            await pipeline.forward(model, completion)
        except asyncio.CancelledError:
            if not self.superseded or self.client_gone:
                raise
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()  # cancelled by supersede(): answer, the client still waits
            await self.answer_superseded(request)
        finally:
            if key is not None and _COMPLETING.get(key) is self:
                del _COMPLETING[key]

    def supersede(self) -> None:
        """A newer completion for the same caller and document arrived: stop this one's
        generation upstream (the developer typed on) and answer it with nothing."""
        if self.superseded or self.headers_sent or self.handler_task is None:
            return  # too late: its answer is on its way
        self.superseded = True
        self.handler_task.cancel()

    async def answer_superseded(self, request: tabby.CompletionRequest) -> None:
        metrics.superseded()
        if self.record is not None:
            self.record.error = "superseded: a newer completion for the same document came"
        await self.send_json(200, {"id": request.completion_id, "choices": []})

    def caller(self) -> str:
        """Who asks, for affinity: the token (or user), else the client's address."""
        principal = self.principal
        if principal is not None and (principal.token_id or principal.user_id):
            return f"t{principal.token_id}u{principal.user_id}"
        client = self.scope.get("client")
        return client[0] if client else ""


# This worker's Tabby completions in flight, by (caller, document): the newest of each.
_COMPLETING: dict[tuple[str, str], CompletionsConsumer] = {}


class TokenizeConsumer(ProxyConsumer):
    """``POST /tokenize`` (or ``/v1/tokenize``): vLLM's tokenizer for ``model``, routed,
    authenticated and limited as a generation is; answered as vLLM answers."""

    endpoint = Endpoint.TOKENIZE
    upstream_path = "/tokenize"  # vLLM's path, whichever the client used
    journal_rows = False  # nothing is generated: no journal row


class DetokenizeConsumer(ProxyConsumer):
    """``POST /detokenize`` (or ``/v1/detokenize``): the text of token ids, by vLLM."""

    endpoint = Endpoint.DETOKENIZE
    upstream_path = "/detokenize"
    journal_rows = False


class EventsConsumer(GatewayConsumer):
    """``POST /v1/events``: Tabby's completion events (shown, accepted, dismissed).

    Answered at once with 200 and an empty body, as Tabby's server does; the event goes
    to the journal's queue, where it is linked to its completion by the completion's id.
    Only the caller the completion was given to may post its events: its id is signed
    for that caller (gateway/completion_ids.py), checked with no lookup.
    """

    async def handle(self, body: bytes) -> None:
        query = dict(parse_qsl(self.scope.get("query_string", b"").decode("latin-1")))
        principal = self.principal
        event = tabby.parse_event(decode_json(body), query, principal)
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
        if settings.KODIFY_ACTION_MODELS:
            cards = [*cards, *actions.action_cards(cards)]
        await self.send_json(200, {"object": "list", "data": cards})


class HealthConsumer(GatewayConsumer):
    """``GET /health``: liveness plus each upstream's state; never needs a token."""

    methods = ("GET", "HEAD")
    needs_token = False

    async def handle(self, body: bytes) -> None:
        table = get_table()
        table.ensure_background_refresh()
        operator = from_this_machine(self.scope) or shows_metrics_token(
            self.header(b"authorization")
        )
        await self.send_json(200, health.report(table, operator=operator))


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
        await table.learn_devices()
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
    """Any other path under the public API's prefixes (``/v1/…``, ``/v1beta/…``,
    ``/tokenize/…``, ``/detokenize/…``): a 404 in OpenAI shape rather than Django's HTML
    page."""

    methods = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
    needs_token = False

    async def handle(self, body: bytes) -> None:
        raise OpenAIError(
            404,
            f"Unknown API path {self.scope['path']}. See /v1/openapi.json for the API.",
            code="unknown_url",
        )
