"""The management REST API under ``/api/``: API users, their tokens, the audit trail.

Nothing is ever deleted here, so the journal keeps naming who made each request:

* ``DELETE /api/users/{id}/`` answers 405; ``PATCH {"is_active": false}`` disables a user
  (their tokens are refused at once) and ``{"is_active": true}`` enables them again;
* ``DELETE /api/tokens/{id}/`` answers 405; ``POST /api/tokens/{id}/revoke/`` revokes.

Who may call what: see :mod:`accounts.permissions`.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.serializers import BaseSerializer

from accounts import services
from accounts.models import ApiToken, ApiUser, AuditEvent
from accounts.permissions import AdminApiKeyAuthentication, service_actor
from accounts.serializers import (
    ApiTokenSerializer,
    ApiUserSerializer,
    AuditEventSerializer,
    IssuedTokenSerializer,
    IssueTokenSerializer,
    TokenExpirySerializer,
)


class AdminApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents the admin API key in the schema (Swagger UI's "Authorize")."""

    target_class = AdminApiKeyAuthentication
    name = "adminApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The server's KODIFY_ADMIN_API_KEY; acts as an administrator.",
        }


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 500


class _Base(viewsets.GenericViewSet[Any]):
    pagination_class = Pagination
    filter_backends = (filters.DjangoFilterBackend, SearchFilter, OrderingFilter)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "actor": service_actor(self.request)}


class ApiUserFilter(filters.FilterSet):
    class Meta:
        model = ApiUser
        fields = ("username", "is_active")


@extend_schema_view(
    list=extend_schema(summary="List API users"),
    retrieve=extend_schema(summary="One API user"),
    create=extend_schema(summary="Create an API user"),
    update=extend_schema(summary="Replace an API user's settings"),
    partial_update=extend_schema(
        summary="Change an API user",
        description="`is_active: false` disables the user: their tokens are refused at once. "
        "Users are never deleted (DELETE answers 405), so the journal keeps their name.",
    ),
)
class ApiUserViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    _Base,
):
    queryset = ApiUser.objects.all()
    serializer_class = ApiUserSerializer
    filterset_class = ApiUserFilter
    search_fields = ("username", "full_name", "email", "comment")
    ordering_fields = ("username", "created_at", "updated_at")
    ordering = ("username",)


class ApiTokenFilter(filters.FilterSet):
    username = filters.CharFilter(field_name="user__username", help_text="The user's username.")
    state = filters.ChoiceFilter(
        choices=(("active", "active"), ("expired", "expired"), ("revoked", "revoked")),
        method="filter_state",
        help_text="active: usable now (not revoked, not expired, user enabled).",
    )

    class Meta:
        model = ApiToken
        fields = ("user", "username", "prefix", "state")

    def filter_state(
        self, queryset: QuerySet[ApiToken], name: str, value: str
    ) -> QuerySet[ApiToken]:
        now = timezone.now()
        if value == "active":
            return queryset.usable()  # type: ignore[attr-defined]
        if value == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)


@extend_schema_view(
    list=extend_schema(summary="List tokens", description="Never includes the token itself."),
    retrieve=extend_schema(summary="One token"),
)
class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    _Base,
):
    queryset = ApiToken.objects.select_related("user", "created_by", "revoked_by")
    serializer_class = ApiTokenSerializer
    filterset_class = ApiTokenFilter
    search_fields = ("name", "comment", "prefix", "user__username")
    ordering_fields = ("created_at", "expires_at", "last_used_at")
    ordering = ("-created_at",)
    action_permissions = {"revoke": "change"}
    # PUT would replace a token wholesale; only its expiry may change (PATCH).
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action == "create":
            return IssueTokenSerializer
        if self.action == "partial_update":
            return TokenExpirySerializer
        return ApiTokenSerializer

    @extend_schema(
        summary="Issue a token",
        description="The answer's `token` is the only time the token is shown: the server "
        "keeps only its prefix and a keyed hash.",
        request=IssueTokenSerializer,
        responses={201: IssuedTokenSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token = serializer.save()
        return Response(IssuedTokenSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a token's expiry",
        description="`expires_at` must be in the future; `null` removes the expiry. Only a "
        "live token's expiry changes: an expired or revoked token cannot be revived (400). "
        "To end a token now, revoke it.",
        request=TokenExpirySerializer,
        responses={200: ApiTokenSerializer},
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Not partial: the expiry, the one field, must be given (null clears it).
        serializer = self.get_serializer(self.get_object(), data=request.data)
        serializer.is_valid(raise_exception=True)
        token = serializer.save()
        return Response(ApiTokenSerializer(token).data)

    @extend_schema(
        summary="Revoke a token",
        description="At once and for good; revoking a revoked token changes nothing.",
        request=None,
        responses={200: ApiTokenSerializer},
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        token = services.revoke_token(token=self.get_object(), actor=service_actor(request))
        return Response(ApiTokenSerializer(token).data)


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 instant, compared in UTC: PostgreSQL refuses offsets past ±15:59 that
    Python accepts (up to ±23:59), so the offset never reaches the database."""

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return super().filter(qs, value)


class AuditEventFilter(filters.FilterSet):
    since = UtcDateTimeFilter(field_name="at", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ("action", "actor", "actor_name", "target_type", "target_id", "since", "until")


@extend_schema_view(
    list=extend_schema(
        summary="The audit trail", description="Newest first. Administrators and auditors."
    ),
    retrieve=extend_schema(summary="One audit event"),
)
class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, _Base):
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    search_fields = ("actor_name", "action", "target")
    ordering_fields = ("at",)
    ordering = ("-at", "-id")


def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Unknown paths under /api/ answer in JSON, like the rest of the API."""
    return JsonResponse({"detail": "Not found."}, status=404)


router = SimpleRouter()
router.register("users", ApiUserViewSet, basename="api-user")
router.register("tokens", ApiTokenViewSet, basename="api-token")
router.register("audit", AuditEventViewSet, basename="api-audit")
