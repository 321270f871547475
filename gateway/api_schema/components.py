"""The OpenAPI document's request schemas (and query parameters), generated from the
Structs of ``requests``.

msgspec writes the JSON Schema; this module only makes it read like the rest of the
document (``{"type": ["string", "null"]}`` rather than an ``anyOf`` of the two, one
paragraph per description) and states what is known only at run time: the MAX_N in force.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import msgspec

from gateway.api_schema.requests import DOCUMENTED, MAX_N_FIELDS, SCHEMA_EXTRAS

# Keywords that constrain values of one JSON type only: a branch of an ``anyOf`` made of
# them and its ``type`` can join the other branches in one schema with a list of types.
_TYPED_KEYWORDS = frozenset(
    {
        "type",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "properties",
        "required",
        "additionalProperties",
    }
)


def request_schemas(max_n: int) -> dict[str, Any]:
    """The request components (and the Structs they use), for a server with ``max_n``."""
    schemas = copy.deepcopy(_generated())
    for schema in schemas.values():
        for key in MAX_N_FIELDS:
            field = schema.get("properties", {}).get(key)
            if field is not None:
                field["maximum"] = max_n
                field["description"] = field["description"].replace("{max_n}", str(max_n))
    return schemas


@cache
def _generated() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        DOCUMENTED, ref_template="#/components/schemas/{name}"
    )
    schemas: dict[str, Any] = {name: _tidy(schema) for name, schema in components.items()}
    for name, schema in schemas.items():
        # The gateway reads only these fields; any other is allowed (and forwarded).
        schema.setdefault("additionalProperties", True)
        schema.update(copy.deepcopy(SCHEMA_EXTRAS.get(name, {})))
    return schemas


def query_parameters(kind: type) -> list[dict[str, Any]]:
    """The OpenAPI query parameters of a Struct that a query string is checked against."""
    return copy.deepcopy(_query_parameters(kind))


@cache
def _query_parameters(kind: type) -> list[dict[str, Any]]:
    _, components = msgspec.json.schema_components([kind])
    schema = _tidy(components[kind.__name__])
    required = set(schema.get("required", ()))
    parameters: list[dict[str, Any]] = []
    for name, field in schema["properties"].items():
        field = {key: value for key, value in field.items() if key != "default"}
        description = field.pop("description", None)
        # A query parameter is absent rather than null: the null branch is left out.
        branches = [b for b in field.pop("anyOf", [field]) if b.get("type") != "null"]
        if isinstance(field.get("type"), list):
            branches = [{**field, "type": [t for t in field["type"] if t != "null"]}]
        value = dict(branches[0]) if len(branches) == 1 else {"anyOf": branches}
        if "enum" in value and "type" not in value:
            value["type"] = "string"  # a query string's values are strings
        if isinstance(value.get("type"), list) and len(value["type"]) == 1:
            value["type"] = value["type"][0]
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if description:
            parameter["description"] = description
        parameter["schema"] = value
        parameters.append(parameter)
    return parameters


def _tidy(node: Any, *, properties: bool = False) -> Any:
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    if not isinstance(node, dict):
        return node
    if properties:  # names of fields, each with its schema
        return {name: _tidy(schema) for name, schema in node.items()}
    node = {key: _tidy(value, properties=key == "properties") for key, value in node.items()}
    if "anyOf" in node:
        branches = _without_redundant_numbers(node.pop("anyOf"))
        node.update(_joined(branches) or {"anyOf": branches})
    if node.get("required") == []:
        del node["required"]
    if isinstance(node.get("description"), str):
        node["description"] = " ".join(line.strip() for line in node["description"].splitlines())
    return node


def _without_redundant_numbers(branches: list[Any]) -> list[Any]:
    """An integer branch with a number branch: the integers' (2.0 is one) or the numbers'."""
    types = [branch.get("type") for branch in branches]
    if "integer" not in types or "number" not in types:
        return branches
    number = branches[types.index("number")]
    if number.get("multipleOf") == 1:  # the integral floats an integer field takes too
        return [branch for branch in branches if branch is not number]
    return [branch for branch in branches if branch.get("type") != "integer"]


def _joined(branches: list[Any]) -> dict[str, Any] | None:
    """One schema for ``branches`` of distinct types, at most one of them constrained."""
    types = [branch.get("type") for branch in branches]
    if len(branches) == 1:
        return dict(branches[0])
    if not all(isinstance(kind, str) for kind in types) or len(set(types)) != len(types):
        return None
    constrained = [branch for branch in branches if set(branch) != {"type"}]
    if len(constrained) > 1 or any(not set(branch) <= _TYPED_KEYWORDS for branch in branches):
        return None
    return {**(constrained[0] if constrained else {}), "type": types}
