"""RFC 9457 problem details: every API error is one JSON object naming what is wrong.

``field`` (an extension member) names the request member at fault, as the CLI's one-line errors
name the flag; ``detail`` never repeats a value the client sent (it may be a phone number).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response

MEDIA_TYPE = "application/problem+json"
BASE = "https://aftercare.invalid/problems/"  # a stable identifier, not a page to fetch

TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid request",
    500: "Internal error",
    503: "Unavailable",
}


class Problem(Exception):
    def __init__(
        self, status: int, kind: str, detail: str, field: str | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.field = field
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": BASE + self.kind,
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
        }
        if self.field:
            body["field"] = self.field
        return body | self.extra


def response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(problem.body()), problem.status, headers or {}, mimetype=MEDIA_TYPE)
