"""Errors inside tracing never reach the app: logged once per place, then ignored.

Tests set :data:`RAISE` (``cvtrace.testing`` and the project's conftest do) so that
a bug in cvtrace fails loudly there instead of being logged.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("cvtrace")

RAISE = False
"""Re-raise instead of logging: for tests."""

_reported: set[str] = set()


def internal_error(where: str) -> None:
    """Handle the exception being handled now, raised by cvtrace at ``where``.

    Call from an ``except`` block. Logs it with its traceback the first time for each
    ``where``; re-raises when :data:`RAISE` is set.
    """
    if RAISE:
        raise
    if where not in _reported:
        _reported.add(where)
        logger.exception("cvtrace: %s failed; the app goes on without that span", where)
