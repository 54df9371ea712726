"""Settings, the twelve-factor way: environment variables, then defaults.

=================  ====================================================  =========================
variable           meaning                                               default
=================  ====================================================  =========================
``DATABASE_URL``   SQLAlchemy URL of the app's database                  ``sqlite:///<instance>/circuits.sqlite3``
``PREVIEW_URL``    base URL of the preview service                       ``http://127.0.0.1:8001``
``SECRET_KEY``     signs the session cookie                              random per process (logged)
``PORT``           port ``python -m cvtrace.demo.serve`` listens on   8000 (app), 8001 (preview)
=================  ====================================================  =========================

The service names are ``circuits`` and ``preview`` unless ``OTEL_SERVICE_NAME`` names the
service (a deployment's choice wins over the app's default; see :func:`service_name`).

``create_app(config)`` takes the same keys as a mapping, which win over the environment
(tests use this). ``PREVIEW_TIMEOUT_S`` (default 5) bounds each call to the preview service.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask

logger = logging.getLogger(__name__)

ENV_KEYS = ("DATABASE_URL", "PREVIEW_URL", "SECRET_KEY", "PREVIEW_TIMEOUT_S")


def load_config(app: Flask, config: Mapping[str, Any] | None) -> None:
    """Fill ``app.config`` from the defaults, the environment, then ``config``."""
    app.config.from_mapping(
        DATABASE_URL=f"sqlite:///{os.path.join(app.instance_path, 'circuits.sqlite3')}",
        PREVIEW_URL="http://127.0.0.1:8001",
        PREVIEW_TIMEOUT_S=5.0,
        SECRET_KEY=None,
        MAX_CONTENT_LENGTH=1024 * 1024,  # request bodies above 1 MiB are a 413
    )
    for key in ENV_KEYS:
        if os.environ.get(key):
            app.config[key] = os.environ[key]
    if config:
        app.config.update(config)
    if app.config["DATABASE_URL"].startswith(f"sqlite:///{app.instance_path}"):
        os.makedirs(app.instance_path, exist_ok=True)  # the default file's folder
    try:
        app.config["PREVIEW_TIMEOUT_S"] = float(app.config["PREVIEW_TIMEOUT_S"])
    except ValueError:
        msg = (
            f"PREVIEW_TIMEOUT_S: {app.config['PREVIEW_TIMEOUT_S']!r} is not a number; "
            "set it to seconds, e.g. 5"
        )
        raise ValueError(msg) from None
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = secrets.token_hex(32)
        logger.warning("SECRET_KEY is not set: using a random key; sessions end on restart")


def service_name(default: str) -> str | None:
    """Return the ``service_name`` to give ``cvtrace.init``: ``default``, unless the
    environment names the service.

    An explicit argument to ``cvtrace.init`` wins over ``OTEL_SERVICE_NAME``, as in the
    OpenTelemetry SDK; the demo passes ``None`` when the variable is set so that a
    deployment (the compose file) can rename its services.
    """
    return None if os.environ.get("OTEL_SERVICE_NAME", "").strip() else default
