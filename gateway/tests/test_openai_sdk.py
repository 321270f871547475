"""The official OpenAI Python SDK, unmodified, against Kodify (what plugin authors use)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from gateway.tests.fake_upstream import FakeUpstreamServer

pytestmark = pytest.mark.smoke

KEY = "sdk-shared-token-0123456789"


@pytest.fixture(scope="module")
def sdk(module_kodify_server: Any, module_fake_upstream: FakeUpstreamServer) -> openai.OpenAI:
    server = module_kodify_server(
        {
            "KODIFY_UPSTREAMS": module_fake_upstream.url,
            "KODIFY_UPSTREAM_API_KEY": "",
            "VLLM_API_KEY": KEY,
        }
    )
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)


MESSAGES: Any = [{"role": "user", "content": "Write a haiku"}]


def test_chat_non_stream(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert completion.choices[0].message.content == "".join(f"tok{i} " for i in range(16))
    assert completion.usage is not None and completion.usage.completion_tokens == 16


def test_chat_stream(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "".join(f"tok{i} " for i in range(16))


def test_chat_stream_with_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="fake-model",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 23


def test_completions_non_stream_and_stream(sdk: openai.OpenAI) -> None:
    completion = sdk.completions.create(model="fake-model", prompt="def add(a, b):")
    assert completion.choices[0].text.startswith("tok0")
    stream = sdk.completions.create(model="fake-model", prompt="def add(a, b):", stream=True)
    assert "".join(c.choices[0].text for c in stream).startswith("tok0 tok1")


def test_models_list(sdk: openai.OpenAI) -> None:
    names = [m.id for m in sdk.models.list()]
    # The served model, then its assistant actions as models of their own.
    assert names == [
        "fake-model",
        *(f"fake-model:{a}" for a in ("docs", "fix", "tests", "explain")),
    ]


def test_errors_map_to_the_sdks_exceptions(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        sdk.chat.completions.create(model="missing", messages=MESSAGES)
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="fake-model", messages=MESSAGES, n=50)
    stranger = openai.OpenAI(base_url=str(sdk.base_url), api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(model="fake-model", messages=MESSAGES)


def test_upstream_failure_mid_request_is_an_api_error(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(
            model="fake-model", messages=MESSAGES, extra_body={"fake": {"status": 500}}
        )
