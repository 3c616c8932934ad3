"""The REST API (``/api/v1``) for integration engines and scripts, with its keys and OpenAPI."""
