"""A circuit-sharing site, traced with cvtrace: the project's demo.

``create_app()`` builds the site (service ``circuits``); :mod:`cvtrace.demo.preview_service` is the
second service that draws circuits. ``cvtrace demo`` runs both and drives traffic.
"""

from __future__ import annotations

from cvtrace.demo.app import create_app as create_app

__all__ = ["create_app"]
