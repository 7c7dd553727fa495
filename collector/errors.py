"""Error answers: JSON with `code` and `message` (RudderStack's SDK needs both, or it retries
a 4xx as if it were a network error) plus a human `reason`."""

from __future__ import annotations

import orjson
from starlette.responses import Response


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        reason: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason or message
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"success": False, "code": self.code, "message": self.message, "reason": self.reason}

    def response(self) -> Response:
        return json_response(self.body(), self.status, self.headers)


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )
