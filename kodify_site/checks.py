"""System checks for the settings: a bad or contradictory environment stops the start.

Each message is one sentence an administrator can act on.  ``asgi.py`` runs these checks
before serving, and Django runs them before ``migrate`` and ``kodify_migrate``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register()
def environment_values(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    messages: list[Any] = [Error(problem, id="kodify.E001") for problem in settings.ENV_PROBLEMS]
    messages += [Warning(text, id="kodify.W001") for text in settings.ENV_WARNINGS]
    return messages


@register()
def authentication_mode(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    if settings.MTSAI_AUTH and settings.AUTH_TYPE != "DB":
        return [
            Error(
                "MTSAI_AUTH=true asks for per-user tokens, which need AUTH_TYPE=DB "
                f"(AUTH_TYPE is {settings.AUTH_TYPE}): set AUTH_TYPE=DB, or MTSAI_AUTH=false.",
                id="kodify.E002",
            )
        ]
    if not settings.MTSAI_AUTH and settings.AUTH_TYPE == "DB":
        return [
            Error(
                "AUTH_TYPE=DB (per-user tokens) needs MTSAI_AUTH=true: set MTSAI_AUTH=true, "
                "or AUTH_TYPE=NO for dummy or one-token mode.",
                id="kodify.E003",
            )
        ]
    if settings.MTSAI_AUTH and settings.VLLM_API_KEY:
        return [
            Warning(
                "MTSAI_AUTH=true is per-user mode: VLLM_API_KEY is not accepted from "
                "clients and only serves as the key Kodify sends to the upstreams.",
                id="kodify.W002",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def production_secret_key(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    if settings.USING_DEVELOPMENT_SECRET_KEY:
        return [
            Error(
                "KODIFY_SECRET_KEY is not set: production needs a secret key of its own, "
                "the same on every replica (50 or more random characters).",
                id="kodify.E010",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def production_debug(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    if settings.DEBUG:
        return [Error("KODIFY_DEBUG must be off in production.", id="kodify.E011")]
    return []


@register(Tags.security, deploy=True)
def production_hosts(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    if "*" in settings.ALLOWED_HOSTS:
        return [
            Warning(
                "KODIFY_ALLOWED_HOSTS is '*': name the host names browsers use for the "
                "console, or a forged Host header ends up in the links it and the "
                "management API give (the IDE API answers under any name regardless).",
                id="kodify.W012",
            )
        ]
    return []
