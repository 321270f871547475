"""The management API's schema documents its error answers (a drf-spectacular hook).

drf-spectacular documents what a view returns on success; the framework's own refusals
are left out.  Every operation here can answer:

* 401 ``{"detail": …}``: no session and no admin API key, or a wrong key;
* 403 ``{"detail": …}``: a console account whose role may not do that;
* 404 ``{"detail": …}``: an id (in the path) that names nothing;
* 400, the fields' errors (``{"username": ["…"]}``, ``{"non_field_errors": […]}``): a
  write that is refused, or a list's filter with a value it does not take; or
  ``{"detail": …}`` for a body that is not JSON.

:func:`add_error_responses` adds those that apply, and leaves any an operation
documents itself.
"""

from __future__ import annotations

from typing import Any

ERROR_DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
FIELD_ERRORS = {
    "type": "object",
    "description": "The refused fields (or `non_field_errors`), each with its messages; a "
    "list field's messages are keyed by the item's index.",
    "additionalProperties": {
        "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}]
    },
}

BAD_REQUEST = {
    "anyOf": [
        {"$ref": "#/components/schemas/FieldErrors"},
        {"$ref": "#/components/schemas/ErrorDetail"},
    ]
}

_WRITES = frozenset({"post", "put", "patch"})
_METHODS = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "trace"})


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def add_error_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorDetail", ERROR_DETAIL)
    schemas.setdefault("FieldErrors", FIELD_ERRORS)
    schemas.setdefault("BadRequest", BAD_REQUEST)
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            has_id = any(p.get("in") == "path" for p in operation.get("parameters", ()))
            has_id = has_id or "{" in path
            errors: dict[str, dict[str, Any]] = {}
            if (method in _WRITES and "requestBody" in operation) or (
                method == "get" and not has_id
            ):
                errors["400"] = _answer(
                    "Refused: the fields' errors (or the filter's), or a body that is not JSON.",
                    "BadRequest",
                )
            if operation.get("security") != []:
                errors["401"] = _answer(
                    "Not logged in to the console, and no valid admin API key.", "ErrorDetail"
                )
                errors["403"] = _answer(
                    "The console account's role may not do this (auditors only read).",
                    "ErrorDetail",
                )
            if has_id:
                errors["404"] = _answer("No such object.", "ErrorDetail")
            responses = operation.setdefault("responses", {})
            for status, answer in errors.items():
                responses.setdefault(status, answer)
    return result
