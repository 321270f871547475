"""The console's look (django-unfold): Kodify's name and colour, and its side bar.

It reads no variable.  The side bar's groups are built for each request by
:func:`kodify_site.navigation.sidebar`, which leaves out what the user may not open.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LOGIN_REDIRECT_URL", "UNFOLD"]

# Kodify's petrol blue (the icon's #264b5d is about 700), as unfold's scale of shades.
_PETROL = {
    "50": "oklch(97.5% .012 225)",
    "100": "oklch(94.5% .025 225)",
    "200": "oklch(89% .048 225)",
    "300": "oklch(81% .075 225)",
    "400": "oklch(69% .095 225)",
    "500": "oklch(58% .1 225)",
    "600": "oklch(49% .09 226)",
    "700": "oklch(41% .07 228)",
    "800": "oklch(35% .058 230)",
    "900": "oklch(29% .048 232)",
    "950": "oklch(22% .04 235)",
}

UNFOLD: dict[str, Any] = {
    "SITE_TITLE": "Kodify console",
    "SITE_HEADER": "Kodify",
    "SITE_SUBHEADER": "AI coding-assistant gateway",
    # The icon is added by templates/admin/base_site.html, as on the error pages.
    "SITE_ICON": "kodify_site.navigation.site_icon",
    # There is no site beside the console: no "View site" link.
    "SITE_URL": None,
    "SHOW_VIEW_ON_SITE": False,
    "BORDER_RADIUS": "6px",
    "COLORS": {"primary": _PETROL},
    "SIDEBAR": {
        "show_search": False,
        "command_search": False,
        "show_all_applications": False,
        "navigation": "kodify_site.navigation.sidebar",
    },
}

# unfold's login form has no "next" field: a login opened directly (/admin/login/) would
# otherwise go to Django's default, /accounts/profile/, which does not exist.
LOGIN_REDIRECT_URL = "/admin/"
