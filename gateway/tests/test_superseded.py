"""Superseded completions: a newer Tabby completion for the same caller and document
cancels the earlier one upstream, whose client gets an empty answer at once."""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer

pytestmark = pytest.mark.smoke


@pytest.fixture
def slow() -> Iterator[FakeUpstreamServer]:
    # Every generation waits before answering: long enough to be superseded meanwhile.
    server = FakeUpstreamServer(FakeUpstream(first_byte_delay=1.5)).start()
    yield server
    server.stop()


def tabby_body(document: str) -> dict[str, Any]:
    return {
        "language": "python",
        "segments": {"prefix": "def f():\n    return ", "suffix": "\n", "filepath": document},
    }


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + "/v1/completions", json=body, timeout=30)


def test_a_newer_completion_for_the_same_document_supersedes_the_earlier(
    kodify_server: Any, slow: FakeUpstreamServer
) -> None:
    server = kodify_server({"KODIFY_UPSTREAMS": slow.url})
    document = f"src/{uuid.uuid4().hex}.py"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        earlier = pool.submit(post, server.url, tabby_body(document))
        assert slow.fake.wait_for(lambda fake: fake.seen >= 1)  # it is being generated
        later = pool.submit(post, server.url, tabby_body(document))
        first, second = earlier.result(), later.result()
    assert first.status_code == 200 and first.json()["choices"] == []
    assert second.status_code == 200 and second.json()["choices"][0]["text"]
    # The earlier generation was stopped upstream, not left to run for nobody.
    assert slow.fake.wait_for(lambda fake: fake.count("disconnected") == 1)
    assert slow.fake.completed == 1
    metrics = httpx.get(server.url + "/metrics", timeout=30).text
    assert "kodify_completions_superseded_total 1.0" in metrics


def test_other_documents_and_the_switch_leave_completions_alone(
    kodify_server: Any, slow: FakeUpstreamServer
) -> None:
    for env, same in (({}, False), ({"KODIFY_SUPERSEDE": "false"}, True)):
        server = kodify_server({"KODIFY_UPSTREAMS": slow.url, **env})
        slow.fake.seen = 0
        first_doc = f"src/{uuid.uuid4().hex}.py"
        second_doc = first_doc if same else f"src/{uuid.uuid4().hex}.py"
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            earlier = pool.submit(post, server.url, tabby_body(first_doc))
            assert slow.fake.wait_for(lambda fake: fake.seen >= 1)
            later = pool.submit(post, server.url, tabby_body(second_doc))
            answers = [earlier.result(), later.result()]
        assert [a.status_code for a in answers] == [200, 200]
        assert all(a.json()["choices"][0]["text"] for a in answers), env
