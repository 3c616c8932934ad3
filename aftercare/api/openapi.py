"""The OpenAPI 3.1 description of ``/api/v1``, served at ``/api/v1/openapi.json``.

tests/test_api.py checks the real answers against it, and schemathesis fuzzes the server with it.
"""

from __future__ import annotations

from typing import Any


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problems(*statuses: int) -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    words = {
        400: "The body is not JSON.",
        401: "No valid API key.",
        403: "The key's role may not do this.",
        404: "No such enrollment.",
        409: "Not possible now (already paused; another enrollment of the procedure is open; "
        "contact details differ from the patient on file: `field`), or a concurrent request.",
        415: "The body is not application/json.",
        422: "A member is missing or wrong (named in `field`).",
        503: "The database is unavailable; retry.",
    }
    return {str(s): {"description": words[s], "content": problem} for s in statuses}


_ENROLLMENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Enrollment"}}}
_ID = {
    "name": "enrollment_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Do this once: a repeat gets the first answer again.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}


def _change(summary: str, body: str, reason_required: bool = False) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [_ID, _IDEMPOTENCY],
            "requestBody": {
                "required": reason_required,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}
                },
            },
            "responses": {
                "200": {"description": "The enrollment after the change.", "content": _ENROLLMENT},
                **_problems(400, 401, 403, 404, 409, 415, 422, 503),
            },
        }
    }


_MESSAGE = {
    "type": "object",
    "required": ["id", "step", "occurrence", "channel", "due_at", "status", "attempts"],
    "properties": {
        "id": {"type": "integer"},
        "step": {"type": "string"},
        "occurrence": {"type": "integer"},
        "channel": {"type": "string", "enum": ["sms", "email"]},
        "due_at": {"type": "string", "format": "date-time"},
        "local_due": {"type": "string"},
        "expires_at": {"type": "string", "format": "date-time"},
        "status": {"type": "string"},
        "attempts": {"type": "integer"},
        "provider_id": _nullable("string"),
        "error_code": _nullable("string"),
        "sent_at": _nullable("string", format="date-time"),
    },
}
_SUMMARY_PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer"},
    "status": {"type": "string", "enum": ["active", "paused", "cancelled", "completed"]},
    "procedure": {"type": "string"},
    "first_name": {"type": "string"},
    "phone": {"type": "string"},
    "timezone": {"type": "string"},
    "language": {"type": "string"},
    "channels": {"type": "array", "items": {"type": "string"}},
    "discharged_at": {"type": "string", "format": "date-time"},
    "external_id": _nullable("string"),
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "aftercare",
        "version": "1",
        "description": "Enroll patients in aftercare reminders and manage their enrollments.",
    },
    "components": {
        "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "field": {"type": "string", "description": "The request member at fault."},
                    "enrollment_id": {"type": "integer", "description": "The one in the way."},
                },
            },
            "EnrollmentRequest": {
                "type": "object",
                "required": ["first_name", "phone", "timezone", "procedure", "discharged_at"],
                "properties": {
                    "first_name": {"type": "string"},
                    "phone": {"type": "string", "description": "E.164, e.g. +15555550123"},
                    "email": {"type": "string"},
                    "timezone": {"type": "string", "description": "IANA, e.g. America/Chicago"},
                    "procedure": {"type": "string", "description": "kyphoplasty, ..."},
                    "discharged_at": {"type": "string", "description": "ISO 8601 with offset"},
                    "language": {"type": "string"},
                    "channels": {
                        "oneOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "string"}},
                        ]
                    },
                    "external_id": {"type": "string", "description": "The MRN."},
                },
            },
            "Reason": {"type": "object", "properties": {"reason": {"type": "string"}}},
            "Reschedule": {
                "type": "object",
                "required": ["discharged_at"],
                "properties": {
                    "discharged_at": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
            "Message": _MESSAGE,
            "EnrollmentSummary": {
                "type": "object",
                "required": ["id", "status", "procedure"],
                "properties": _SUMMARY_PROPERTIES
                | {"messages": {"type": "object", "additionalProperties": {"type": "integer"}}},
            },
            "Enrollment": {
                "type": "object",
                "required": ["id", "status", "procedure", "timezone", "messages", "history"],
                "properties": _SUMMARY_PROPERTIES
                | {
                    "email": _nullable("string"),
                    "status_reason": _nullable("string"),
                    "schedule_version": {"type": "integer"},
                    "message_counts": {
                        "type": "object",
                        "additionalProperties": {"type": "integer"},
                    },
                    "messages": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Message"},
                    },
                    "history": {"type": "array", "items": {"type": "object"}},
                    "pain_scores": {"type": "array", "items": {"type": "object"}},
                    "replies": {"type": "array", "items": {"type": "object"}},
                    "created": {
                        "type": "boolean",
                        "description": "On enroll: false if it existed.",
                    },
                },
            },
        },
    },
    "security": [{"apiKey": []}],
    "paths": {
        "/api/v1/enrollments": {
            "post": {
                "summary": "Enroll a patient (idempotent on the patient, procedure and time).",
                "parameters": [_IDEMPOTENCY],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/EnrollmentRequest"}
                        }
                    },
                },
                "responses": {
                    "201": {"description": "Enrolled.", "content": _ENROLLMENT},
                    "200": {
                        "description": "Enrolled already: nothing changed.",
                        "content": _ENROLLMENT,
                    },
                    **_problems(400, 401, 403, 409, 415, 422, 503),
                },
            }
        },
        "/api/v1/enrollments/{enrollment_id}": {
            "get": {
                "summary": "One enrollment with its messages and history.",
                "parameters": [_ID],
                "responses": {
                    "200": {"description": "The enrollment.", "content": _ENROLLMENT},
                    **_problems(401, 404, 503),
                },
            }
        },
        "/api/v1/enrollments/{enrollment_id}/cancel": _change(
            "Cancel every unsent message.", "Reason", reason_required=True
        ),
        "/api/v1/enrollments/{enrollment_id}/pause": _change("Hold unsent messages.", "Reason"),
        "/api/v1/enrollments/{enrollment_id}/resume": _change("Release held messages.", "Reason"),
        "/api/v1/enrollments/{enrollment_id}/reschedule": _change(
            "Re-plan unsent messages from a corrected discharge time.",
            "Reschedule",
            reason_required=True,
        ),
        "/api/v1/patients": {
            "get": {
                "summary": "The enrollments of the patient with this external id (MRN).",
                "parameters": [
                    {
                        "name": "external_id",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "Newest first; empty when there is no such patient.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/EnrollmentSummary"},
                                }
                            }
                        },
                    },
                    **_problems(401, 422, 503),
                },
            }
        },
    },
}
