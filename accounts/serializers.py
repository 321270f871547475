"""Shapes of the management API. Writes go through :mod:`accounts.services`.

No serializer carries a token's ``digest``: the plain token is returned once, by
:class:`IssuedTokenSerializer`, and nothing that could check a guess against it ever is.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone
from rest_framework import serializers
from rest_framework.fields import get_error_detail

from accounts import services
from accounts.models import ApiToken, ApiUser, AuditEvent


def _django_errors(exc: DjangoValidationError) -> serializers.ValidationError:
    """A model's ``full_clean`` errors as a 400 with the same field names."""
    return serializers.ValidationError(get_error_detail(exc))


class ApiUserSerializer(serializers.ModelSerializer[ApiUser]):
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        help_text="Model names this user may call; empty: all.",
    )

    class Meta:
        model = ApiUser
        fields = ("id", *ApiUser.EDITABLE_FIELDS, "created_at", "updated_at")
        read_only_fields = ("id", "created_at", "updated_at")
        # Refused rather than trimmed (accounts.usernames): "alice\n" is a 400, not "alice".
        extra_kwargs = {"username": {"trim_whitespace": False}}

    def create(self, validated_data: dict[str, Any]) -> ApiUser:
        actor = self.context["actor"]
        try:
            return services.create_user(actor=actor, **validated_data)
        except DjangoValidationError as exc:
            raise _django_errors(exc) from exc

    def update(self, instance: ApiUser, validated_data: dict[str, Any]) -> ApiUser:
        actor = self.context["actor"]
        active = validated_data.pop("is_active", None)
        try:
            # One change, one outcome: a refused field leaves the user's state untouched.
            with transaction.atomic():
                user = services.update_user(user=instance, actor=actor, **validated_data)
                if active is not None:
                    user = services.set_user_active(user=user, active=active, actor=actor)
        except DjangoValidationError as exc:
            instance.refresh_from_db()
            raise _django_errors(exc) from exc
        return user


class ApiTokenSerializer(serializers.ModelSerializer[ApiToken]):
    username = serializers.CharField(source="user.username", read_only=True)
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    revoked_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    state = serializers.ChoiceField(
        choices=("active", "expired", "revoked", "user disabled"), read_only=True
    )

    class Meta:
        model = ApiToken
        fields: tuple[str, ...] = (
            "id",
            "user",
            "username",
            "name",
            "comment",
            "prefix",
            "state",
            "created_at",
            "created_by",
            "expires_at",
            "revoked_at",
            "revoked_by",
            "last_used_at",
            "last_used_user_agent",
        )
        read_only_fields: tuple[str, ...] = fields


class IssueTokenSerializer(serializers.ModelSerializer[ApiToken]):
    """``POST /api/tokens/``: the request. The answer is :class:`IssuedTokenSerializer`."""

    class Meta:
        model = ApiToken
        fields = ("user", "name", "comment", "expires_at")
        extra_kwargs = {"expires_at": {"allow_null": True, "required": False}}

    def validate_expires_at(self, value: Any) -> Any:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("The expiry date must be in the future.")
        return value

    def create(self, validated_data: dict[str, Any]) -> ApiToken:
        try:
            token, plain = services.issue_token(actor=self.context["actor"], **validated_data)
        except ValueError as exc:  # expiry passed between validation and issue
            raise serializers.ValidationError({"expires_at": [str(exc)]}) from exc
        token.plain = plain  # type: ignore[attr-defined]  # for IssuedTokenSerializer only
        return token


class IssuedTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(
        source="plain",
        read_only=True,
        help_text="The token itself. Shown only in this answer: the server keeps a hash.",
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = (*ApiTokenSerializer.Meta.fields, "token")
        read_only_fields = fields


class TokenExpirySerializer(serializers.ModelSerializer[ApiToken]):
    """``PATCH /api/tokens/{id}/``: only the expiry changes, to a future date or none, and
    only while the token is live (:func:`accounts.services.expiry_refusal`)."""

    class Meta:
        model = ApiToken
        fields = ("expires_at",)
        extra_kwargs = {"expires_at": {"allow_null": True, "required": True}}

    def validate_expires_at(self, value: Any) -> Any:
        if self.instance is not None:
            refusal = services.expiry_refusal(self.instance, value)
            if refusal is not None:
                raise serializers.ValidationError(refusal)
        return value

    def update(self, instance: ApiToken, validated_data: dict[str, Any]) -> ApiToken:
        try:
            return services.set_token_expiry(
                token=instance,
                expires_at=validated_data["expires_at"],
                actor=self.context["actor"],
            )
        except DjangoValidationError as exc:  # revoked or expired since validation
            raise _django_errors(exc) from exc


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    class Meta:
        model = AuditEvent
        fields = (
            "id",
            "at",
            "actor",
            "actor_name",
            "action",
            "target_type",
            "target_id",
            "target",
            "details",
        )
        read_only_fields = fields
