"""Reading and checking what a request sends: body, query arguments, wanted format.

Everything here raises :class:`werkzeug.exceptions.BadRequest` with a message that says
which field is wrong and what is expected.
"""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest


def wants_json() -> bool:
    """Whether to answer in JSON: a JSON body, or JSON preferred over HTML in ``Accept``."""
    if request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def body() -> dict[str, Any]:
    """Return the request's fields: a JSON object, or the submitted form."""
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            msg = "the request body must be a JSON object"
            raise BadRequest(msg)
        return data
    return request.form.to_dict()


def text_field(data: dict[str, Any], name: str, *, max_length: int, required: bool) -> str:
    """Return a stripped string field, checked for presence and length."""
    value = data.get(name, "")
    if not isinstance(value, str):
        msg = f"{name} must be a string"
        raise BadRequest(msg)
    value = value.strip()
    if required and not value:
        msg = f"{name} is required"
        raise BadRequest(msg)
    if len(value) > max_length:
        msg = f"{name} is too long ({len(value)} characters, at most {max_length})"
        raise BadRequest(msg)
    return value


def int_arg(name: str, default: int, *, low: int, high: int) -> int:
    """Return a query argument as an int within [low, high]."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        msg = f"{name} must be an integer, got {raw!r}"
        raise BadRequest(msg) from None
    if not low <= value <= high:
        msg = f"{name} must be between {low} and {high}, got {value}"
        raise BadRequest(msg)
    return value
