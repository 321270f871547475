"""Upstream and model records in the database: the import of config.yml (which source
wins), the version stamps every worker watches, and the snapshot workers load."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test import override_settings

from gateway import sealing, selectors, services
from gateway.config_file import GatewayConfig, UpstreamSpec
from gateway.models import (
    SOURCE_CONFIG,
    SOURCE_CONSOLE,
    GatewaySetting,
    ServedModel,
    UpstreamServer,
)
from gateway.selectors import SnapshotUnavailable
from gateway.snapshot import GatewaySnapshot

pytestmark = [pytest.mark.smoke, pytest.mark.django_db, pytest.mark.usefixtures("fresh_stamps")]

A, B, C = "http://upstream-a:8000", "http://upstream-b:8000", "http://upstream-c:8000"


def config(*specs: UpstreamSpec, tabby: str | None = None) -> GatewayConfig:
    return GatewayConfig(upstreams=specs, tabby_model_name=tabby)


def row(url: str) -> UpstreamServer:
    return UpstreamServer.objects.get(url=url)


# -- the import of config.yml ------------------------------------------------------------


def test_import_creates_the_files_upstreams_with_source_config_yml() -> None:
    result = services.import_config_upstreams(
        config=config(
            UpstreamSpec(url=A),
            UpstreamSpec(
                url=B,
                api_key="key-b",
                weight=2.5,
                enabled=False,
                name="big one",
                preprocessing="qwen",
                max_concurrent=8,
            ),
        )
    )

    assert result.created == [A, B] and result.changed
    a, b = row(A), row(B)
    assert (a.source, a.api_key, a.weight, a.enabled, a.position) == (
        SOURCE_CONFIG,
        "",
        1.0,
        True,
        0,
    )
    assert (b.source, b.api_key, b.weight, b.enabled) == (SOURCE_CONFIG, "key-b", 2.5, False)
    assert (b.name, b.preprocessing, b.max_concurrent, b.position) == ("big one", "qwen", 8, 1)
    assert a.healthy is None  # never checked


def test_import_updates_rows_that_follow_the_file() -> None:
    services.import_config_upstreams(config=config(UpstreamSpec(url=A, api_key="old")))

    result = services.import_config_upstreams(
        config=config(
            UpstreamSpec(
                url=A,
                api_key="new",
                weight=3,
                enabled=False,
                name="renamed",
                preprocessing="deepseek",
                max_concurrent=4,
                priority_scheduling=True,
            )
        )
    )

    assert result.updated == [A]
    a = row(A)
    assert (a.api_key, a.weight, a.enabled, a.name) == ("new", 3.0, False, "renamed")
    assert (a.preprocessing, a.max_concurrent, a.source) == ("deepseek", 4, SOURCE_CONFIG)
    assert a.priority_scheduling is True


def test_import_deletes_file_rows_whose_url_left_the_file_and_keeps_console_rows() -> None:
    services.import_config_upstreams(config=config(UpstreamSpec(url=A), UpstreamSpec(url=B)))
    services.save_upstream(upstream=UpstreamServer(url=C, name="added in the console"))

    result = services.import_config_upstreams(config=config(UpstreamSpec(url=A)))

    assert result.deleted == [B]
    assert set(UpstreamServer.objects.values_list("url", flat=True)) == {A, C}
    assert row(C).source == SOURCE_CONSOLE


def test_a_row_edited_in_the_console_is_left_alone_by_the_import() -> None:
    services.import_config_upstreams(config=config(UpstreamSpec(url=A, weight=1)))
    edited = row(A)
    edited.weight = 5
    services.save_upstream(upstream=edited, changed=["weight"])
    assert row(A).source == SOURCE_CONSOLE

    result = services.import_config_upstreams(config=config(UpstreamSpec(url=A, weight=2)))
    assert result.kept == [A] and not result.changed
    assert row(A).weight == 5

    # Nor is it deleted when the file drops it: the console owns it now.
    services.import_config_upstreams(config=config())
    assert row(A).weight == 5


def test_follow_config_again_hands_rows_back_to_the_file() -> None:
    file = config(UpstreamSpec(url=A, weight=2, name="from the file"))
    services.import_config_upstreams(config=file)
    services.set_upstreams_enabled(upstreams=[row(A)], enabled=False)
    services.save_upstream(upstream=UpstreamServer(url=C))
    assert row(A).source == SOURCE_CONSOLE and not row(A).enabled

    followed, missing = services.follow_config_again(upstreams=[row(A), row(C)], config=file)

    assert [u.url for u in followed] == [A] and [u.url for u in missing] == [C]
    a = row(A)
    assert (a.source, a.enabled, a.weight, a.name) == (SOURCE_CONFIG, True, 2.0, "from the file")
    assert row(C).source == SOURCE_CONSOLE
    # From now on the file's changes apply again.
    services.import_config_upstreams(config=config(UpstreamSpec(url=A, weight=7)))
    assert row(A).weight == 7


def test_console_urls_are_normalised_and_checked() -> None:
    saved = services.save_upstream(upstream=UpstreamServer(url=" http://upstream-d:8000/v1/ "))
    assert saved.url == "http://upstream-d:8000"

    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as error:
        services.save_upstream(upstream=UpstreamServer(url="ftp://nope"))
    assert "url" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        services.save_upstream(upstream=UpstreamServer(url=A + "/", weight=0))
    assert "weight" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        services.save_upstream(upstream=UpstreamServer(url=A, preprocessing="no-such-config"))
    assert "preprocessing" in error.value.message_dict


# -- version stamps ------------------------------------------------------------------------


def test_every_write_bumps_the_config_stamp_after_the_commit(committed: Any) -> None:
    stamps: list[str] = []

    def stamp_changed() -> bool:
        current = selectors.config_version()
        changed = bool(current) and (not stamps or current != stamps[-1])
        stamps.append(current)
        return changed

    with committed():
        services.import_config_upstreams(config=config(UpstreamSpec(url=A)))
        assert selectors.config_version() == ""  # not before the commit
    assert stamp_changed()

    with committed():
        services.import_config_upstreams(config=config(UpstreamSpec(url=A)))
    assert not stamp_changed()  # an unchanged file changes nothing

    with committed():
        services.save_upstream(upstream=UpstreamServer(url=B))
    assert stamp_changed()

    with committed():
        services.set_upstreams_enabled(upstreams=[row(B)], enabled=False)
    assert stamp_changed()

    with committed():
        services.delete_upstreams(upstreams=[row(B)])
    assert stamp_changed()

    with committed():
        services.update_gateway_setting(max_n=3)
    assert stamp_changed()

    model = ServedModel.objects.create(name="m")
    stamps.append(selectors.config_version())
    with committed():
        services.set_model_preprocessing(model=model, preprocessing="qwen")
    assert stamp_changed()

    with committed():
        services.follow_config_again(upstreams=[row(A)], config=config(UpstreamSpec(url=A)))
    assert stamp_changed()

    assert selectors.health_version() == ""  # none of these is a health check


def test_bump_functions_set_fresh_stamps() -> None:
    first = services.bump_config_version()
    assert selectors.config_version() == first
    assert services.bump_config_version() != first
    health = services.bump_health_version()
    assert selectors.health_version() == health != selectors.config_version()


# -- the snapshot --------------------------------------------------------------------------


def test_snapshot_has_every_upstream_in_order_with_its_state() -> None:
    services.import_config_upstreams(
        config=config(
            UpstreamSpec(
                url=B,
                api_key="key-b",
                weight=2,
                preprocessing="qwen",
                max_concurrent=3,
                priority_scheduling=True,
            ),
            UpstreamSpec(url=A),
        )
    )
    cards = [
        {"id": "z-model", "object": "model", "max_model_len": 4096, "root": "/w/z"},
        {"id": "a-model", "object": "model"},
    ]
    UpstreamServer.objects.filter(url=B).update(healthy=True, models=cards)
    UpstreamServer.objects.filter(url=A).update(healthy=False, last_error="timed out")
    ServedModel.objects.create(name="z-model", preprocessing="deepseek")
    ServedModel.objects.create(name="a-model", prefix_affinity="off")
    GatewaySetting.objects.create(max_n=4, default_max_tokens=256, tabby_model_name="z-model")
    config_stamp, health_stamp = services.bump_config_version(), services.bump_health_version()

    snapshot = selectors.gateway_snapshot()

    assert isinstance(snapshot, GatewaySnapshot)
    assert [u.url for u in snapshot.upstreams] == [B, A]  # the file's order
    b, a = snapshot.upstreams
    assert (b.api_key, b.weight, b.preprocessing, b.max_concurrent) == ("key-b", 2.0, "qwen", 3)
    assert (b.priority_scheduling, a.priority_scheduling) == (True, False)
    assert (b.source, b.healthy, b.enabled) == (SOURCE_CONFIG, True, True)
    assert list(b.models) == ["z-model", "a-model"]  # the upstream's order, kept
    assert b.models["z-model"]["max_model_len"] == 4096
    assert a.api_key is None  # blank: the default key
    assert (a.healthy, a.last_error, a.models) == (False, "timed out", {})
    assert snapshot.model_preprocessing == {"z-model": "deepseek"}
    assert snapshot.model_affinity == {"a-model": False}
    assert (snapshot.max_n, snapshot.default_max_tokens) == (4, 256)
    assert snapshot.tabby_model_name == "z-model"
    assert (snapshot.config_version, snapshot.health_version) == (config_stamp, health_stamp)


def test_snapshot_without_console_settings() -> None:
    snapshot = selectors.gateway_snapshot()

    assert snapshot.upstreams == ()
    assert (snapshot.max_n, snapshot.default_max_tokens, snapshot.tabby_model_name) == (
        None,
        None,
        None,
    )
    assert (snapshot.config_version, snapshot.health_version) == ("", "")


def test_snapshot_raises_a_clear_error_when_the_tables_are_missing() -> None:
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE gateway_upstreamserver RENAME TO gateway_gone")
        with pytest.raises(SnapshotUnavailable, match="cannot read the upstreams"):
            selectors.gateway_snapshot()
        raise Rollback  # puts the table back
    assert selectors.gateway_snapshot().upstreams == ()


# -- the import at start -------------------------------------------------------------------


def test_the_start_imports_config_yml(monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.config_file
    from kodify_site import startup

    file = config(UpstreamSpec(url=A, weight=2))
    monkeypatch.setattr(gateway.config_file, "gateway_config", lambda: file)

    startup.import_config_upstreams()

    assert row(A).weight == 2 and row(A).source == SOURCE_CONFIG


def test_a_failed_import_does_not_stop_the_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from kodify_site import startup

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("the database went away\nmore detail")

    monkeypatch.setattr(services, "import_config_upstreams", broken)

    startup.import_config_upstreams()  # no exception

    assert "could not be imported into the database (the database went away)" in caplog.text


@pytest.mark.django_db
def test_an_upstream_api_key_is_sealed_in_the_database() -> None:
    upstream = UpstreamServer.objects.create(url="http://sealed:8000", api_key="vllm-key-123")
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM gateway_upstreamserver WHERE id = %s", [upstream.pk])
        stored = cursor.fetchone()[0]
    assert stored.startswith(sealing.PREFIX) and "vllm-key-123" not in stored
    assert UpstreamServer.objects.get(pk=upstream.pk).api_key == "vllm-key-123"
    assert sealing.unseal("written-in-clear") == "written-in-clear"  # before sealing existed
    with override_settings(KODIFY_TOKEN_HASH_KEY="another-secret-altogether"):
        assert UpstreamServer.objects.get(pk=upstream.pk).api_key == ""  # unreadable
