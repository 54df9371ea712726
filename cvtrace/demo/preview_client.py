"""Preview images: asked of the preview service over HTTP, kept with the circuit.

The call goes through ``requests``, which cvtrace instruments: the ``traceparent``
header carries the trace into the preview service, so one trace spans both services.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from flask import Flask

from cvtrace.demo.db import session_factory
from cvtrace.demo.models import Circuit, utcnow

logger = logging.getLogger(__name__)


class PreviewUnavailable(Exception):
    """The preview service did not render the circuit; the message says why."""


def fetch_preview(app: Flask, document: dict[str, Any], title: str) -> str:
    """Ask the preview service to draw ``document``; return the SVG.

    Raises:
        PreviewUnavailable: the service is unreachable, too slow, or refused.
    """
    url = app.config["PREVIEW_URL"].rstrip("/") + "/render"
    try:
        response = requests.post(
            url,
            json={"circuit": document, "title": title},
            timeout=app.config["PREVIEW_TIMEOUT_S"],
        )
    except requests.RequestException as exc:
        msg = f"the preview service at {url} is unreachable ({type(exc).__name__})"
        raise PreviewUnavailable(msg) from exc
    if response.status_code != 200:
        try:
            reason = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            reason = response.text[:200]
        msg = f"the preview service answered {response.status_code}: {reason}"
        raise PreviewUnavailable(msg)
    return response.text


def regenerate_preview(app: Flask, circuit_id: int) -> None:
    """Draw a circuit again and store the drawing (the job queued after create and fork)."""
    with session_factory(app)() as db:
        circuit = db.get(Circuit, circuit_id)
        if circuit is None:
            logger.warning("circuit %d vanished before its preview was drawn", circuit_id)
            return
        document, title = circuit.document, circuit.name
    svg = fetch_preview(app, document, title)  # no connection held during the HTTP call
    with session_factory(app)() as db:
        circuit = db.get(Circuit, circuit_id)
        if circuit is not None:
            circuit.preview_svg = svg
            circuit.preview_updated_at = utcnow()
            db.commit()
    logger.info("preview of circuit %d regenerated (%d bytes)", circuit_id, len(svg))
