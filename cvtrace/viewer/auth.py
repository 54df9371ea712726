"""Token access to the viewer.

Without a token (the default, on 127.0.0.1) everything is open to this machine:
``cvtrace view`` then also sets ``ALLOWED_HOSTS`` to the loopback names, so a
web page whose domain is re-pointed at 127.0.0.1 (DNS rebinding) gets 421 and
cannot read traces through the browser. With a token
(``--token`` or ``CVTRACE_VIEWER_TOKEN``), every request needs it:

- UI and API: ``Authorization: Bearer TOKEN``, or a cookie set by a first visit
  to any page with ``?token=TOKEN`` (the viewer then redirects to the same URL
  without the token, so it does not stay in the address bar or history);
- OTLP receivers (HTTP and gRPC): ``Authorization: Bearer TOKEN`` only, which
  SDKs and collectors send with ``OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20TOKEN``
  or the ``headers`` setting of an ``otlphttp`` exporter.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlencode

from flask import Flask, Response, current_app, jsonify, redirect, request
from werkzeug.wrappers import Response as BaseResponse

COOKIE_NAME = "cvtrace_viewer_token"


def token_matches(expected: str, presented: str | None) -> bool:
    """Return whether ``presented`` is the token, in constant time."""
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def bearer_token(authorization: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer`` header value, if any."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def header_authorized(expected: str | None, authorization: str | None) -> bool:
    """Return whether a request with this Authorization header may pass."""
    return expected is None or token_matches(expected, bearer_token(authorization))


def _host_name(host: str) -> str:
    """Return the name part of a ``Host`` header value (no port, no brackets)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check_host() -> BaseResponse | None:
    """Refuse a request whose Host is not in ``ALLOWED_HOSTS`` (if that is set)."""
    allowed: list[str] | None = current_app.config.get("ALLOWED_HOSTS")
    if not allowed:
        return None
    if _host_name(request.host) in allowed:
        return None
    return Response(
        f"This viewer answers only to {', '.join(allowed)} (Host header check, "
        "against DNS rebinding); open it by one of those names.\n",
        status=421,
        mimetype="text/plain",
    )


def _check() -> BaseResponse | None:
    if request.path.startswith("/v1/"):
        return None  # the OTLP receiver checks, answering in OTLP's format
    refused = check_host()
    if refused is not None:
        return refused
    expected: str | None = current_app.config.get("TOKEN")
    if expected is None:
        return None
    if token_matches(expected, bearer_token(request.headers.get("Authorization"))):
        return None
    if token_matches(expected, request.cookies.get(COOKIE_NAME)):
        return None
    if token_matches(expected, request.args.get("token")):
        rest = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
        target = request.path + ("?" + urlencode(rest) if rest else "")
        response = redirect(target, code=303)
        response.set_cookie(
            COOKIE_NAME,
            expected,
            httponly=True,
            samesite="Strict",
            secure=request.is_secure,
        )
        return response
    if request.path.startswith("/api/"):
        response = jsonify(
            data=None,
            total=0,
            limit=0,
            offset=0,
            errors=[{"code": 401, "msg": "a token is required: send Authorization: Bearer"}],
        )
    else:
        response = Response(
            "This viewer needs its token: open it once with ?token=TOKEN "
            "or send Authorization: Bearer TOKEN.\n",
            mimetype="text/plain",
        )
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="cvtrace"'
    return response


def init_app(app: Flask) -> None:
    """Require the configured token on every request of ``app``."""
    app.before_request(_check)
