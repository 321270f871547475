"""How a worker's upstream table takes the database's word (console edits, health checks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings

from gateway.config_file import UpstreamSpec
from gateway.snapshot import GatewaySnapshot, UpstreamRow
from gateway.upstreams import UpstreamTable

pytestmark = pytest.mark.smoke

A, B, C = "http://a:8000", "http://b:8000", "http://c:8000"
CARD = {"id": "coder", "object": "model", "created": 0, "owned_by": "vllm"}
# The clock is frozen here wherever a worker's own observations get a time stamp.
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def table() -> UpstreamTable:
    return UpstreamTable(
        [UpstreamSpec(url=A, weight=1), UpstreamSpec(url=B, weight=1)],
        default_api_key="env-key",
        tabby_model_name="from-config",
    )


def checked(url: str, **fields: object) -> UpstreamRow:
    values: dict[str, object] = {
        "healthy": True,
        "last_check": NOW,
        "models": {"coder": CARD},
        "source": "config.yml",
    }
    values.update(fields)
    return UpstreamRow(url=url, **values)  # type: ignore[arg-type]


def test_config_yml_upstreams_stay_the_files_unless_edited_in_the_console() -> None:
    upstreams = table()
    upstreams.apply_snapshot(
        GatewaySnapshot(
            upstreams=(
                checked(A, weight=9.0),  # a mirror of config.yml: the file's weight stands
                checked(B, source="console", weight=3.0, api_key="console-key"),
                checked(C, source="console", name="added in the console"),
                checked("http://elsewhere:8000"),  # another server's config.yml
            )
        )
    )
    by_url = {u.url: u for u in upstreams.upstreams}
    assert list(by_url) == [A, B, C]
    assert by_url[A].weight == 1
    assert by_url[B].weight == 3.0 and by_url[B].auth_headers["Authorization"].endswith(
        "console-key"
    )
    assert by_url[A].auth_headers["Authorization"] == "Bearer env-key"
    assert by_url[C].spec.name == "added in the console"
    assert {u.url for u in upstreams._by_model["coder"]} == {A, B, C}


def test_a_disabled_upstream_leaves_the_routing_and_keeps_what_it_learnt() -> None:
    upstreams = table()
    upstreams.apply_snapshot(GatewaySnapshot(upstreams=(checked(A), checked(B))))
    first = upstreams.upstreams[0]
    first.outstanding = 2
    upstreams.apply_snapshot(
        GatewaySnapshot(upstreams=(checked(A, source="console", enabled=False), checked(B)))
    )
    assert upstreams.upstreams[0] is first and first.outstanding == 2
    assert [u.url for u in upstreams._by_model["coder"]] == [B]


@time_machine.travel(NOW, tick=False)
def test_only_newer_health_checks_change_a_workers_view() -> None:
    upstreams = table()
    upstreams.apply_snapshot(GatewaySnapshot(upstreams=(checked(A), checked(B))))
    first = upstreams.upstreams[0]
    with override_settings(KODIFY_UPSTREAM_COOLDOWN=5.0):
        first.mark_down("connection refused")  # this worker saw it fail just now
    failed_at = first.last_check
    assert failed_at is not None
    older = checked(A, last_check=failed_at - timedelta(seconds=5))
    upstreams.apply_snapshot(GatewaySnapshot(upstreams=(older, checked(B))))
    assert first.healthy is False
    newer = checked(A, last_check=failed_at + timedelta(seconds=5))
    upstreams.apply_snapshot(GatewaySnapshot(upstreams=(newer, checked(B))))
    assert first.healthy is True and first.down_until == 0.0
    down = checked(A, healthy=False, last_error="HTTP 500", last_check=NOW + timedelta(days=1))
    upstreams.apply_snapshot(GatewaySnapshot(upstreams=(down, checked(B))))
    assert first.healthy is False and first.last_error == "HTTP 500"


def test_console_settings_override_the_environment_and_config_yml() -> None:
    upstreams = table()
    with override_settings(MAX_N=10):
        upstreams.apply_snapshot(GatewaySnapshot())
        assert (upstreams.max_n, upstreams.tabby_model_name) == (10, "from-config")
        assert upstreams.default_max_tokens is None
        upstreams.apply_snapshot(
            GatewaySnapshot(
                max_n=2,
                default_max_tokens=256,
                tabby_model_name="from-console",
                model_preprocessing={"coder": "deepseek"},
            )
        )
    assert (upstreams.max_n, upstreams.default_max_tokens) == (2, 256)
    assert upstreams.tabby_model_name == "from-console"
    assert upstreams.model_preprocessing == {"coder": "deepseek"}


def test_the_console_switches_a_models_affinity_and_an_upstreams_priority_scheduling() -> None:
    with override_settings(KODIFY_PREFIX_AFFINITY=True):
        upstreams = table()  # the environment's word, read once
    upstreams.apply_snapshot(
        GatewaySnapshot(
            upstreams=(checked(A, source="console", priority_scheduling=True), checked(B)),
            model_affinity={"coder": False, "other": True},
        )
    )
    assert [u.spec.priority_scheduling for u in upstreams.upstreams] == [True, False]
    assert not upstreams.affinity_on("coder")  # the console's "off" over the environment's
    assert upstreams.affinity_on("other") and upstreams.affinity_on("unswitched")
    assert not upstreams.affinity_on(None)  # the default model: coder
    upstreams.apply_snapshot(GatewaySnapshot(upstreams=(checked(A), checked(B))))
    assert upstreams.affinity_on("coder")  # the switch gone: the environment again
