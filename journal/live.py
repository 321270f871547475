"""The live view: new journal rows pushed to the console over a WebSocket (/ws/journal/).

The journal writer calls :func:`broadcast` after each batch it inserts; the batch goes to
the channel layer's group once (Redis fans it out to every worker's consumers), as small
summaries: the console's table needs no prompt, and a batch may hold hundreds of rows.

Who may listen, and for how long:

* Only pages of the console itself open the socket (:class:`ConsoleOriginValidator`): the
  socket's Origin must be the origin the socket was opened on, or one of
  ``CSRF_TRUSTED_ORIGINS``, as for the console's forms.  Otherwise any site that a
  logged-in auditor visits could open it with the auditor's cookie and read the journal.
* A socket lives no longer than the right to read the journal.  Each socket joins its
  user's group; logging out closes that session's sockets, and a change that may take the
  right away (roles, permissions, deactivation, password, deletion) makes that user's
  sockets check again (:func:`revoke`).  As a backstop for a missed message, a socket
  checks its session again before it forwards a batch when its last check is older than
  :data:`RECHECK_S`: no row reaches a page whose session has ended for longer than that.
  Neither costs the journal writer anything: it still sends each batch once, unread.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import time
from collections.abc import Iterable, Mapping
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.http.request import split_domain_port, validate_host
from django.utils.crypto import constant_time_compare

from accounts.redis_outage import settings_redis_answered, settings_redis_failed
from journal.selectors import PREVIEW_CHARS, one_line

logger = logging.getLogger("kodify.journal")

GROUP = "journal.live"
MESSAGE_TYPE = "journal.batch"  # handled by JournalLiveConsumer.journal_batch
REVOKE_TYPE = "journal.revoke"  # handled by JournalLiveConsumer.journal_revoke
VIEW_PERMISSION = "journal.view_entry"
REFUSED = 4403  # the close code for "not allowed" (4000-4999 are the application's)
# A socket checks its session again before forwarding a batch once its last check is this
# old: the most a missed revocation can leak.  One check is a few indexed queries.
RECHECK_S = 30.0

_SUMMARY_FIELDS = (
    "request_id",
    "username",
    "client_name",
    "endpoint",
    "feature",
    "model",
    "status",
    "cancelled",
    "ttft_ms",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
)


def summarize(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the live table shows of one row, JSON-safe (the channel layer is msgpack)."""
    summary = {name: row.get(name) for name in _SUMMARY_FIELDS}
    created_at = row.get("created_at")
    summary["created_at"] = (
        created_at.astimezone(dt.UTC).isoformat()
        if isinstance(created_at, dt.datetime)
        else str(created_at or "")
    )
    # Rows reach us already redacted: the preview shows nothing the journal does not keep.
    summary["preview"] = one_line(
        str(row.get("response_text") or row.get("error") or ""), PREVIEW_CHARS
    )
    return summary


async def broadcast(rows: list[dict[str, Any]]) -> None:
    """Push one inserted batch to the consoles watching; never fails the journal writer.

    The live view is a convenience: with the channel layer down, the rows are still in
    the journal, so a failure here is logged and dropped.
    """
    await broadcast_summaries([summarize(row) for row in rows])


async def broadcast_summaries(summaries: list[dict[str, Any]]) -> None:
    """:func:`broadcast` of rows summarised already (by the journal writer's thread, so
    that a batch of hundreds of rows does not hold up the event loop)."""
    layer = get_channel_layer()
    if layer is None or not summaries:
        return
    message = {"type": MESSAGE_TYPE, "rows": summaries}
    try:
        await layer.group_send(GROUP, message)
    except Exception as exc:
        if not settings_redis_failed(exc, where="the journal's live view"):
            logger.warning(
                "journal live view: could not send %d rows", len(summaries), exc_info=True
            )
        return
    settings_redis_answered()


def user_group(user_pk: Any) -> str:
    """The group of one console user's sockets (revocations go there)."""
    return f"{GROUP}.user.{user_pk}"


def session_digest(session_key: str) -> str:
    """How a revocation names a session: never the session key itself."""
    return hashlib.sha256(session_key.encode()).hexdigest()


# --- Who may open the socket: the console's own pages -----------------------------------


class ConsoleOriginValidator:
    """Lets a WebSocket handshake through only from the console's own pages.

    Channels' :class:`~channels.security.websocket.OriginValidator` checks the Origin
    against a fixed list; the console's own origin depends on the Host the socket was
    opened on, so the list is made for each connection and Channels does the rest
    (parsing, scheme, host, default ports, the refusal).  The list holds the origin of
    the socket's own Host (valid for ALLOWED_HOSTS) with the socket's scheme (``wss`` is a
    page on ``https``), which is what a browser on the console sends, and
    ``CSRF_TRUSTED_ORIGINS`` (for a proxy that changes the scheme or port), in Django's
    syntax (``https://*.example.com``).  It never holds ``*``: a missing Origin and
    ``null`` match nothing.  Browsers always send an Origin on WebSockets, and the socket
    is only for the console's page; a client that is not a browser has no business with
    it, even with a session cookie.
    """

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        allowed = [*own_origin(scope), *trusted_origins()]
        return await OriginValidator(self.application, allowed)(scope, receive, send)


def own_origin(scope: Mapping[str, Any]) -> list[str]:
    """The origin of the page that opened the socket on this Host, if the Host is valid."""
    host = next(
        (value.decode("latin1") for name, value in scope.get("headers", ()) if name == b"host"),
        "",
    )
    domain, _port = split_domain_port(host)
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:  # as Django's HttpRequest.get_host()
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    if not domain or not validate_host(domain, allowed_hosts):
        return []
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    return [f"{scheme}://{host}"]


def trusted_origins() -> list[str]:
    """CSRF_TRUSTED_ORIGINS in Channels' syntax: ``https://*.a.b`` is ``https://.a.b``."""
    return [
        origin.replace("://*.", "://.", 1)
        for origin in settings.CSRF_TRUSTED_ORIGINS
        if "://" in origin  # Django's own check (4_0.E001) reports the others
    ]


# --- Who may keep listening ----------------------------------------------------------------


def _may_read_now(user: Any) -> bool:
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(VIEW_PERMISSION)
    )


_may_read = database_sync_to_async(_may_read_now)


def reader_of(session_key: str) -> Any:
    """The user of a session if it is still valid and its user may read the journal.

    What ``django.contrib.auth.get_user`` checks (the session exists and has not expired,
    its user exists, the password has not changed since the login), read-only: it never
    flushes or cycles the session, which belongs to the browser.
    """
    engine = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore(session_key)
    user_model = auth.get_user_model()
    try:
        user_id = user_model._meta.pk.to_python(session[auth.SESSION_KEY])
        backend_path = session[auth.BACKEND_SESSION_KEY]
    except KeyError:
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = auth.load_backend(backend_path).get_user(user_id)
    if user is None:
        return None
    session_hash = session.get(auth.HASH_SESSION_KEY)
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    if not session_hash or not any(constant_time_compare(session_hash, h) for h in hashes):
        return None
    return user if _may_read_now(user) else None


class JournalLiveConsumer(AsyncJsonWebsocketConsumer):
    """Forwards each broadcast batch to one console page, as ``{"rows": [...]}``."""

    joined: tuple[str, ...] = ()
    session_key = ""
    session = ""  # session_digest(session_key)
    user_pk: Any = None
    checked_at = 0.0  # time.monotonic() of the last check that let the socket listen
    refused = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        session_key = getattr(self.scope.get("session"), "session_key", None)
        checked_at = time.monotonic()
        if not session_key or not await _may_read(user):
            await self.close(code=REFUSED)
            return
        assert user is not None
        self.session_key, self.session = session_key, session_digest(session_key)
        self.user_pk, self.checked_at = user.pk, checked_at
        self.joined = (GROUP, user_group(user.pk))
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """The page only listens; anything it sends is ignored."""

    async def journal_batch(self, message: dict[str, Any]) -> None:
        if time.monotonic() - self.checked_at >= RECHECK_S:
            await self.check_again()
        if not self.refused:
            await self.send_json({"rows": message["rows"]})

    async def journal_revoke(self, message: dict[str, Any]) -> None:
        """A session ended (``session`` names it) or this user's rights may have changed."""
        if message.get("session"):
            if message["session"] == self.session:
                await self.refuse()
            return
        await self.check_again()

    async def check_again(self) -> None:
        if self.refused:
            return
        checked_at = time.monotonic()
        try:
            user = await database_sync_to_async(reader_of)(self.session_key)
        except Exception:
            logger.warning("journal live view: could not check a session", exc_info=True)
            user = None  # fail closed: the page reconnects, and is checked then
        if user is None or user.pk != self.user_pk:
            await self.refuse()
        else:
            self.checked_at = checked_at

    async def refuse(self) -> None:
        if not self.refused:
            self.refused = True
            await self.close(code=REFUSED)


# --- Revocations: Django's signals to the sockets concerned ------------------------------


def revoke(group: str, session_key: str = "") -> None:
    """Tell the sockets of ``group`` to close (those of ``session_key`` when given) or,
    without a session, to check their session again; never fails the caller."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": REVOKE_TYPE, "session": session_digest(session_key) if session_key else ""}
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        # The sockets check again by themselves within RECHECK_S.
        logger.warning("journal live view: could not send a revocation", exc_info=True)


def revoke_after_commit(groups: Iterable[str]) -> None:
    """:func:`revoke` once the change is committed, so that the check sees it."""
    for group in groups:
        transaction.on_commit(functools.partial(revoke, group))


def _on_logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    if user is None or user.pk is None:
        return
    # Sent before the session is flushed: a check now would still find it valid.
    session_key = getattr(getattr(request, "session", None), "session_key", None) or ""
    revoke(user_group(user.pk), session_key)


def _on_user_saved(
    sender: Any, instance: Any, created: bool = False, update_fields: Any = None, **kwargs: Any
) -> None:
    if created or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return  # a new user has no socket; a login takes nothing away
    revoke_after_commit([user_group(instance.pk)])


def _on_user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    revoke_after_commit([user_group(instance.pk)])


def _on_rights_changed(
    sender: Any, instance: Any, action: str, pk_set: Any = None, **kwargs: Any
) -> None:
    if action not in ("post_remove", "post_clear"):
        return  # a right given takes nothing away
    user_model = auth.get_user_model()
    if isinstance(instance, user_model):
        revoke_after_commit([user_group(instance.pk)])
    elif sender is not Group.permissions.through and pk_set:
        revoke_after_commit(user_group(pk) for pk in pk_set)  # group.user_set.remove(user)
    else:
        revoke_after_commit([GROUP])  # a role lost a permission, or all its users


def _on_role_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    revoke_after_commit([GROUP])


def _connect_signals() -> None:
    user_model = auth.get_user_model()
    uid = "journal.live"
    auth.user_logged_out.connect(_on_logged_out, dispatch_uid=uid)
    # Senders named: a post_delete receiver for every model would stop Django from
    # deleting the journal's expired rows in bulk.
    post_save.connect(_on_user_saved, sender=user_model, dispatch_uid=uid)
    post_delete.connect(_on_user_deleted, sender=user_model, dispatch_uid=uid)
    for through in (
        user_model.groups.through,
        user_model.user_permissions.through,
        Group.permissions.through,
    ):
        m2m_changed.connect(_on_rights_changed, sender=through, dispatch_uid=uid)
    for model in (Group, Permission):
        post_delete.connect(_on_role_deleted, sender=model, dispatch_uid=uid)


_connect_signals()
