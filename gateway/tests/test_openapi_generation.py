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
    parameters = document()["paths"][path]["post"]["parameters"]
    [header] = [p for p in parameters if p.get("name") == "X-Kodify-Feature"]
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


def test_every_operation_takes_the_clients_request_id_and_refuses_none() -> None:
    doc = document()
    reference = {"$ref": "#/components/parameters/XRequestId"}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert reference in operation["parameters"], f"{method.upper()} {path}"
    parameter = doc["components"]["parameters"]["XRequestId"]
    assert (parameter["name"], parameter["in"], parameter["required"]) == (
        "X-Request-Id",
        "header",
        False,
    )
    # A value outside the well-formed ones is replaced, never refused: no pattern, so
    # that no client (nor a fuzzer) expects a refusal.
    validator = Draft202012Validator(parameter["schema"])
    for value in ("0f8fad5b-d9cb-469f-a165-70867728950e", "with space", "x" * 500, ""):
        assert validator.is_valid(value)
    assert "1 to 128 characters" in parameter["description"]
