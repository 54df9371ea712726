"""Server spans for Flask apps: one WSGI middleware, outermost, as lean as it can be.

For each request the middleware either

- finds it excluded (:class:`cvtrace.noise.ExcludedUrls`) and runs the app under
  OpenTelemetry's "suppress instrumentation" context, so that neither the request nor
  anything it calls (a query in ``/up``) makes a span; or
- extracts the caller's context (W3C ``traceparent`` by default, per
  ``OTEL_PROPAGATORS``), starts a ``SERVER`` span with the stable HTTP attributes, and
  names it ``"{method} {route}"`` from Flask's matched URL
  rule and records the status code; an exception Flask turned into a 500 becomes an
  ``exception`` event and an error status, with ``error.type`` the status code as the
  conventions ask (the exception's type when it left the app before any status).

OpenTelemetry's Flask instrumentation does the same through a WSGI wrapper plus
``before_request``/``teardown_request`` hooks, computing the request URL three times and
updating metrics on every request; this middleware costs a fraction of that (see
BENCHMARKS.md). Attributes follow the stable HTTP server conventions:
``http.request.method``, ``url.scheme``, ``url.path``, ``url.query``, ``server.address``,
``server.port``, ``client.address``, ``user_agent.original``,
``network.protocol.version``, ``http.route``, ``http.response.status_code``,
``error.type``; request and response headers named in
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``/``_RESPONSE`` are captured
as ``http.request.header.*``/``http.response.header.*``. ``tests/library/test_drift.py``
compares these spans with OpenTelemetry's Flask instrumentation's and lists every
difference.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._guard import internal_error
from .noise import SUPPRESSED, ExcludedUrls
from .span_errors import error_message, is_statement_error, record_error

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
_REQUEST_HEADERS_VAR = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"
_RESPONSE_HEADERS_VAR = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"


class _EnvironGetter(Getter[Mapping[str, Any]]):
    """Read propagation headers (``traceparent``...) from a WSGI environ."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return [value] if value is not None else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_GETTER = _EnvironGetter()
_FLASK_REQUEST: list[Any] = []
"""``flask.request``, imported by the first middleware (cvtrace imports Flask only then)."""
_NO_PARENT = context.Context()  # what extract() returns from a request with no headers


class TracingMiddleware:
    """Trace a Flask app's requests, except excluded ones, which trace nothing.

    Args:
        app: the Flask app (for its ``got_request_exception`` signal).
        wsgi_app: the app's WSGI callable being wrapped.
        tracer: the tracer that makes the server spans.
        excluded: which requests are noise.
    """

    def __init__(
        self, app: Any, wsgi_app: WSGIApp, tracer: trace.Tracer, excluded: ExcludedUrls
    ) -> None:
        from flask import got_request_exception, request

        if not _FLASK_REQUEST:
            _FLASK_REQUEST.append(request)
        self.app = app
        self.wsgi_app = wsgi_app
        self._tracer = tracer
        self._excluded = excluded
        self._propagator: object = None
        self._propagation_keys: tuple[str, ...] = ()
        self._request_headers = _header_names(_REQUEST_HEADERS_VAR)
        self._response_headers = {
            name.lower(): f"http.response.header.{name.lower().replace('-', '_')}"
            for name in _header_names(_RESPONSE_HEADERS_VAR)
        }
        # First of the app's before_request functions, so that no other one can answer
        # before it runs; cheaper per request than a receiver of request_started.
        self._made_funcs_list = None not in app.before_request_funcs
        app.before_request_funcs.setdefault(None, []).insert(0, _record_route)
        got_request_exception.connect(_record_exception, app, weak=False)

    def disconnect(self) -> None:
        """Stop hooking into the app's requests."""
        from flask import got_request_exception

        funcs = self.app.before_request_funcs.get(None, [])
        if _record_route in funcs:
            funcs.remove(_record_route)
        if self._made_funcs_list and not funcs:
            self.app.before_request_funcs.pop(None, None)
        got_request_exception.disconnect(_record_exception, self.app)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Serve one request, traced unless excluded."""
        if self._excluded.excludes(environ):
            token = context.attach(SUPPRESSED)
            try:
                return self.wsgi_app(environ, start_response)
            finally:
                context.detach(token)

        try:
            parent = self._parent_context(environ)
            method = environ.get("REQUEST_METHOD", "GET")
            attributes = self._request_attributes(environ, method)
            span = self._tracer.start_span(
                method if method in KNOWN_METHODS else "HTTP",
                parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
            )
            token = context.attach(trace.set_span_in_context(span, parent))
        except Exception:
            internal_error("starting a server span")
            return self.wsgi_app(environ, start_response)
        status_code = 0

        def traced_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            nonlocal status_code
            status_code = int(status[:3]) if status[:3].isdigit() else 0
            if self._response_headers:
                try:
                    self._capture_response_headers(span, headers)
                except Exception:
                    internal_error("capturing response headers")
            return start_response(status, headers, exc_info)

        try:
            result = self.wsgi_app(environ, traced_start_response)
        except BaseException as error:
            # No status was sent: the exception's type is the error (the conventions).
            try:
                _record_error(span, error)
                span.set_attribute("error.type", type(error).__qualname__)
                span.end()
            except Exception:
                internal_error("failing a server span")
            raise
        finally:
            context.detach(token)
        try:
            self._finish(span, status_code)
        except Exception:
            internal_error("ending a server span")
        return result

    def _parent_context(self, environ: Mapping[str, Any]) -> context.Context:
        """The caller's context, if the request carries one the propagator reads."""
        propagator = propagate.get_global_textmap()
        if propagator is not self._propagator:
            self._propagator = propagator
            self._propagation_keys = tuple(
                "HTTP_" + field.upper().replace("-", "_") for field in propagator.fields
            )
        if not any(key in environ for key in self._propagation_keys):
            return _NO_PARENT  # nothing to extract (most requests); extract() costs more
        return propagate.extract(environ, getter=_GETTER)

    def _request_attributes(self, environ: Mapping[str, Any], method: str) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "http.request.method": method if method in KNOWN_METHODS else "_OTHER",
            "url.scheme": environ.get("wsgi.url_scheme", "http"),
            "url.path": environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
        }
        if method not in KNOWN_METHODS:
            attributes["http.request.method_original"] = method
        query = environ.get("QUERY_STRING")
        if query:
            attributes["url.query"] = query
        name, port = _split_host(environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""))
        attributes["server.address"] = name
        port = port or str(environ.get("SERVER_PORT", ""))
        if port.isdigit():
            attributes["server.port"] = int(port)
        client = environ.get("REMOTE_ADDR")
        if client:
            attributes["client.address"] = client
        user_agent = environ.get("HTTP_USER_AGENT")
        if user_agent:
            attributes["user_agent.original"] = user_agent
        protocol = environ.get("SERVER_PROTOCOL", "")
        if protocol.startswith("HTTP/"):
            attributes["network.protocol.version"] = protocol[5:]
        for name in self._request_headers:
            value = environ.get("HTTP_" + name.upper().replace("-", "_"))
            if value is not None:
                attributes[f"http.request.header.{name.lower().replace('-', '_')}"] = [value]
        return attributes

    def _capture_response_headers(self, span: trace.Span, headers: list[tuple[str, str]]) -> None:
        for name, value in headers:
            key = self._response_headers.get(name.lower())
            if key is not None:
                span.set_attribute(key, [value])

    @staticmethod
    def _finish(span: trace.Span, status_code: int) -> None:
        if status_code:
            span.set_attribute("http.response.status_code", status_code)
            if status_code >= 500:
                # A status was sent: it is the error, even when an exception led to it.
                span.set_attribute("error.type", str(status_code))
                if not _has_error_status(span):
                    span.set_status(Status(StatusCode.ERROR))
        span.end()


def _record_route() -> None:
    """Flask matched the request to a URL rule: name the server span after it."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    try:
        # the request itself, not the proxy: each attribute read through the proxy is
        # a look-up of its own; and the proxy imported once (a `from flask import` here
        # ran importlib's `_handle_fromlist` on every request)
        request = _FLASK_REQUEST[0]._get_current_object()
        rule = request.url_rule
        if rule is not None:
            method = request.method
            route = rule.rule
            span.update_name(f"{method if method in KNOWN_METHODS else 'HTTP'} {route}")
            span.set_attribute("http.route", route)
    except Exception:
        internal_error("naming a server span after its route")


def _record_exception(sender: Any, exception: BaseException, **extra: Any) -> None:
    """Flask handled an exception (it will answer 500): record it on the server span."""
    try:
        span = trace.get_current_span()
        if span.is_recording():
            _record_error(span, exception)
    except Exception:
        internal_error("recording an exception on a server span")


def _record_error(span: trace.Span, error: BaseException) -> None:
    """Record ``error`` on ``span``; SQLAlchemy's without the statement's values."""
    record_error(span, error, error_message(error) if is_statement_error(error) else None)


def _has_error_status(span: trace.Span) -> bool:
    status = getattr(span, "status", None)
    return status is not None and status.status_code is StatusCode.ERROR


def _split_host(host: str) -> tuple[str, str]:
    """Split ``host[:port]`` (IPv6 in brackets) into name and port."""
    if host.rfind(":") > host.rfind("]"):
        name, _, port = host.rpartition(":")
        return name, port
    return host, ""


def _header_names(variable: str) -> list[str]:
    return [name.strip() for name in os.environ.get(variable, "").split(",") if name.strip()]
