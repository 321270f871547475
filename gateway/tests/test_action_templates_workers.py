"""A template or an action's defaults edited in the console change the very next requests
on every worker of a running server, with no restart, through both entry points: the
action endpoint and an action model (through the unmodified OpenAI SDK).

The test writes as the console does (through the services) and waits until both uvicorn
workers say, on ``/health``, that they applied the new state of the console.  Needs the
shared PostgreSQL and Redis of the full run: the server must see this process's writes
and stamps.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway import services
from gateway.actions.templates import build_messages
from gateway.models import ActionSetting, ActionTemplate
from gateway.tests.fake_upstream import DEFAULT_MODEL, FakeUpstream, FakeUpstreamServer
from kodify_site.testing import WAIT_S, KodifyServer, console_applied, console_version

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (os.environ.get("DB_URL") and os.environ.get("REDIS_URL")),
        reason="the server and the test share PostgreSQL and Redis only in the full run",
    ),
]

WORKERS = 2
BATCH = 8  # requests per entry point, each on a new connection (the kernel picks the worker)
CODE = "def mean(values):\n    return sum(values) / len(values)\n"
FIRST = "First console prompt for {language}: answer with one fenced block."
SECOND = "Second console prompt for {language}: answer with one fenced block."
USER = "{filepath_line}{ticks}{fence}\n{code}\n{ticks}{instructions_block}"


@pytest.fixture
def fake() -> Iterator[FakeUpstreamServer]:
    server = FakeUpstreamServer(FakeUpstream()).start()
    yield server
    server.stop()


@pytest.fixture
def server(kodify_server: Any, fake: FakeUpstreamServer) -> KodifyServer:
    started: KodifyServer = kodify_server(
        {"KODIFY_UPSTREAMS": fake.url, "KODIFY_CONFIG_POLL_INTERVAL": "0.2"}, workers=WORKERS
    )
    return started


def systems_sent(server: KodifyServer, fake: FakeUpstream) -> set[str]:
    """The system prompts sent upstream for a batch of requests through each entry point,
    each request on a connection of its own."""
    with openai.OpenAI(
        base_url=server.url + "/v1",
        api_key="unused",
        max_retries=0,
        timeout=WAIT_S,
        default_headers={"connection": "close"},
    ) as sdk:
        return {system for _ in range(BATCH) for system in one_of_each(server, fake, sdk)}


def one_of_each(server: KodifyServer, fake: FakeUpstream, sdk: openai.OpenAI) -> list[str]:
    """The system prompts of one action request and one chat to an action model."""
    marker = uuid.uuid4().hex
    body = {"code": f"{CODE}# {marker}\n", "language": "python"}
    with httpx.Client(base_url=server.url, timeout=WAIT_S) as client:
        answer = client.post("/v1/actions/fix", json=body)
    assert answer.status_code == 200, answer.text
    from_endpoint = sent(fake, marker)["messages"][0]["content"]

    marker = uuid.uuid4().hex
    content = f"```python\n{CODE}# {marker}\n```"
    completion = sdk.chat.completions.create(
        model=f"{DEFAULT_MODEL}:fix", messages=[{"role": "user", "content": content}]
    )
    assert completion.choices[0].message.content
    return [from_endpoint, sent(fake, marker)["messages"][0]["content"]]


def sent(fake: FakeUpstream, marker: str) -> dict[str, Any]:
    [body] = [r.body for r in fake.records if marker in str(r.body.get("messages"))]
    return body


def shipped_fix_system() -> str:
    return build_messages("fix", code="x", language="python")[0]["content"]


def test_a_template_edit_reaches_every_worker_through_both_entry_points(
    server: KodifyServer, fake: FakeUpstreamServer
) -> None:
    assert systems_sent(server, fake.fake) == {shipped_fix_system()}

    before = console_version(server, WORKERS)
    template = services.save_action_template(
        template=ActionTemplate(action="fix", language="python", system=FIRST, user=USER)
    )
    assert console_applied(server, WORKERS, after=before)
    assert systems_sent(server, fake.fake) == {FIRST.format(language="Python")}

    before = console_version(server, WORKERS)
    template.system = SECOND
    services.save_action_template(template=template)
    assert console_applied(server, WORKERS, after=before)
    assert systems_sent(server, fake.fake) == {SECOND.format(language="Python")}

    # Back to the first version (the history's revert), then to the shipped text.
    before = console_version(server, WORKERS)
    first = ActionTemplate.history.filter(id=template.pk).earliest()
    services.revert_action_template(version=first)
    assert console_applied(server, WORKERS, after=before)
    assert systems_sent(server, fake.fake) == {FIRST.format(language="Python")}

    before = console_version(server, WORKERS)
    services.revert_action_templates_to_shipped(templates=list(ActionTemplate.objects.all()))
    assert console_applied(server, WORKERS, after=before)
    assert systems_sent(server, fake.fake) == {shipped_fix_system()}


def test_an_actions_defaults_reach_every_worker(
    server: KodifyServer, fake: FakeUpstreamServer
) -> None:
    before = console_version(server, WORKERS)
    services.save_action_setting(setting=ActionSetting(action="fix", temperature=0.05))
    assert console_applied(server, WORKERS, after=before)

    systems_sent(server, fake.fake)
    bodies = fake.fake.records[-2 * BATCH :]
    assert {(r.path, r.body.get("temperature")) for r in bodies} == {("/v1/chat/completions", 0.05)}
