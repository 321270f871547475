"""The "Connect your IDE" console page: configuration that the clients can read, for the
address the console is reached at, and never a real token."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from typing import Any

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.roles import ADMINISTRATORS, AUDITORS
from gateway import connect
from gateway.actions import ACTIONS
from gateway.models import UpstreamServer
from journal.tests.entries import console_account

pytestmark = pytest.mark.django_db

BASE = "https://kodify.example.com"


@pytest.fixture(autouse=True)
def fast_hashes(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_the_continue_config_is_continue_yaml_for_the_server_and_its_actions() -> None:
    config = yaml.safe_load(connect.continue_config(BASE, "qwen-coder"))
    assert (config["name"], config["schema"]) == ("Kodify", "v1")
    assert isinstance(config["version"], str)  # Continue's schema takes a string
    models = config["models"]
    for entry in models:
        assert set(entry) == {"name", "provider", "model", "apiBase", "apiKey", "roles"}
        assert entry["provider"] == "openai"
        assert entry["apiBase"] == f"{BASE}/v1"
        assert entry["apiKey"] == "YOUR_TOKEN"
    assert len({entry["name"] for entry in models}) == len(models)  # names are unique
    by_model = [(entry["model"], entry["roles"]) for entry in models]
    assert by_model[:2] == [
        ("qwen-coder", ["chat", "edit", "apply"]),
        ("qwen-coder", ["autocomplete"]),
    ]
    assert by_model[2:] == [(f"qwen-coder:{action}", ["chat"]) for action in ACTIONS]


def test_a_model_name_with_colons_and_a_base_with_a_slash_stay_valid_yaml() -> None:
    config = yaml.safe_load(connect.continue_config(BASE + "/", "llama3:8b"))
    assert config["models"][0]["model"] == "llama3:8b"
    assert config["models"][0]["apiBase"] == f"{BASE}/v1"
    assert config["models"][-1]["model"] == "llama3:8b:explain"


def test_the_tabby_agent_config_is_toml_with_the_server_root_and_the_token() -> None:
    config = tomllib.loads(connect.tabby_agent_config(BASE + "/"))
    assert config == {"server": {"endpoint": BASE, "token": "YOUR_TOKEN"}}


def test_the_curl_examples_are_shell_lines_with_the_url_header_and_json_body() -> None:
    chat = shlex.split(connect.curl_chat(BASE, "qwen-coder").replace("\\\n", " "))
    assert chat[:2] == ["curl", f"{BASE}/v1/chat/completions"]
    assert chat[2:4] == ["-H", "Authorization: Bearer YOUR_TOKEN"]
    body = json.loads(chat[chat.index("-d") + 1])
    assert body["model"] == "qwen-coder" and body["messages"][0]["role"] == "user"

    action = shlex.split(connect.curl_action(BASE, "qwen-coder").replace("\\\n", " "))
    assert action[:2] == ["curl", f"{BASE}/v1/actions/explain"]
    assert "Authorization: Bearer YOUR_TOKEN" in action
    body = json.loads(action[action.index("-d") + 1])
    assert body["language"] == "python" and body["code"].strip()


def test_the_python_snippet_compiles_and_names_the_base_and_token() -> None:
    snippet = connect.openai_python(BASE, "qwen-coder")
    compile(snippet, "<snippet>", "exec")
    assert f'openai.OpenAI(base_url="{BASE}/v1", api_key="YOUR_TOKEN")' in snippet


def test_anonymous_visitors_are_sent_to_the_login() -> None:
    url = reverse("admin:connect")
    assert url == "/admin/connect/"
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_a_non_staff_account_is_sent_to_the_login() -> None:
    account = get_user_model().objects.create_user("plain", password="x")
    client = Client()
    client.force_login(account)
    response = client.get(reverse("admin:connect"))
    assert response.status_code == 302


@pytest.mark.parametrize("role", [AUDITORS, ADMINISTRATORS])
def test_staff_see_the_three_clients_for_this_server_and_its_model(
    role: str, settings: Any
) -> None:
    settings.MTSAI_AUTH = True
    UpstreamServer.objects.create(
        url="http://10.0.0.1:8000",
        name="gpu-1",
        healthy=True,
        models=[{"id": "qwen-coder", "max_model_len": 4096}],
    )
    api_user = services.create_user(username="ada")
    _, plain = services.issue_token(user=api_user, name="laptop")
    client = Client()
    client.force_login(console_account("someone", role))
    response = client.get(reverse("admin:connect"))
    assert response.status_code == 200
    html = response.content.decode()
    for section in ("connect-continue", "connect-tabby", "connect-openai"):
        assert f'id="{section}"' in html
    assert re.search(r"<title>\s*Connect your IDE \| Kodify console</title>", html)
    assert "qwen-coder:explain" in html and 'id="connect-model">qwen-coder<' in html
    assert "apiBase: http://testserver/v1" in html
    assert "endpoint = &quot;http://testserver&quot;" in html
    assert "curl http://testserver/v1/chat/completions" in html
    assert "http://testserver/v1/actions/explain" in html
    assert "YOUR_TOKEN" in html and plain not in html
    assert "navigator.clipboard.writeText" in html
    assert reverse("admin:accounts_apiuser_changelist") in html


def test_no_model_served_puts_a_placeholder_and_never_the_shared_token(settings: Any) -> None:
    settings.MTSAI_AUTH, settings.VLLM_API_KEY = False, "s3cret-shared-token"
    client = Client()
    client.force_login(console_account("root", ADMINISTRATORS, is_superuser=True))
    html = client.get(reverse("admin:connect")).content.decode()
    assert 'id="connect-no-model"' in html
    assert "model: MODEL" in html and "MODEL:docs" in html
    assert "s3cret-shared-token" not in html
    assert "VLLM_API_KEY" in html  # says which token to ask for


def test_the_blocks_are_escaped() -> None:
    UpstreamServer.objects.create(
        url="http://10.0.0.9:8000", name="odd", healthy=True, models=[{"id": "<b>x</b>"}]
    )
    client = Client()
    client.force_login(console_account("root", ADMINISTRATORS, is_superuser=True))
    html = client.get(reverse("admin:connect")).content.decode()
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
