"""WSGI entry point, for the console alone behind a WSGI server (the API needs ASGI)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kodify_site.settings")

application = get_wsgi_application()
