"""WebSocket routes (see asgi.py): the journal's live view."""

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.urls import re_path

from journal.live import ConsoleOriginValidator, JournalLiveConsumer

websocket_urlpatterns = [
    re_path(r"^ws/journal/$", JournalLiveConsumer.as_asgi()),
]


def websocket_application() -> Any:
    """The WebSocket side of the server: pages of the console only, its session login."""
    return ConsoleOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
