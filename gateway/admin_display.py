"""How the console shows an upstream's health, source and models, and a model's
automatic preprocessing."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from gateway.models import SOURCE_CONFIG, ServedModel, UpstreamServer


def _age(when: datetime | None) -> str:
    if when is None:
        return "never"
    seconds = max(0, int((timezone.now() - when).total_seconds()))
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min ago"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} days ago"


def health_badge(upstream: UpstreamServer) -> SafeString:
    if upstream.healthy is None:
        state, colour = "not checked yet", "#888"
    elif upstream.healthy:
        state, colour = "up", "#2e7d32"
    else:
        state, colour = "down", "#c62828"
    if not upstream.enabled:
        state += " (disabled)"
    badge = format_html(
        '<strong class="kodify-health" style="color: {}">● {}</strong>', colour, state
    )
    if upstream.last_check is None:
        return format_html('<span class="kodify-cell">{}</span>', badge)
    error = format_html("<br><small>{}</small>", upstream.last_error) if upstream.last_error else ""
    # One element: on a phone the theme draws each cell as a label and one value.
    return format_html(
        '<span class="kodify-cell">{} <small title="{}">checked {}</small>{}</span>',
        badge,
        upstream.last_check.isoformat(),
        _age(upstream.last_check),
        error,
    )


def source_badge(source: str) -> SafeString:
    if source == SOURCE_CONFIG:
        return format_html(
            '<span title="{}">config.yml</span>', "Follows config.yml at every start"
        )
    return format_html(
        '<strong title="{}">console</strong>', "Edited here; config.yml no longer changes it"
    )


def model_cards(upstream: UpstreamServer) -> SafeString:
    cards = upstream.model_cards
    if not cards:
        return format_html("{}", "none known")
    listed = format_html_join(
        ", ",
        "{}{}",
        (
            (name, f" ({card['max_model_len']} tokens)" if "max_model_len" in card else "")
            for name, card in cards.items()
        ),
    )
    return format_html('<span class="kodify-cell">{}</span>', listed)


def automatic_choice(model: ServedModel, root: str) -> str:
    from gateway.fim.profiles import ProfileError, get_profiles

    try:
        return get_profiles().for_model(model.name, root=root).name
    except ProfileError:
        return "?"
