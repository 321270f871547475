"""The management API's error bodies always have one of the two documented shapes.

DRF answers a refusal with ``{"detail": …}`` or with the fields' errors, except where a
validator raises a bare list (a filter's value, e.g. a NUL in ``?search=``): that list
becomes ``{"non_field_errors": […]}``, as a serializer's own non-field errors are.
"""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):
        response.data = {"non_field_errors": response.data}
    return response
