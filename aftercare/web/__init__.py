"""The web side: one Flask app (``create_app``) with a blueprint per area."""

from aftercare.web.app import create_app

__all__ = ["create_app"]
