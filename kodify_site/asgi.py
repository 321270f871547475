"""ASGI entry point: ``kodify_site.asgi:application``.

Production: ``uvicorn kodify_site.asgi:application --loop uvloop --http httptools
--workers N``.  Development: daphne (``manage.py runserver``) works too.

HTTP goes to the public API's consumers first (``gateway.routing``), everything else to
Django (console, management API); WebSockets go to the journal's live view
(``journal.routing``).  Before serving, each worker checks the settings, migrates when
needed and, with WAIT_VLLM, waits for the first upstream.
"""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kodify_site.settings")
django_application = get_asgi_application()  # sets Django up before any model import

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from gateway.routing import http_urlpatterns  # noqa: E402
from journal.routing import websocket_urlpatterns  # noqa: E402
from kodify_site.lifespan import Lifespan  # noqa: E402
from kodify_site.startup import prepare_server  # noqa: E402

prepare_server()

application = ProtocolTypeRouter(
    {
        # Channels routes ASGI apps with Django's path helpers, which are typed for views.
        "http": URLRouter([*http_urlpatterns, re_path(r"", django_application)]),  # type: ignore[arg-type]
        # The console's live journal: the admin's session login; pages of ALLOWED_HOSTS only.
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
        "lifespan": Lifespan(),
    }
)

# A full collection walks every live object; the start-up heap (Django, the apps) is
# most of them and lives for ever. Freezing it keeps those walks from pausing requests
# for tens of milliseconds under load (seen as p99 spikes in `make bench`).
gc.freeze()
