"""The OpenAPI 3.1 document of the public API (``GET /v1/openapi.json``)."""

from functools import cache
from typing import Any


@cache
def document() -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "Kodify API", "version": "0.1.0"}, "paths": {}}
