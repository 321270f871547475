"""ASGI entry point: ``kodify_site.asgi:application``.

Production: ``python -m kodify_site.serve --workers N`` (uvicorn with production's
flags).  Development: daphne (``manage.py runserver``) works too.

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

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import re_path  # noqa: E402
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware  # noqa: E402

from gateway.routing import http_urlpatterns  # noqa: E402
from journal.routing import websocket_application  # noqa: E402
from kodify_site.body_limit import BodyLimit  # noqa: E402
from kodify_site.lifespan import Lifespan  # noqa: E402
from kodify_site.startup import prepare_server  # noqa: E402

prepare_server()

application = ProtocolTypeRouter(
    {
        # Channels routes ASGI apps with Django's path helpers, which are typed for views.
        # Django reads a whole body before its views run: BodyLimit bounds it first.
        "http": URLRouter([*http_urlpatterns, re_path(r"", BodyLimit(django_application))]),  # type: ignore[arg-type]
        # The console's live journal: the console's session login, its own pages only.
        "websocket": websocket_application(),
        "lifespan": Lifespan(),
    }
)
if settings.KODIFY_TRUSTED_PROXIES:
    # Only these peers' X-Forwarded-For and X-Forwarded-Proto are believed (uvicorn runs
    # with --no-proxy-headers); with none configured, no forwarded header is.
    application = ProxyHeadersMiddleware(
        application, trusted_hosts=list(settings.KODIFY_TRUSTED_PROXIES)
    )

# A full collection walks every live object; the start-up heap (Django, the apps) is
# most of them and lives for ever. Freezing it keeps those walks from pausing requests
# for tens of milliseconds under load (seen as p99 spikes in `make bench`).
gc.freeze()
