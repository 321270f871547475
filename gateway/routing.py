"""HTTP routes of the public API, matched before Django's URL resolver (see asgi.py).

A trailing slash is tolerated: some clients add one to every path.
"""

from django.urls import re_path

from gateway import consumers
from gateway.metrics_endpoint import MetricsConsumer

http_urlpatterns = [
    re_path(r"^health/?$", consumers.HealthConsumer.as_asgi()),
    re_path(r"^metrics/?$", MetricsConsumer.as_asgi()),
    re_path(r"^v1/chat/completions/?$", consumers.ChatCompletionsConsumer.as_asgi()),
    re_path(r"^v1/completions/?$", consumers.CompletionsConsumer.as_asgi()),
    re_path(r"^v1/actions/(?P<action>[^/]*)/?$", consumers.ActionConsumer.as_asgi()),
    re_path(r"^v1/models/?$", consumers.ModelsConsumer.as_asgi()),
    re_path(r"^v1/openapi\.json$", consumers.OpenAPIConsumer.as_asgi()),
    re_path(r"^v1/health/?$", consumers.TabbyHealthConsumer.as_asgi()),
    re_path(r"^v1/events/?$", consumers.EventsConsumer.as_asgi()),
    re_path(r"^v1beta/server_setting/?$", consumers.ServerSettingConsumer.as_asgi()),
    # Tabby clients before 0.20 send chat here; it is OpenAI's chat API all the same.
    re_path(r"^v1beta/chat/completions/?$", consumers.ChatCompletionsConsumer.as_asgi()),
    # vLLM's tokenizer, at vLLM's paths and under /v1 with the rest of the API.
    re_path(r"^(?:v1/)?tokenize/?$", consumers.TokenizeConsumer.as_asgi()),
    re_path(r"^(?:v1/)?detokenize/?$", consumers.DetokenizeConsumer.as_asgi()),
    # The rest of the API's prefixes: an API client gets JSON, even for a typo.
    re_path(r"^(?:v1|v1beta|tokenize|detokenize)(?:/|$)", consumers.NotFoundConsumer.as_asgi()),
]
