"""Helpers shared by the demo's tests."""

from __future__ import annotations

from typing import Any

from werkzeug.test import TestResponse


def json_body(response: TestResponse) -> Any:
    """Return the response's JSON body, failing the test if it has none."""
    body = response.json
    assert body is not None, response.data
    return body
