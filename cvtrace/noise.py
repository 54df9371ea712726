"""Noise filtering: excluded requests make no span, and nothing they call does either.

Vanilla OpenTelemetry's ``excluded_urls`` skips the request's own span but lets a
database query inside ``/up`` become an orphan root span. cvtrace decides at the
outermost WSGI layer instead (:class:`cvtrace.server_spans.TracingMiddleware`): an
excluded request makes no server span and runs under OpenTelemetry's "suppress
instrumentation" context (:data:`SUPPRESSED`), so SQLAlchemy and ``requests`` stand
aside too.

Entries of ``CVTRACE_EXCLUDE_URLS`` match the request path: ``/static/`` (ending in
``/``) excludes everything below it, ``^/api/v\\d+/ping$`` (starting with ``^``) is a
regular expression, anything else (``/up``) matches the path exactly. The standard
``OTEL_PYTHON_FLASK_EXCLUDED_URLS`` / ``OTEL_PYTHON_EXCLUDED_URLS`` (regular
expressions searched in the full URL) are honoured as well.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import context
from opentelemetry.instrumentation.utils import suppress_instrumentation

from .exceptions import CvtraceConfigError


def _suppressed() -> context.Context:
    """The context that OpenTelemetry's ``suppress_instrumentation()`` sets, alone."""
    token = context.attach(context.Context())
    try:
        with suppress_instrumentation():
            return context.get_current()
    finally:
        context.detach(token)


#: The context under which excluded requests run: every instrumentation stands aside.
SUPPRESSED = _suppressed()


class ExcludedUrls:
    """Decide from a WSGI environ whether a request is excluded from tracing.

    Args:
        entries: ``CVTRACE_EXCLUDE_URLS`` entries (see the module docstring).
        environ: where to read the standard OpenTelemetry exclusion variables.

    Raises:
        CvtraceConfigError: an entry is an invalid regular expression or has a comma.
    """

    def __init__(self, entries: Iterable[str], environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        exact: set[str] = set()
        prefixes: list[str] = []
        regexes: list[str] = []
        for entry in entries:
            if entry.startswith("^"):
                _compile("CVTRACE_EXCLUDE_URLS", entry)
                regexes.append(entry)
            elif entry.endswith("/"):
                prefixes.append(entry)
            else:
                exact.add(entry)
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)
        self._path_regex = _compile("CVTRACE_EXCLUDE_URLS", "|".join(regexes)) if regexes else None
        standard = env.get("OTEL_PYTHON_FLASK_EXCLUDED_URLS") or env.get(
            "OTEL_PYTHON_EXCLUDED_URLS"
        )
        self._standard = [part.strip() for part in (standard or "").split(",") if part.strip()]
        self._url_regex = (
            _compile("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "|".join(self._standard))
            if self._standard
            else None
        )

    def excludes_path(self, path: str) -> bool:
        """Whether a request for ``path`` is excluded by ``CVTRACE_EXCLUDE_URLS``."""
        if path in self._exact or path.startswith(self._prefixes):
            return True
        return self._path_regex is not None and self._path_regex.match(path) is not None

    def excludes(self, environ: Mapping[str, Any]) -> bool:
        """Whether the request described by a WSGI ``environ`` is excluded."""
        if self.excludes_path(environ.get("PATH_INFO", "")):
            return True
        return (
            self._url_regex is not None and self._url_regex.search(_full_url(environ)) is not None
        )


def _compile(setting: str, pattern: str) -> re.Pattern[str]:
    if "," in pattern:
        msg = (
            f"{setting}: {pattern!r} contains a comma, which separates entries; "
            "write a literal comma as \\x2c"
        )
        raise CvtraceConfigError(msg)
    try:
        return re.compile(pattern)
    except re.error as error:
        msg = (
            f"{setting}: {pattern!r} is not a valid regular expression ({error}); fix or remove it"
        )
        raise CvtraceConfigError(msg) from None


def _full_url(environ: Mapping[str, Any]) -> str:
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    url = f"{scheme}://{host}{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}"
    query = environ.get("QUERY_STRING")
    return f"{url}?{query}" if query else url
