"""What Tabby clients call on start: ``/v1/health`` and ``/v1beta/server_setting``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer

pytestmark = pytest.mark.smoke

KEY = "tabby-test-key"


def test_tabby_health_names_the_completion_model_and_a_device(
    kodify_server: Any, tmp_path: Path
) -> None:
    # vLLM's CPU builds say so in their version (the fake's default, a plain one, does not).
    upstream = FakeUpstreamServer(
        FakeUpstream(models=("chat-70b", "coder-7b"), version="0.32.0+cpu")
    ).start()
    try:
        config = tmp_path / "config.yml"
        config.write_text(f"upstreams:\n  {upstream.url}:\ntabby:\n  model_name: coder-7b\n")
        server = kodify_server({"KODIFY_CONFIG": str(config), "VLLM_API_KEY": KEY})
        with httpx.Client(base_url=server.url, timeout=30) as client:
            refused = client.get("/v1/health")
            assert refused.status_code == 401  # as Tabby's server: a wrong token shows at start
            assert refused.json()["error"]["code"]
            health = client.get("/v1/health", headers={"Authorization": f"Bearer {KEY}"}).json()
            assert health["model"] == "coder-7b"  # tabby.model_name, not the first model
            assert health["chat_model"] == "chat-70b"
            assert health["device"] == "cpu"  # not a GPU it does not have
            assert health["arch"] and health["cpu_count"] >= 1
            assert health["version"]["git_describe"].startswith("kodify-")
            assert (
                client.delete("/v1/health", headers={"Authorization": f"Bearer {KEY}"}).status_code
                == 405
            )
            setting = client.get(
                "/v1beta/server_setting", headers={"Authorization": f"Bearer {KEY}"}
            )
            assert setting.json() == {"disable_client_side_telemetry": False}
    finally:
        upstream.stop()
