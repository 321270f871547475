"""The console's action templates and per-action defaults reach the upstream, through both
entry points: ``POST /v1/actions/{action}`` and a chat to an action model.

In process (``gateway.tests.in_process``), in front of the fake vLLM: the worker's table
takes the database's snapshot as its follower would, then requests only read it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from django.test import override_settings

from gateway import following, selectors, services, upstreams
from gateway.actions.templates import Template, build_messages
from gateway.http_client import close_upstream_session
from gateway.models import ActionSetting, ActionTemplate
from gateway.snapshot import GatewaySnapshot
from gateway.tests.fake_upstream import DEFAULT_MODEL, FakeUpstream, FakeUpstreamServer
from gateway.tests.in_process import call, fresh_gateway

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

SECOND_MODEL = "second-model"
EDITED = Template(
    system="You are the console's own {language} fixer. One fenced block, then a list.",
    user="Console layout.\n{filepath_line}{ticks}{fence}\n{code}\n{ticks}{instructions_block}",
)
CODE = "def mean(values):\n    return sum(values) / len(values)\n"


@pytest.fixture
def console_state() -> GatewaySnapshot:
    """The console's writes (a python template for fix, defaults for fix and explain),
    read back as a worker reads them (before the test's event loop: the ORM is sync)."""
    services.save_action_template(
        template=ActionTemplate(
            action="fix", language="python", system=EDITED.system, user=EDITED.user
        )
    )
    services.save_action_setting(
        setting=ActionSetting(action="fix", temperature=0.15, max_tokens=321)
    )
    services.save_action_setting(setting=ActionSetting(action="explain", model=SECOND_MODEL))
    return selectors.gateway_snapshot()


@pytest.fixture
def fake() -> Iterator[FakeUpstreamServer]:
    server = FakeUpstreamServer(FakeUpstream(models=(DEFAULT_MODEL, SECOND_MODEL))).start()
    yield server
    server.stop()


@pytest.fixture
async def gateway(
    fake: FakeUpstreamServer, console_state: GatewaySnapshot, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FakeUpstream]:
    monkeypatch.setattr(following, "_database", None)
    with override_settings(KODIFY_UPSTREAMS=[fake.url], KODIFY_CONFIG=None, LOGS=False):
        fresh_gateway()
        upstreams.get_table().apply_snapshot(console_state)
        yield fake.fake
        await upstreams.get_table().close()
        await close_upstream_session()
    fresh_gateway()


def last_body(fake: FakeUpstream) -> dict[str, Any]:
    return fake.records[-1].body


async def test_the_action_endpoint_uses_the_console_template_and_defaults(
    gateway: FakeUpstream,
) -> None:
    body = {"code": CODE, "language": "python", "filepath": "stats.py", "instructions": "Why?"}
    answer = await call("POST", "/v1/actions/fix", body)
    assert answer.status == 200, answer.body

    sent = last_body(gateway)
    assert sent["messages"] == build_messages(
        "fix",
        code=CODE,
        language="python",
        filepath="stats.py",
        instructions="Why?",
        template=EDITED,
    )
    assert sent["messages"][0]["content"].startswith("You are the console's own Python fixer.")
    assert (sent["model"], sent["temperature"], sent["max_tokens"]) == (DEFAULT_MODEL, 0.15, 321)

    # What the request sets wins over the defaults.
    answer = await call("POST", "/v1/actions/fix", {**body, "temperature": 0.9, "max_tokens": 5})
    assert answer.status == 200
    assert (last_body(gateway)["temperature"], last_body(gateway)["max_tokens"]) == (0.9, 5)

    # Another language, another action: the shipped templates, no defaults.
    answer = await call("POST", "/v1/actions/fix", {"code": CODE, "language": "go"})
    assert answer.status == 200
    assert last_body(gateway)["messages"] == build_messages("fix", code=CODE, language="go")
    answer = await call("POST", "/v1/actions/docs", {"code": CODE, "language": "python"})
    assert answer.status == 200
    sent = last_body(gateway)
    assert sent["messages"] == build_messages("docs", code=CODE, language="python")
    assert "temperature" not in sent and "max_tokens" not in sent


async def test_an_actions_default_model_serves_requests_that_name_none(
    gateway: FakeUpstream,
) -> None:
    answer = await call("POST", "/v1/actions/explain", {"code": CODE, "language": "python"})
    assert answer.status == 200
    assert last_body(gateway)["model"] == SECOND_MODEL

    named = {"code": CODE, "language": "python", "model": DEFAULT_MODEL}
    assert (await call("POST", "/v1/actions/explain", named)).status == 200
    assert last_body(gateway)["model"] == DEFAULT_MODEL


async def test_an_action_model_uses_the_console_template_and_defaults(
    gateway: FakeUpstream,
) -> None:
    content = f"Why does this fail?\n```python\n{CODE}```"
    chat: dict[str, Any] = {
        "model": f"{DEFAULT_MODEL}:fix",
        "messages": [{"role": "user", "content": content}],
    }
    answer = await call("POST", "/v1/chat/completions", chat)
    assert answer.status == 200, answer.body

    sent = last_body(gateway)
    expected = build_messages(
        "fix", code=CODE, language="python", instructions="Why does this fail?", template=EDITED
    )
    assert sent["messages"] == expected
    assert (sent["model"], sent["temperature"], sent["max_tokens"]) == (DEFAULT_MODEL, 0.15, 321)

    # An action model names its model: the action's default model does not replace it.
    chat = {**chat, "model": f"{DEFAULT_MODEL}:explain", "temperature": 0.4}
    assert (await call("POST", "/v1/chat/completions", chat)).status == 200
    sent = last_body(gateway)
    assert (sent["model"], sent["temperature"]) == (DEFAULT_MODEL, 0.4)
    assert "max_tokens" not in sent
