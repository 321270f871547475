"""Who may use the management API (``/api/``), and how they prove it.

Two ways in: the console's session (staff accounts; DRF enforces CSRF on it) or
``Authorization: Bearer <KODIFY_ADMIN_API_KEY>`` for automation, which acts as an
administrator. What each caller may do follows the Django model permissions that the
roles (``accounts.roles``) grant: *view* to read, *add*/*change* to write.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from django.conf import settings
from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from accounts.roles import ADMIN_GRANTS

if TYPE_CHECKING:  # DRF imports this module while rest_framework.views is half loaded
    from rest_framework.request import Request
    from rest_framework.views import APIView

API_KEY_NAME = "admin API key"
_ADMIN_PERMISSIONS = frozenset(
    f"{app}.{action}_{model}"
    for app, models in ADMIN_GRANTS.items()
    for model, actions in models.items()
    for action in actions
)


class AdminApiKeyUser:
    """``request.user`` for a caller holding the admin API key: the administrators' rights.

    Not a database account, so nothing can log in as it and it cannot be disabled in the
    console; turning the key off means unsetting KODIFY_ADMIN_API_KEY.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = True
    is_superuser = False
    pk = None
    id = None
    username = API_KEY_NAME

    def get_username(self) -> str:
        return self.username

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return perm in _ADMIN_PERMISSIONS

    def has_perms(self, perm_list: Any, obj: Any = None) -> bool:
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def __str__(self) -> str:
        return self.username


class _NamedActor:
    """What the services record as the actor of the API key: a name, no account.

    The services link an audit event (and a token's issuer) to an account only when the
    actor is authenticated; this one is not, so only its name is kept.
    """

    is_authenticated = False

    def __init__(self, name: str) -> None:
        self.name = name

    def get_username(self) -> str:
        return self.name


API_KEY_ACTOR = _NamedActor(API_KEY_NAME)


def service_actor(request: Request) -> Any:
    """The ``actor`` to hand to :mod:`accounts.services` for this request."""
    return API_KEY_ACTOR if isinstance(request.user, AdminApiKeyUser) else request.user


class AdminApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer <KODIFY_ADMIN_API_KEY>``; off while the setting is unset."""

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[AdminApiKeyUser, None] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None  # not ours: the session may still authenticate the request
        key = settings.KODIFY_ADMIN_API_KEY
        if not key:
            raise exceptions.AuthenticationFailed(
                "The admin API key is off on this server (KODIFY_ADMIN_API_KEY is unset): "
                "log in to the console instead."
            )
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: expected 'Bearer <admin API key>'."
            )
        if not hmac.compare_digest(parts[1], key.encode()):
            raise exceptions.AuthenticationFailed("Invalid admin API key.")
        return AdminApiKeyUser(), None

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (with this challenge) rather than 403 to anonymous callers.
        return 'Bearer realm="api"'


class RolePermission(permissions.DjangoModelPermissions):
    """Django model permissions, with *view* required to read, for active staff only.

    A view names the permission of a custom action in ``action_permissions`` (e.g.
    revoking a token needs *change*); other requests use the HTTP method's permission,
    so a method the view does not offer still answers 403 to those who may not write.
    """

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }
    action_permissions = {
        "list": "view",
        "retrieve": "view",
        "create": "add",
        "update": "change",
        "partial_update": "change",
        "destroy": "delete",
    }

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        model = self._queryset(view).model
        action = getattr(view, "action", None)
        codename = {**self.action_permissions, **getattr(view, "action_permissions", {})}.get(
            action or ""
        )
        if codename is None:
            assert request.method is not None
            required = self.get_required_permissions(request.method, model)
        else:
            required = [f"{model._meta.app_label}.{codename}_{model._meta.model_name}"]
        return user.has_perms(required)
