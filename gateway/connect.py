"""The console's "Connect your IDE" page: client configuration to paste, for this server.

People set up their editors from a wiki page that goes stale as soon as a model or the
server's address changes; here the configuration is written from what the server serves
now and the address the console is reached at, so a copy-paste is all it takes.

The generators are pure functions of the base URL and the model name, so that tests can
parse what they write (YAML, TOML) without a request.  The page never shows a token:
``YOUR_TOKEN`` stands in, and a token is issued (and shown once) on a user's page.

The formats follow the clients' own sources: Continue's config.yaml schema
(continuedev/continue) and tabby-agent's config.toml (TabbyML/tabby).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import yaml
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.auth import auth_mode
from gateway.actions import ACTIONS
from gateway.selectors import serving_upstreams

TOKEN_PLACEHOLDER = "YOUR_TOKEN"  # noqa: S105 - the placeholder the user replaces
MODEL_PLACEHOLDER = "MODEL"


class _IndentedDumper(yaml.SafeDumper):
    """Lists indented under their key, as Continue's documentation writes them, so a
    pasted file looks like the examples people compare it with."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def api_base(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/v1"


def continue_config(base_url: str, model: str, token: str = TOKEN_PLACEHOLDER) -> str:
    """``~/.continue/config.yaml`` (Continue 1.x): the model for chat, edit and apply,
    the same model for autocomplete, and one chat model per assistant action.

    An action model (``<model>:<action>``) is how a plain OpenAI client reaches the
    server's own prompt for that action, so each gets a place in Continue's model picker.
    """

    def entry(name: str, served_as: str, roles: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "provider": "openai",
            "model": served_as,
            "apiBase": api_base(base_url),
            "apiKey": token,
            "roles": roles,
        }

    models = [
        entry(f"{model} (Kodify)", model, ["chat", "edit", "apply"]),
        entry(f"{model} autocomplete (Kodify)", model, ["autocomplete"]),
    ]
    models += [
        entry(f"{model}:{action} (Kodify)", f"{model}:{action}", ["chat"]) for action in ACTIONS
    ]
    config = {"name": "Kodify", "version": "1.0.0", "schema": "v1", "models": models}
    body = yaml.dump(
        config,
        Dumper=_IndentedDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
    )
    return f"# ~/.continue/config.yaml: replace {TOKEN_PLACEHOLDER} with your token.\n{body}"


def tabby_agent_config(base_url: str, token: str = TOKEN_PLACEHOLDER) -> str:
    """``~/.tabby-client/agent/config.toml``: the endpoint is the server's root, not
    ``/v1``, because tabby-agent adds ``/v1/health`` and ``/v1/completions`` itself."""
    # A JSON string is a valid TOML basic string (same quotes and escapes).
    return (
        f"# ~/.tabby-client/agent/config.toml: replace {TOKEN_PLACEHOLDER} with your token.\n"
        "[server]\n"
        f"endpoint = {json.dumps(base_url.rstrip('/'))}\n"
        f"token = {json.dumps(token)}\n"
    )


def _curl(url: str, body: dict[str, Any], token: str) -> str:
    return " \\\n  ".join(
        [
            f"curl {shlex.quote(url)}",
            f"-H {shlex.quote(f'Authorization: Bearer {token}')}",
            f"-H {shlex.quote('Content-Type: application/json')}",
            f"-d {shlex.quote(json.dumps(body))}",
        ]
    )


def curl_chat(base_url: str, model: str, token: str = TOKEN_PLACEHOLDER) -> str:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Write hello world in Python."}],
    }
    return _curl(f"{api_base(base_url)}/chat/completions", body, token)


def curl_action(
    base_url: str, model: str, action: str = "explain", token: str = TOKEN_PLACEHOLDER
) -> str:
    """The action endpoint takes the code, not messages: the server owns the prompt."""
    body = {"model": model, "code": "def add(a, b):\n    return a + b", "language": "python"}
    return _curl(f"{api_base(base_url)}/actions/{action}", body, token)


def _py(text: str) -> str:
    """A Python string literal in double quotes (a JSON string is one)."""
    return json.dumps(text)


def openai_python(base_url: str, model: str, token: str = TOKEN_PLACEHOLDER) -> str:
    return (
        "import openai\n\n"
        f"client = openai.OpenAI(base_url={_py(api_base(base_url))}, api_key={_py(token)})\n"
        "reply = client.chat.completions.create(\n"
        f"    model={_py(model)},\n"
        '    messages=[{"role": "user", "content": "Write hello world in Python."}],\n'
        ")\n"
        "print(reply.choices[0].message.content)\n"
    )


def connect_view(request: HttpRequest) -> HttpResponse:
    """The admin site wraps it (``admin_view``): staff only, the admin's login."""
    base_url = request.build_absolute_uri("/").rstrip("/")
    served = list(serving_upstreams())
    model = served[0] if served else MODEL_PLACEHOLDER
    blocks = {
        "continue": continue_config(base_url, model),
        "tabby": tabby_agent_config(base_url),
        "curl_chat": curl_chat(base_url, model),
        "curl_action": curl_action(base_url, model),
        "python": openai_python(base_url, model),
    }
    context = {
        **admin.site.each_context(request),
        "title": "Connect your IDE",
        "base_url": base_url,
        "api_base": api_base(base_url),
        "token_placeholder": TOKEN_PLACEHOLDER,
        "model": model,
        "served": served,
        "actions": ACTIONS,
        "blocks": blocks,
        "auth_mode": str(auth_mode()),
    }
    return render(request, "admin/connect.html", context)
