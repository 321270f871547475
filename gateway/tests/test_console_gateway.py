"""The console's gateway pages: upstreams, served models, the gateway settings
and "run migrations now" — for administrators only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import gateway.config_file
from accounts.models import AuditEvent
from accounts.roles import ADMINISTRATORS, AUDITORS
from gateway import selectors, services
from gateway.config_file import GatewayConfig, UpstreamSpec
from gateway.models import (
    SOURCE_CONFIG,
    SOURCE_CONSOLE,
    GatewaySetting,
    ServedModel,
    UpstreamServer,
)
from gateway.snapshot import CONFIG_VERSION_KEY
from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer
from kodify_site.testing import free_port

pytestmark = [pytest.mark.smoke, pytest.mark.django_db, pytest.mark.usefixtures("fresh_stamps")]

PASSWORD = "a-long-console-password-7"
SECRET_KEY_VALUE = "sk-upstream-secret-4242"
A, B = "http://upstream-a:8000", "http://upstream-b:8000"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def eager(settings: Any) -> None:
    """Embedded defaults: Celery tasks run in the console's own process."""
    settings.CELERY_TASK_ALWAYS_EAGER = True


def console(username: str, group: str) -> Client:
    account = get_user_model().objects.create_user(username, password=PASSWORD, is_staff=True)
    account.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(account)
    return client


@pytest.fixture
def admin_console() -> Client:
    return console("alice", ADMINISTRATORS)  # the role's permissions, not a superuser


@pytest.fixture
def auditor_console() -> Client:
    return console("audrey", AUDITORS)


@pytest.fixture
def file_upstream() -> UpstreamServer:
    services.import_config_upstreams(
        config=GatewayConfig(upstreams=(UpstreamSpec(url=A, api_key=SECRET_KEY_VALUE),))
    )
    return UpstreamServer.objects.get(url=A)


@pytest.fixture
def fake() -> Iterator[FakeUpstreamServer]:
    server = FakeUpstreamServer(FakeUpstream(models=("coder-7b",), max_model_len=16384)).start()
    yield server
    server.stop()


def upstream_form(**values: Any) -> dict[str, Any]:
    data = {
        "url": "",
        "name": "",
        "enabled": "on",
        "position": "0",
        "weight": "1",
        "max_concurrent": "0",
        "preprocessing_0": "",
        "preprocessing_1": "",
        "new_api_key": "",
    }
    data.update(values)
    return {key: value for key, value in data.items() if value is not None}


def form_of(upstream: UpstreamServer, **values: Any) -> dict[str, Any]:
    current = {
        "url": upstream.url,
        "name": upstream.name,
        "enabled": "on" if upstream.enabled else None,
        "position": str(upstream.position),
        "weight": str(upstream.weight),
        "max_concurrent": str(upstream.max_concurrent),
    }
    return upstream_form(**{**current, **values})


def change_url(upstream: UpstreamServer) -> str:
    return reverse("admin:gateway_upstreamserver_change", args=[upstream.pk])


def shown(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def notes(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# -- the upstream list and form -----------------------------------------------------------


def test_the_list_shows_source_and_health(
    admin_console: Client, file_upstream: UpstreamServer
) -> None:
    services.save_upstream(upstream=UpstreamServer(url=B, name="console one"))
    UpstreamServer.objects.filter(url=A).update(
        healthy=False,
        last_check=timezone.now() - timedelta(seconds=12),
        last_error="connection refused or host unreachable",
    )
    UpstreamServer.objects.filter(url=B).update(
        healthy=True,
        last_check=timezone.now(),
        models=[{"id": "coder-7b", "object": "model", "max_model_len": 8192}],
    )

    page = shown(admin_console, reverse("admin:gateway_upstreamserver_changelist"))

    assert "config.yml" in page and "console" in page
    assert "● down" in page and "● up" in page
    assert "connection refused or host unreachable" in page
    assert "checked 12 s ago" in page or "checked 13 s ago" in page
    assert "coder-7b (8192 tokens)" in page
    assert "Which source wins" in page  # the rule, on the page
    assert "Check upstream health" in page  # the beat schedule, with its interval
    assert SECRET_KEY_VALUE not in page


def test_credentials_in_a_url_are_not_shown(admin_console: Client) -> None:
    services.save_upstream(upstream=UpstreamServer(url="http://kodify:pa55word@upstream-c:8000"))

    page = shown(admin_console, reverse("admin:gateway_upstreamserver_changelist"))

    assert "http://upstream-c:8000" in page and "pa55word" not in page


def test_a_new_upstream_goes_last(admin_console: Client, file_upstream: UpstreamServer) -> None:
    response = admin_console.get(reverse("admin:gateway_upstreamserver_add"))

    assert response.context["adminform"].form.initial["position"] == file_upstream.position + 1


def test_the_api_key_is_never_shown_back(
    admin_console: Client, file_upstream: UpstreamServer
) -> None:
    page = shown(admin_console, change_url(file_upstream))

    assert SECRET_KEY_VALUE not in page
    assert "set (its own key)" in page
    assert 'name="new_api_key"' in page and 'name="clear_api_key"' in page


def test_adding_an_upstream_in_the_console(admin_console: Client, committed: Any) -> None:
    with committed():
        response = admin_console.post(
            reverse("admin:gateway_upstreamserver_add"),
            upstream_form(
                url="http://upstream-new:8000/v1/",
                name="new",
                weight="2",
                max_concurrent="16",
                preprocessing_0="qwen",
                new_api_key=SECRET_KEY_VALUE,
            ),
        )

    assert response.status_code == 302, response.content.decode()
    added = UpstreamServer.objects.get()
    assert added.url == "http://upstream-new:8000"  # normalised
    assert (added.source, added.weight, added.max_concurrent) == (SOURCE_CONSOLE, 2.0, 16)
    assert (added.api_key, added.preprocessing) == (SECRET_KEY_VALUE, "qwen")
    assert selectors.config_version()  # every worker reloads
    event = AuditEvent.objects.get(action="upstream.created")
    assert event.actor_name == "alice" and event.details["api_key"] == "set"
    assert SECRET_KEY_VALUE not in str(event.details)


def test_saving_a_change_hands_a_file_upstream_to_the_console(
    admin_console: Client, file_upstream: UpstreamServer
) -> None:
    unchanged = admin_console.post(change_url(file_upstream), form_of(file_upstream))
    assert unchanged.status_code == 302
    assert UpstreamServer.objects.get(url=A).source == SOURCE_CONFIG  # nothing changed

    response = admin_console.post(change_url(file_upstream), form_of(file_upstream, weight="3"))

    assert response.status_code == 302
    saved = UpstreamServer.objects.get(url=A)
    assert (saved.source, saved.weight) == (SOURCE_CONSOLE, 3.0)
    assert saved.api_key == SECRET_KEY_VALUE  # an empty "new key" keeps the key


def test_the_api_key_can_be_replaced_and_cleared(
    admin_console: Client, file_upstream: UpstreamServer
) -> None:
    admin_console.post(change_url(file_upstream), form_of(file_upstream, new_api_key="k2"))
    assert UpstreamServer.objects.get(url=A).api_key == "k2"

    both = admin_console.post(
        change_url(file_upstream), form_of(file_upstream, new_api_key="k3", clear_api_key="on")
    )
    assert both.status_code == 200 and "not both" in both.content.decode()

    admin_console.post(change_url(file_upstream), form_of(file_upstream, clear_api_key="on"))
    assert UpstreamServer.objects.get(url=A).api_key == ""
    assert "not set (the default key is sent)" in shown(admin_console, change_url(file_upstream))


def test_preprocessing_is_a_shipped_name_or_a_path_and_checked(
    admin_console: Client, file_upstream: UpstreamServer
) -> None:
    page = shown(admin_console, change_url(file_upstream))
    assert '<option value="qwen">qwen</option>' in page

    bad = admin_console.post(
        change_url(file_upstream),
        form_of(file_upstream, preprocessing_0="__path__", preprocessing_1="nowhere/x.json"),
    )
    assert bad.status_code == 200 and "cannot be read" in bad.content.decode()

    good = admin_console.post(
        change_url(file_upstream),
        form_of(
            file_upstream,
            preprocessing_0="__path__",
            preprocessing_1="preprocess_configs/qwen.json",
        ),
    )
    assert good.status_code == 302
    assert UpstreamServer.objects.get(url=A).preprocessing == "preprocess_configs/qwen.json"
    page = shown(admin_console, change_url(file_upstream))
    assert 'value="preprocess_configs/qwen.json"' in page


def test_actions_disable_enable_and_follow_config_again(
    admin_console: Client, file_upstream: UpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    changelist = reverse("admin:gateway_upstreamserver_changelist")
    selected = {"_selected_action": [file_upstream.pk]}

    admin_console.post(changelist, {"action": "disable_upstreams", **selected})
    row = UpstreamServer.objects.get(url=A)
    assert (row.enabled, row.source) == (False, SOURCE_CONSOLE)

    file = GatewayConfig(upstreams=(UpstreamSpec(url=A, weight=4),))
    monkeypatch.setattr(selectors, "file_config", lambda: file)
    response = admin_console.post(changelist, {"action": "follow_config_again", **selected})

    row = UpstreamServer.objects.get(url=A)
    assert (row.enabled, row.source, row.weight) == (True, SOURCE_CONFIG, 4.0)
    assert any("follow config.yml again" in note for note in notes(response))


def test_check_health_now_runs_the_task_at_once_on_embedded_defaults(
    admin_console: Client, fake: FakeUpstreamServer, eager: None
) -> None:
    services.save_upstream(upstream=UpstreamServer(url=fake.url))
    closed = services.save_upstream(upstream=UpstreamServer(url=f"http://127.0.0.1:{free_port()}"))
    changelist = reverse("admin:gateway_upstreamserver_changelist")

    response = admin_console.post(
        changelist,
        {"action": "check_health_now", "_selected_action": [closed.pk]},
        follow=True,
    )
    assert any("is down: connection refused" in note for note in notes(response))
    assert UpstreamServer.objects.get(url=fake.url).healthy is None  # not selected

    response = admin_console.post(reverse("admin:gateway_upstreamserver_check_health"), follow=True)
    assert any("is up, serving coder-7b" in note for note in notes(response))
    assert UpstreamServer.objects.get(url=fake.url).healthy is True
    assert "● up" in response.content.decode()


def test_check_health_now_queues_the_task_with_a_worker(
    admin_console: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False
    queued: list[dict[str, Any]] = []

    class Queued:
        id = "task-1234"

    def delay(**kwargs: Any) -> Queued:
        queued.append(kwargs)
        return Queued()

    from gateway import tasks

    monkeypatch.setattr(tasks.check_upstreams, "delay", delay)
    response = admin_console.post(reverse("admin:gateway_upstreamserver_check_health"))

    assert response.status_code == 302
    assert queued == [{"upstream_ids": None}]
    assert any("task-1234" in note for note in notes(response))


# -- served models -------------------------------------------------------------------------


def test_the_model_list_and_a_models_preprocessing(
    admin_console: Client, fake: FakeUpstreamServer, committed: Any
) -> None:
    services.save_upstream(upstream=UpstreamServer(url=fake.url, name="gpu-1"))
    services.check_upstreams()
    model = ServedModel.objects.get(name="coder-7b")

    page = shown(admin_console, reverse("admin:gateway_servedmodel_changelist"))
    assert "gpu-1 (up)" in page and "16384" in page
    assert "automatic (generic)" in page
    assert reverse("admin:gateway_servedmodel_add") not in page  # the checks add them

    url = reverse("admin:gateway_servedmodel_change", args=[model.pk])
    cache.delete(CONFIG_VERSION_KEY)
    with committed():
        response = admin_console.post(url, {"preprocessing_0": "qwen", "preprocessing_1": ""})
    assert response.status_code == 302
    assert ServedModel.objects.get(pk=model.pk).preprocessing == "qwen"
    assert selectors.config_version()
    assert selectors.gateway_snapshot().model_preprocessing == {"coder-7b": "qwen"}
    page = shown(admin_console, reverse("admin:gateway_servedmodel_changelist"))
    assert ">qwen<" in page


def test_a_models_prefix_cache_affinity_is_switched_in_the_console(
    admin_console: Client, committed: Any
) -> None:
    model = ServedModel.objects.create(name="coder-7b")
    page = shown(admin_console, reverse("admin:gateway_servedmodel_changelist"))
    assert "as KODIFY_PREFIX_AFFINITY (off)" in page

    url = reverse("admin:gateway_servedmodel_change", args=[model.pk])
    assert 'name="prefix_affinity"' in shown(admin_console, url)
    cache.delete(CONFIG_VERSION_KEY)
    with committed():
        response = admin_console.post(
            url, {"preprocessing_0": "", "preprocessing_1": "", "prefix_affinity": "on"}
        )
    assert response.status_code == 302
    assert ServedModel.objects.get(pk=model.pk).prefix_affinity == "on"
    assert selectors.config_version()  # every worker reloads
    assert selectors.gateway_snapshot().model_affinity == {"coder-7b": True}
    event = AuditEvent.objects.get(action="model.changed")
    assert event.actor_name == "alice" and event.details == {"prefix_affinity": "on"}
    page = shown(admin_console, reverse("admin:gateway_servedmodel_changelist"))
    assert ">On<" in page and "as KODIFY_PREFIX_AFFINITY" not in page

    bad = admin_console.post(
        url, {"preprocessing_0": "", "preprocessing_1": "", "prefix_affinity": "yes"}
    )
    assert bad.status_code == 200 and ServedModel.objects.get(pk=model.pk).prefix_affinity == "on"


def test_autocompletion_first_is_an_upstreams_switch(
    admin_console: Client, file_upstream: UpstreamServer
) -> None:
    assert 'name="priority_scheduling"' in shown(admin_console, change_url(file_upstream))
    response = admin_console.post(
        change_url(file_upstream), form_of(file_upstream, priority_scheduling="on")
    )
    assert response.status_code == 302
    saved = UpstreamServer.objects.get(url=A)
    assert (saved.priority_scheduling, saved.source) == (True, SOURCE_CONSOLE)
    assert [row.priority_scheduling for row in selectors.gateway_snapshot().upstreams] == [True]

    admin_console.post(change_url(file_upstream), form_of(file_upstream))  # unticked
    assert UpstreamServer.objects.get(url=A).priority_scheduling is False


# -- gateway settings ----------------------------------------------------------------------


@pytest.fixture
def config_with_tabby(monkeypatch: pytest.MonkeyPatch) -> None:
    config = GatewayConfig(tabby_model_name="tabby-coder", path=Path("/etc/kodify/config.yml"))
    monkeypatch.setattr(gateway.config_file, "gateway_config", lambda: config)


def test_the_settings_page_shows_each_value_and_where_it_comes_from(
    admin_console: Client, settings: Any, config_with_tabby: None
) -> None:
    settings.MAX_N = 10
    changelist = admin_console.get(reverse("admin:gateway_gatewaysetting_changelist"))
    page_url = reverse("admin:gateway_gatewaysetting_change", args=[1])
    assert changelist.status_code == 302 and changelist["Location"] == page_url

    page = shown(admin_console, page_url)
    assert "default MAX_N=10" in page
    assert "config.yml tabby.model_name in /etc/kodify/config.yml" in page
    assert "tabby-coder" in page
    assert "the upstream&#x27;s default" in page

    settings.MAX_N = 12
    assert "environment MAX_N=12" in shown(admin_console, page_url)


def test_saving_the_settings_overrides_them_from_the_console(
    admin_console: Client, config_with_tabby: None, committed: Any
) -> None:
    page_url = reverse("admin:gateway_gatewaysetting_change", args=[1])

    with committed():
        response = admin_console.post(
            page_url, {"max_n": "4", "default_max_tokens": "512", "tabby_model_name": "other"}
        )

    assert response.status_code == 302
    setting = GatewaySetting.objects.get()
    assert (setting.max_n, setting.default_max_tokens, setting.tabby_model_name) == (
        4,
        512,
        "other",
    )
    assert selectors.config_version()
    page = shown(admin_console, page_url)
    assert page.count("<td>console</td>") == 3

    admin_console.post(page_url, {"max_n": "", "default_max_tokens": "", "tabby_model_name": ""})
    snapshot = selectors.gateway_snapshot()
    assert (snapshot.max_n, snapshot.default_max_tokens, snapshot.tabby_model_name) == (
        None,
        None,
        None,
    )
    assert AuditEvent.objects.filter(action="settings.changed").count() == 2


def test_there_is_one_settings_row_and_no_add_or_delete(admin_console: Client) -> None:
    assert admin_console.get(reverse("admin:gateway_gatewaysetting_add")).status_code == 403
    assert (
        admin_console.get(reverse("admin:gateway_gatewaysetting_change", args=[2])).status_code
        == 302
    )
    delete = reverse("admin:gateway_gatewaysetting_delete", args=[1])
    assert admin_console.post(delete, {"post": "yes"}).status_code == 403


def test_run_migrations_now_runs_the_task_and_shows_its_output(
    admin_console: Client, eager: None
) -> None:
    settings_page = shown(admin_console, reverse("admin:gateway_gatewaysetting_change", args=[1]))
    url = reverse("admin:gateway_gatewaysetting_run_migrations")
    assert url in settings_page

    confirm = shown(admin_console, url)
    assert 'id="run-migrations-form"' in confirm

    response = admin_console.post(url)

    assert response.status_code == 200
    page = response.content.decode()
    assert "The migrations ran" in page
    assert "Migrating database &#x27;default&#x27;" in page
    assert "No migrations to apply." in page
    assert AuditEvent.objects.filter(action="migrations.run").exists()


def test_run_migrations_now_queues_the_task_with_a_worker(
    admin_console: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False

    class Queued:
        id = "migrate-5678"

    from kodify_site import tasks

    monkeypatch.setattr(tasks.run_migrations, "delay", lambda: Queued())
    response = admin_console.post(reverse("admin:gateway_gatewaysetting_run_migrations"))

    assert response.status_code == 200
    assert "migrate-5678" in response.content.decode()


# -- auditors ------------------------------------------------------------------------------


def test_auditors_cannot_see_or_change_any_of_it(
    auditor_console: Client, file_upstream: UpstreamServer
) -> None:
    model = ServedModel.objects.create(name="coder-7b")
    forbidden_gets = [
        reverse("admin:gateway_upstreamserver_changelist"),
        reverse("admin:gateway_upstreamserver_add"),
        change_url(file_upstream),
        reverse("admin:gateway_servedmodel_changelist"),
        reverse("admin:gateway_servedmodel_change", args=[model.pk]),
        reverse("admin:gateway_gatewaysetting_changelist"),
        reverse("admin:gateway_gatewaysetting_change", args=[1]),
        reverse("admin:gateway_gatewaysetting_run_migrations"),
        reverse("admin:django_celery_beat_periodictask_changelist"),
    ]
    for url in forbidden_gets:
        assert auditor_console.get(url).status_code == 403, url
    forbidden_posts = [
        (reverse("admin:gateway_upstreamserver_check_health"), {}),
        (reverse("admin:gateway_gatewaysetting_run_migrations"), {}),
        (
            reverse("admin:gateway_upstreamserver_changelist"),
            {"action": "disable_upstreams", "_selected_action": [file_upstream.pk]},
        ),
        (change_url(file_upstream), form_of(file_upstream, weight="9")),
        (reverse("admin:gateway_gatewaysetting_change", args=[1]), {"max_n": "1"}),
    ]
    for url, data in forbidden_posts:
        assert auditor_console.post(url, data).status_code == 403, url
    assert UpstreamServer.objects.get(url=A).enabled
    assert not GatewaySetting.objects.exists()

    index = shown(auditor_console, reverse("admin:index"))
    assert "Upstreams" not in index and "Gateway settings" not in index
    assert "Periodic tasks" not in index


def test_administrators_see_the_gateway_and_the_schedules(admin_console: Client) -> None:
    index = shown(admin_console, reverse("admin:index"))

    assert "Upstreams" in index and "Models" in index and "Gateway settings" in index
    assert "Periodic tasks" in index
    schedules = shown(admin_console, reverse("admin:django_celery_beat_periodictask_changelist"))
    assert "Check upstream health" in schedules
