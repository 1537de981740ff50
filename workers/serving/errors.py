"""The serving package's errors and their JSON answers.

Every refused request is answered with a 4xx (or 503) and a JSON body that names the field
at fault where there is one::

    {"error": {"status": 400, "code": "invalid_request",
               "message": "ProductsRequest: required field is missing (at $.products[0].title)",
               "field": "$.products[0].title"}}

Never a traceback: an unexpected error is logged with its traceback and answered 500 with
a short message.
"""

from __future__ import annotations

import msgspec
from starlette.responses import Response

from workers.core.errors import ProdcatError
from workers.serving.api import ErrorBody, ErrorResponse

__all__ = ["RequestError", "ServingError", "error_response"]


class ServingError(ProdcatError):
    """Root of the serving package's errors."""


class RequestError(ServingError):
    """A request prodcat serve refuses: HTTP ``status``, a stable ``code``, the ``field``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = msgspec.json.encode(
        ErrorResponse(error=ErrorBody(status=status, code=code, message=message, field=field))
    )
    return Response(body, status, headers=headers, media_type="application/json")
