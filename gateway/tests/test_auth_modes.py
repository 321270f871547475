"""Dummy, one-token and per-user modes at the gateway, and upstream keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer

pytestmark = pytest.mark.smoke

CHAT = "/v1/chat/completions"
BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
KEY = "one-shared-token-0123456789"


def post(url: str, headers: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(url + CHAT, json=BODY, headers=headers or {}, timeout=30)


def test_dummy_mode_needs_no_token(kodify_server: Any, fake_upstream: FakeUpstreamServer) -> None:
    server = kodify_server({"KODIFY_UPSTREAMS": fake_upstream.url})
    assert post(server.url).status_code == 200
    assert post(server.url, {"Authorization": "Bearer whatever"}).status_code == 200


@pytest.fixture(scope="module")
def one_token_fake() -> Any:
    # vLLM reads the same VLLM_API_KEY from the shared env file and enforces it.
    server = FakeUpstreamServer(FakeUpstream(api_key=KEY)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def one_token_server(module_kodify_server: Any, one_token_fake: FakeUpstreamServer) -> Any:
    return module_kodify_server({"KODIFY_UPSTREAMS": one_token_fake.url, "VLLM_API_KEY": KEY})


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": f"Basic {KEY}"}, "invalid_api_key"),
        ({"Authorization": "Bearer"}, "invalid_api_key"),
        ({"Authorization": "Bearer wrong-token"}, "invalid_api_key"),
        ({"Authorization": f"Bearer {KEY}x"}, "invalid_api_key"),
        ({"Authorization": "Bearer \u00e9\u00e9".encode("latin-1")}, "invalid_api_key"),
    ],
)
def test_one_token_mode_refuses_anything_but_the_key(
    one_token_server: Any, headers: dict[str, Any], code: str
) -> None:
    response = post(one_token_server.url, headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["code"] == code
    assert KEY not in response.text


def test_one_token_mode_accepts_the_key_and_forwards_it_upstream(
    one_token_server: Any, one_token_fake: FakeUpstreamServer
) -> None:
    for scheme in ("Bearer", "bearer"):
        response = post(one_token_server.url, {"Authorization": f"{scheme} {KEY}"})
        assert response.status_code == 200, response.text
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in one_token_fake.fake.records)


def test_one_token_mode_protects_models_but_not_health(one_token_server: Any) -> None:
    assert httpx.get(one_token_server.url + "/v1/models").status_code == 401
    ok = httpx.get(one_token_server.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200
    health = httpx.get(one_token_server.url + "/health")
    assert health.status_code == 200
    assert health.json()["auth_mode"] == "one-token"


def test_per_user_mode_refuses_unknown_tokens(
    kodify_server: Any, fake_upstream: FakeUpstreamServer
) -> None:
    server = kodify_server(
        {
            "KODIFY_UPSTREAMS": fake_upstream.url,
            "MTSAI_AUTH": "true",
            "AUTH_TYPE": "DB",
            "VLLM_API_KEY": KEY,
        }
    )
    # In per-user mode the shared key only serves the upstream.
    assert post(server.url, {"Authorization": f"Bearer {KEY}"}).status_code == 401
    assert post(server.url).status_code == 401
    assert "W002" in server.log()


def test_upstream_key_order_config_then_kodify_then_vllm(
    kodify_server: Any, tmp_path: Path
) -> None:
    own = FakeUpstreamServer(FakeUpstream(api_key="own-key")).start()
    shared = FakeUpstreamServer(FakeUpstream(api_key="upstream-key")).start()
    try:
        config = tmp_path / "config.yml"
        config.write_text(
            f"upstreams:\n  {own.url}:\n    api_key: own-key\n  {shared.url}:\n"
            "tabby:\n  model_name: fake-model\n"
        )
        server = kodify_server(
            {"KODIFY_CONFIG": str(config), "KODIFY_UPSTREAM_API_KEY": "upstream-key"}
        )
        health = httpx.get(server.url + "/health").json()
        assert [u["source"] for u in health["upstreams"]] == [str(config)] * 2
        for _ in range(4):  # both replicas serve fake-model: both get traffic
            assert post(server.url).status_code == 200
        assert own.fake.records and shared.fake.records
        assert {r.headers["Authorization"] for r in own.fake.records} == {"Bearer own-key"}
        assert {r.headers["Authorization"] for r in shared.fake.records} == {"Bearer upstream-key"}
    finally:
        own.stop()
        shared.stop()


def test_an_upstream_refusing_kodifys_key_is_the_operators_problem(
    kodify_server: Any,
) -> None:
    locked = FakeUpstreamServer(FakeUpstream(api_key=KEY)).start()
    try:
        server = kodify_server(
            {"KODIFY_UPSTREAMS": locked.url, "KODIFY_UPSTREAM_API_KEY": "stale-key"}
        )
        response = post(server.url)
        health = httpx.get(server.url + "/health").json()
    finally:
        locked.stop()
    # Not a 401: the caller's credentials were fine.
    assert response.status_code in (502, 503)
    assert "key" in response.json()["error"]["message"]
    [upstream] = health["upstreams"]
    assert upstream["healthy"] is False
    assert "API key" in upstream["error"]
