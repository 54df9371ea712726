"""Noise filtering: excluded requests make no span, and nothing they call does either.

Vanilla OpenTelemetry's ``excluded_urls`` skips the request's own span but lets a
database query inside ``/up`` become an orphan root span. cvtrace decides at the
outermost WSGI layer instead: an excluded request runs the app *without* the tracing
middleware, under OpenTelemetry's "suppress instrumentation" context, so SQLAlchemy,
``requests`` and the Flask hooks all stand aside.

Entries of ``CVTRACE_EXCLUDE_URLS`` match the request path: ``/static/`` (ending in
``/``) excludes everything below it, ``^/api/v\\d+/ping$`` (starting with ``^``) is a
regular expression, anything else (``/up``) matches the path exactly. The standard
``OTEL_PYTHON_FLASK_EXCLUDED_URLS`` / ``OTEL_PYTHON_EXCLUDED_URLS`` (regular
expressions searched in the full URL) are honoured as well.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from .exceptions import CvtraceConfigError

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_URL_PREFIX = r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*"


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
        self._otel_patterns = [
            *(f"{_URL_PREFIX}{re.escape(path)}(?:[?#]|$)" for path in sorted(exact)),
            *(f"{_URL_PREFIX}{re.escape(prefix)}" for prefix in prefixes),
            *(f"{_URL_PREFIX}(?:{regex.removeprefix('^')})(?:[?#]|$)" for regex in regexes),
            *self._standard,
        ]

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

    def as_otel_excluded_urls(self) -> str:
        """The same exclusions in the comma-separated regex form OpenTelemetry's Flask takes."""
        return ",".join(self._otel_patterns)


class NoiseFilter:
    """WSGI middleware: send excluded requests around the tracing middleware.

    Args:
        traced: the app wrapped by OpenTelemetry's middleware.
        untraced: the same app without it.
        excluded: which requests are noise.
    """

    def __init__(self, traced: WSGIApp, untraced: WSGIApp, excluded: ExcludedUrls) -> None:
        self.traced = traced
        self.untraced = untraced
        self._excluded = excluded
        self._suppressed = context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Serve one request, traced unless excluded."""
        if not self._excluded.excludes(environ):
            return self.traced(environ, start_response)
        token = context.attach(self._suppressed)
        try:
            return self.untraced(environ, start_response)
        finally:
            context.detach(token)


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
