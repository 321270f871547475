"""System checks for config.yml and the upstream list."""

from typing import Any

from django.core.checks import Error, Warning, register

from gateway.config_file import ConfigError


@register()
def upstream_configuration(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    from gateway.config_file import gateway_config

    try:
        config = gateway_config()
    except ConfigError as exc:
        return [Error(str(exc), id="kodify.E101")]
    from gateway.fim.profiles import ProfileError, get_profiles

    try:
        get_profiles()
    except ProfileError as exc:
        return [Error(f"Autocompletion config: {exc}", id="kodify.E102")]
    if not config.upstreams:
        return [
            Warning(
                "No upstream in config.yml or KODIFY_UPSTREAMS: requests will get 503 "
                "until one is named there or added in the console (Upstreams).",
                id="kodify.W101",
            )
        ]
    return []
