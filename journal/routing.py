"""WebSocket routes (see asgi.py): the journal's live view."""

from django.urls import re_path

from journal.live import JournalLiveConsumer

websocket_urlpatterns = [
    re_path(r"^ws/journal/$", JournalLiveConsumer.as_asgi()),
]
