"""Log correlation: every log record made inside a span carries its ids.

With tracing on, log records get ``otelTraceID`` and ``otelSpanID`` (``"0"`` outside
a span). :data:`LOG_FORMAT` shows them; :func:`log_formatter` fills them in with
``"0"`` when tracing is off, so one logging set-up works either way::

    handler = logging.StreamHandler()
    handler.setFormatter(cvtrace.log_formatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
"""

from __future__ import annotations

import logging

LOG_FORMAT = (
    "%(asctime)s %(levelname)s [%(name)s] "
    "[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s] %(message)s"
)
_OUTSIDE_A_SPAN = {"otelTraceID": "0", "otelSpanID": "0"}


def log_formatter(fmt: str = LOG_FORMAT) -> logging.Formatter:
    """Return a formatter for :data:`LOG_FORMAT` that works with tracing on or off."""
    return logging.Formatter(fmt, defaults=_OUTSIDE_A_SPAN)
