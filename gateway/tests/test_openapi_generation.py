"""The generation operations' document agrees with the consumers: the X-Kodify-Feature
header takes what they take, and `stream: true` answers are documented as event streams."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from gateway.consumers import _FEATURES
from gateway.openapi import SSE, document
from journal.features import Feature

pytestmark = pytest.mark.smoke

GENERATION = ("/v1/chat/completions", "/v1/completions", "/v1beta/chat/completions")


@pytest.mark.parametrize("path", GENERATION)
def test_the_feature_header_takes_every_value_the_gateway_takes(path: str) -> None:
    [header] = document()["paths"][path]["post"]["parameters"]
    assert header["name"] == "X-Kodify-Feature"
    validator = Draft202012Validator(header["schema"])
    # The consumer reads it case-insensitively, stripped, and takes any other value as
    # the endpoint's default: no value is refused, so none may be outside the schema.
    for value in (*Feature.values, "DOCS", " fix ", "refactor", ""):
        assert validator.is_valid(value), value
    assert set(header["schema"]["examples"]) == _FEATURES
    for feature in _FEATURES:
        assert f"`{feature}`" in header["description"]


@pytest.mark.parametrize("path", GENERATION)
def test_streamed_answers_are_documented(path: str) -> None:
    answer = document()["paths"][path]["post"]["responses"]["200"]
    assert "stream" in answer["description"]
    stream = answer["content"][SSE]
    # As OpenAPI 3.1 (and schemathesis) read an event stream: the schema of one event.
    assert stream["schema"]["type"] == "object" and stream["schema"]["required"] == ["data"]
    assert stream["x-sse-data-schema"]["anyOf"][-1] == {"$ref": "#/components/schemas/StreamError"}
