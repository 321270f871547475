"""What the gateway hands to the journal, end to end: a real Kodify with LOGS on.

Each request's row is read back from the database the server writes to (the test run's
PostgreSQL database, or the server's own SQLite file on the smoke run).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer
from kodify_site.testing import (
    KodifyServer,
    journal_entries_sent_as,
    journal_entry,
    journal_events,
    test_database_url,
)

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture(scope="module")
def server(module_kodify_server: Any, module_fake_upstream: FakeUpstreamServer) -> KodifyServer:
    return module_kodify_server(
        {
            "KODIFY_UPSTREAMS": module_fake_upstream.url,
            "LOGS": "true",
            "KODIFY_JOURNAL_FLUSH_SECONDS": "0.05",
        }
    )


@pytest.fixture
def client(server: KodifyServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, timeout=30, headers={"User-Agent": "OpenAI/Python 1.99.0"}
    ) as client:
        yield client


@pytest.fixture
def fake(module_fake_upstream: FakeUpstreamServer) -> FakeUpstream:
    return module_fake_upstream.fake


def chat_body(**extra: Any) -> dict[str, Any]:
    tag = uuid.uuid4().hex
    return {"model": "fake-model", "messages": [{"role": "user", "content": tag}], **extra}


def upstream_body(fake: FakeUpstream, body: dict[str, Any]) -> dict[str, Any]:
    content = body["messages"][0]["content"]
    matches = [
        r.body for r in fake.records if r.body.get("messages", [{}])[0].get("content") == content
    ]
    assert len(matches) == 1
    return matches[0]


def sse_payloads(text: str) -> list[Any]:
    events = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [orjson.loads(event) for event in events[:-1]]


def row_for(server: KodifyServer, response: httpx.Response) -> dict[str, Any]:
    row = journal_entry(server, response.headers["x-request-id"])
    assert row is not None, "no journal row for the request:\n" + server.log()[-3000:]
    return row


@pytest.mark.smoke
def test_a_chat_request_is_recorded_with_its_answer_and_token_counts(
    server: KodifyServer, client: httpx.Client
) -> None:
    body = chat_body(fake={"chunks": 3})
    response = client.post(CHAT, json=body)
    assert response.status_code == 200
    row = row_for(server, response)
    assert row["endpoint"] == CHAT
    assert row["feature"] == "chat"
    assert row["model"] == "fake-model"
    assert row["upstream"].startswith("http://127.0.0.1:")
    assert row["status"] == 200
    assert not row["stream"] and not row["cancelled"]
    assert body["messages"][0]["content"] in row["request_body"]
    assert row["response_text"] == "tok0 tok1 tok2 "
    assert row["response_id"] == response.json()["id"]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (7, 3)
    assert 0 < row["ttft_ms"] <= row["latency_ms"]
    assert row["client_name"] and row["client_version"] == "1.99.0"
    assert str(row["client_ip"]) == "127.0.0.1"


@pytest.mark.smoke
def test_the_clients_request_id_is_recorded_beside_kodifys_own_and_a_reused_one_hides_nothing(
    server: KodifyServer, client: httpx.Client
) -> None:
    sent = f"client-trace-{uuid.uuid4()}"  # 49 characters: more than Kodify's own ids
    bodies = [chat_body(), chat_body()]
    for body in bodies:  # the same id twice: a client's retry, or a careless one
        response = client.post(CHAT, json=body, headers={"X-Request-Id": sent})
        assert (response.status_code, response.headers["x-request-id"]) == (200, sent)
    rows = journal_entries_sent_as(server, sent, count=2)
    assert len(rows) == 2, server.log()[-3000:]
    for row, body in zip(rows, bodies, strict=True):
        assert row["client_request_id"] == sent
        assert len(row["request_id"]) == 16 and row["request_id"] != sent
        assert body["messages"][0]["content"] in row["request_body"]
    assert rows[0]["request_id"] != rows[1]["request_id"]

    plain = client.post(CHAT, json=chat_body(), headers={"X-Request-Id": "not one/of ours"})
    row = row_for(server, plain)  # replaced: the id the client got is the row's own
    assert row["client_request_id"] == ""


def test_the_tokenizer_leaves_no_journal_row(server: KodifyServer, client: httpx.Client) -> None:
    tokenized = f"tokenize-{uuid.uuid4()}"
    response = client.post("/tokenize", json={"prompt": "x"}, headers={"X-Request-Id": tokenized})
    assert response.status_code == 200
    row_for(server, client.post(CHAT, json=chat_body()))  # the journal has caught up
    assert journal_entries_sent_as(server, tokenized, count=1, timeout=0.5) == []


@pytest.mark.smoke
def test_a_stream_is_reassembled_and_the_usage_kodify_asked_for_is_withheld(
    server: KodifyServer, client: httpx.Client, fake: FakeUpstream
) -> None:
    body = chat_body(stream=True, fake={"chunks": 4})
    response = client.post(CHAT, json=body)
    assert response.status_code == 200
    payloads = sse_payloads(response.text)
    # The client did not ask for usage: it gets exactly the events it would get without
    # the journal, although the upstream was asked for usage.
    assert all(payload["choices"] for payload in payloads)
    assert all("usage" not in payload for payload in payloads)
    assert upstream_body(fake, body)["stream_options"] == {"include_usage": True}
    row = row_for(server, response)
    assert row["stream"]
    assert row["response_text"] == "tok0 tok1 tok2 tok3 "
    assert (row["prompt_tokens"], row["completion_tokens"]) == (7, 4)


def test_a_client_that_asked_for_usage_gets_it(
    server: KodifyServer, client: httpx.Client, fake: FakeUpstream
) -> None:
    body = chat_body(stream=True, stream_options={"include_usage": True}, fake={"chunks": 2})
    response = client.post(CHAT, json=body)
    payloads = sse_payloads(response.text)
    assert payloads[-1]["choices"] == []
    assert payloads[-1]["usage"]["completion_tokens"] == 2
    assert upstream_body(fake, body)["stream_options"] == {"include_usage": True}
    assert row_for(server, response)["completion_tokens"] == 2


def test_a_completions_stream_is_reassembled(server: KodifyServer, client: httpx.Client) -> None:
    response = client.post(
        COMPLETIONS,
        json={
            "model": "fake-model",
            "prompt": "def add(a, b):",
            "stream": True,
            "fake": {"chunks": 2},
        },
    )
    row = row_for(server, response)
    assert row["feature"] == "completion"
    assert row["endpoint"] == COMPLETIONS
    assert row["response_text"] == "tok0 tok1 "
    assert "def add(a, b):" in row["request_body"]


def test_an_error_is_recorded_with_its_status_and_message(
    server: KodifyServer, client: httpx.Client
) -> None:
    response = client.post(CHAT, json=chat_body(model="no-such-model"))
    assert response.status_code == 404
    row = row_for(server, response)
    assert row["status"] == 404
    assert row["model"] == "no-such-model"
    assert "no-such-model" in row["error"]


def test_bad_json_is_recorded_too(server: KodifyServer, client: httpx.Client) -> None:
    response = client.post(CHAT, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    row = row_for(server, response)
    assert row["status"] == 400
    assert row["request_body"] == "{not json"
    assert "not valid JSON" in row["error"]


def test_a_client_that_leaves_mid_stream_is_recorded_as_cancelled(
    server: KodifyServer, client: httpx.Client, fake: FakeUpstream
) -> None:
    body = chat_body(stream=True, fake={"chunks": 50, "delay": 0.2})
    with client.stream("POST", CHAT, json=body) as response:
        request_id = response.headers["x-request-id"]
        lines = response.iter_lines()
        assert next(lines).startswith("data: {")
    # Leaving the block closed the connection mid-stream.
    row = journal_entry(server, request_id)
    assert row is not None
    assert row["cancelled"]
    assert row["status"] == 200
    assert row["response_text"].startswith("tok0 ")
    assert not row["response_text"].endswith("tok49 ")


def test_the_feature_header_names_the_assistant_action(
    server: KodifyServer, client: httpx.Client
) -> None:
    response = client.post(CHAT, json=chat_body(), headers={"X-Kodify-Feature": "Explain"})
    assert row_for(server, response)["feature"] == "explain"
    response = client.post(CHAT, json=chat_body(), headers={"X-Kodify-Feature": "poetry"})
    assert row_for(server, response)["feature"] == "chat"


@pytest.mark.smoke
def test_secrets_in_prompts_are_masked_before_they_are_stored(
    server: KodifyServer, client: httpx.Client
) -> None:
    body = chat_body()
    body["messages"].append(
        {
            "role": "user",
            "content": f'aws_access_key_id = "{AWS_KEY}"\npassword = "hunter2-very-secret"',
        }
    )
    response = client.post(CHAT, json=body)
    row = row_for(server, response)
    assert AWS_KEY not in row["request_body"]
    assert "hunter2-very-secret" not in row["request_body"]
    assert "REDACTED" in row["request_body"]
    assert row["redactions"] >= 2
    orjson.loads(row["request_body"])  # still the JSON it was


def test_with_the_journal_off_the_stream_reaches_the_upstream_untouched(
    module_kodify_server: Any, module_fake_upstream: FakeUpstreamServer
) -> None:
    server = module_kodify_server({"KODIFY_UPSTREAMS": module_fake_upstream.url})
    body = chat_body(stream=True, fake={"chunks": 2})
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post(CHAT, json=body)
    assert response.status_code == 200
    assert "stream_options" not in upstream_body(module_fake_upstream.fake, body)


@pytest.mark.skipif(
    not os.environ.get("DB_URL"), reason="a journal database of its own needs PostgreSQL"
)
def test_logs_db_settings_put_the_journal_in_a_database_of_its_own(
    kodify_server: Any, module_fake_upstream: FakeUpstreamServer
) -> None:
    main = psycopg.conninfo.conninfo_to_dict(test_database_url())
    name = f"{main['dbname']}_journal"
    server = kodify_server(
        {
            "KODIFY_UPSTREAMS": module_fake_upstream.url,
            "LOGS": "true",
            "LOGS_DB_HOST": str(main["host"]),
            "LOGS_DB_POST": str(main.get("port") or 5432),  # the guide's spelling
            "LOGS_DB_NAME": name,
            "LOGS_DB_USERNAME": str(main.get("user") or "postgres"),
            "KODIFY_JOURNAL_FLUSH_SECONDS": "0.05",
        }
    )
    try:
        assert "LOGS_DB_POST is an old spelling of LOGS_DB_PORT" in server.log()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            response = client.post(CHAT, json=chat_body())
        journal_url = test_database_url().rsplit("/", 1)[0] + "/" + name
        row = journal_entry(server, response.headers["x-request-id"], database_url=journal_url)
        assert row is not None and row["status"] == 200
        # Not in the main database (where the test run itself keeps a journal table).
        assert journal_entry(server, response.headers["x-request-id"], timeout=0) is None
        with psycopg.connect(journal_url) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables "
                "WHERE tablename IN ('accounts_apitoken', 'auth_user')"
            ).fetchone()
        assert tables == (0,), "only the journal lives in the journal database"
    finally:
        server.stop()
        with psycopg.connect(test_database_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.smoke
def test_a_tabby_completion_and_its_events_are_recorded_and_linked(
    server: KodifyServer, client: httpx.Client
) -> None:
    body = {
        "language": "go",
        "segments": {"prefix": "func add(a, b int) int {\n\t", "suffix": "\n}\n"},
    }
    response = client.post(COMPLETIONS, json=body, headers={"User-Agent": "tabby-agent/1.5.0"})
    assert response.status_code == 200, response.text
    completion = response.json()
    row = row_for(server, response)
    assert row["feature"] == "completion" and row["language"] == "go"
    assert row["response_id"] == completion["id"]
    assert row["response_text"] == completion["choices"][0]["text"]
    assert row["completion_tokens"] is not None and row["completion_tokens"] > 0
    assert orjson.loads(row["request_body"])["segments"]["prefix"].startswith("func add")
    for kind in ("view", "select"):
        event = {"type": kind, "completion_id": completion["id"], "choice_index": 0}
        assert client.post("/v1/events", json=event).status_code == 200
    events = journal_events(server, completion["id"], count=2)
    assert [event["kind"] for event in events] == ["view", "select"]


def test_a_forwarded_address_is_believed_only_from_a_trusted_proxy(
    server: KodifyServer,
    client: httpx.Client,
    module_kodify_server: Any,
    module_fake_upstream: FakeUpstreamServer,
) -> None:
    forged = {"X-Forwarded-For": "203.0.113.66", "X-Forwarded-Proto": "https"}
    untrusted = client.post(CHAT, json=chat_body(), headers=forged)
    row = journal_entry(server, untrusted.headers["x-request-id"])
    assert row is not None and str(row["client_ip"]) == "127.0.0.1"  # nobody is trusted by default

    behind_proxy = module_kodify_server(
        {
            "KODIFY_UPSTREAMS": module_fake_upstream.url,
            "LOGS": "true",
            "KODIFY_JOURNAL_FLUSH_SECONDS": "0.05",
            "KODIFY_TRUSTED_PROXIES": "127.0.0.1",
        }
    )
    relayed = httpx.post(behind_proxy.url + CHAT, json=chat_body(), headers=forged, timeout=30)
    row = journal_entry(behind_proxy, relayed.headers["x-request-id"])
    assert row is not None and str(row["client_ip"]) == "203.0.113.66"
