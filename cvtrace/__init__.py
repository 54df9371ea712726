"""cvtrace: OpenTelemetry tracing for Flask + SQLAlchemy apps that costs nothing when off.

Call :func:`init` once with your app and engine; configure with environment variables
(see the README). With no exporter configured, nothing is installed or patched.
"""

from __future__ import annotations

from .api import Handle as Handle
from .api import get_handle as get_handle
from .api import init as init
from .api import shutdown as shutdown
from .exceptions import CvtraceConfigError as CvtraceConfigError
from .logs import LOG_FORMAT as LOG_FORMAT
from .logs import log_formatter as log_formatter
from .processor import ExportStats as ExportStats

__all__ = [
    "LOG_FORMAT",
    "CvtraceConfigError",
    "ExportStats",
    "Handle",
    "get_handle",
    "init",
    "log_formatter",
    "shutdown",
]
