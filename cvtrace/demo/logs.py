"""Logs to stdout, each line with the trace and span ids cvtrace puts on log records."""

from __future__ import annotations

import logging
import sys

import cvtrace


def configure_logging(level: int = logging.INFO) -> None:
    """Send log records to stdout in ``cvtrace.LOG_FORMAT``, unless logging is set up already.

    Records made outside a span (or with tracing off) show ids of ``0``.

    A process that configured logging itself (gunicorn with a log config, pytest's
    capture) keeps its handlers.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(cvtrace.log_formatter())
    root.addHandler(handler)
    root.setLevel(level)
