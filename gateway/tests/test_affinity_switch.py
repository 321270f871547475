"""Prefix-cache affinity switched per model in the console (``ServedModel.prefix_affinity``),
over KODIFY_PREFIX_AFFINITY, read by the hot path from the workers' snapshot.

The database row is written as the console writes it, the snapshot read as a worker reads
it (``selectors.gateway_snapshot``); then, in process, one document's consecutive
completions go through the gateway to two fake vLLM replicas.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from django.test import override_settings

from gateway import following, selectors, services, upstreams
from gateway.http_client import close_upstream_session
from gateway.models import ServedModel
from gateway.snapshot import GatewaySnapshot
from gateway.tests.fake_upstream import DEFAULT_MODEL, FakeUpstream, FakeUpstreamServer
from gateway.tests.in_process import call, fresh_gateway

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

COMPLETIONS = 6


@pytest.fixture
def replicas() -> Iterator[list[FakeUpstreamServer]]:
    started = [FakeUpstreamServer(FakeUpstream()).start() for _ in range(2)]
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def switched(request: pytest.FixtureRequest) -> GatewaySnapshot:
    """What a worker reads after an administrator set the model's switch to the test's
    parameter (in a synchronous fixture: the ORM does not run on the event loop)."""
    model = ServedModel.objects.create(name=DEFAULT_MODEL)
    services.set_model_affinity(model=model, prefix_affinity=request.param)
    return selectors.gateway_snapshot()


@pytest.fixture
async def gateway(
    replicas: list[FakeUpstreamServer], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[list[FakeUpstreamServer]]:
    monkeypatch.setattr(following, "_database", None)  # the test hands the snapshot over
    yield replicas
    await upstreams.get_table().close()
    await close_upstream_session()
    fresh_gateway()


def tabby_body(document: str) -> dict[str, Any]:
    return {
        "language": "python",
        "segments": {"prefix": f"# {document}\ndef add(a, b):\n    return ", "filepath": document},
    }


async def homes_of_one_document(
    replicas: list[FakeUpstreamServer], snapshot: GatewaySnapshot, environment_says: bool
) -> list[int]:
    """Which replica served each of one document's consecutive completions."""
    with override_settings(
        KODIFY_UPSTREAMS=[server.url for server in replicas],
        KODIFY_CONFIG=None,
        LOGS=False,
        KODIFY_PREFIX_AFFINITY=environment_says,
    ):
        fresh_gateway()  # a worker starting with this environment
        table = upstreams.get_table()
        await table.refresh()
        table.apply_snapshot(snapshot)
        document = f"src/{uuid.uuid4().hex}.py"
        for _ in range(COMPLETIONS):
            answer = await call("POST", "/v1/completions", tabby_body(document))
            assert answer.status == 200, answer.body
    return [
        index
        for index, server in enumerate(replicas)
        for record in server.fake.records
        if document in str(record.body)
    ]


@pytest.mark.parametrize("switched", ["on"], indirect=True)
@pytest.mark.parametrize("environment_says", [False, True])
async def test_the_models_switch_on_keeps_a_document_on_one_replica(
    gateway: list[FakeUpstreamServer], switched: GatewaySnapshot, environment_says: bool
) -> None:
    homes = await homes_of_one_document(gateway, switched, environment_says)
    assert len(homes) == COMPLETIONS and len(set(homes)) == 1, homes


@pytest.mark.parametrize("switched", ["off"], indirect=True)
@pytest.mark.parametrize("environment_says", [False, True])
async def test_the_models_switch_off_spreads_them_by_load(
    gateway: list[FakeUpstreamServer], switched: GatewaySnapshot, environment_says: bool
) -> None:
    homes = await homes_of_one_document(gateway, switched, environment_says)
    # One at a time, so both replicas are as idle each time: the least busy pick takes
    # turns between them, whatever KODIFY_PREFIX_AFFINITY says.
    assert len(homes) == COMPLETIONS and set(homes) == {0, 1}, homes


@pytest.mark.parametrize("switched", [""], indirect=True)
@pytest.mark.parametrize(("environment_says", "one_home"), [(False, False), (True, True)])
async def test_without_a_switch_the_environment_decides(
    gateway: list[FakeUpstreamServer],
    switched: GatewaySnapshot,
    environment_says: bool,
    one_home: bool,
) -> None:
    homes = await homes_of_one_document(gateway, switched, environment_says)
    assert len(homes) == COMPLETIONS and (len(set(homes)) == 1) is one_home, homes


def test_the_snapshot_holds_only_the_switches_made() -> None:
    for name, switch in (("a", "on"), ("b", "off"), ("c", "")):
        ServedModel.objects.create(name=name, prefix_affinity=switch)
    ServedModel.objects.create(name="d", preprocessing="qwen")
    snapshot = selectors.gateway_snapshot()
    assert snapshot.model_affinity == {"a": True, "b": False}
    assert snapshot.model_preprocessing == {"d": "qwen"}
