"""The cvtrace trace viewer: a Flask app over the SQLite span store.

``create_app()`` builds the app: the UI (search and trace pages, and the
compare, service map and RED metrics pages), the Jaeger-compatible JSON API and the
analyses under ``/api``, and the OTLP/HTTP receiver at ``/v1/traces``.
``cvtrace view`` (``viewer.cli``) serves it, the receiver again on the OTLP port,
and the gRPC receiver.

Configuration (explicit ``config`` mapping, then ``CVTRACE_VIEWER_*`` variables,
then defaults):

=================================  ==========================================  =====================
key                                meaning                                     default
=================================  ==========================================  =====================
``STORE``                          a :class:`cvtrace.store.SpanStore` to use   none
``DB_PATH``                        store file, when no ``STORE`` is given      ``default_db_path()``
``MAX_SPANS``                      spans the store keeps (0: no limit)         1,000,000
``MAX_AGE_HOURS``                  age after which traces go (0: never)        0
``CHECKPOINT_INTERVAL_S``          WAL checkpoints from a thread, this often   none (SQLite's)
``TOKEN``                          bearer token required by UI, API and OTLP   none
``OTLP_MAX_BODY_BYTES``            largest OTLP body, after decompression      64 MiB
``OTLP_MAX_CONCURRENT_REQUESTS``   OTLP requests decoded at once (others wait, 2
                                   then get 503): bounds their memory
``ALLOWED_HOSTS``                  Host header names answered (others: 421)    any
``IMPORT_MAX_BODY_BYTES``          largest file ``POST /api/import`` takes     256 MiB
``JAEGER_URL``                     a Jaeger query service to read traces from  none
                                   too (:mod:`cvtrace.viewer.remote`)
``JAEGER_HEADERS``                 headers sent to it: ``Name=value,...``      none
                                   (values URL-encoded), or a mapping
``JAEGER_TIMEOUT_S``               how long one answer of it may take          10
``NO_LOCAL``                       show the Jaeger's traces only, not the      false
                                   store's (needs ``JAEGER_URL``)
=================================  ==========================================  =====================

Each key is also read from ``CVTRACE_VIEWER_<KEY>`` (``CVTRACE_VIEWER_JAEGER_URL`` ...);
``cvtrace view`` sets the ``JAEGER_*`` keys and ``NO_LOCAL`` from its ``--jaeger-url``,
``--jaeger-header``, ``--jaeger-timeout`` and ``--no-local`` flags.
The pages read traces through :func:`cvtrace.viewer.sources.get_source`.

``MAX_SPANS``, ``MAX_AGE_HOURS`` and ``CHECKPOINT_INTERVAL_S`` apply to the store the
viewer opens (not to a given ``STORE``), which also indexes the tag keys of
``CVTRACE_STORE_TAG_KEYS`` (:data:`cvtrace.config.SETTINGS`: the ``local`` exporter
reads the same variable, so both writers of a file index the same keys).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app

from cvtrace.config import (
    SETTINGS,
    parse_bool,
    parse_float,
    parse_non_negative_int,
    parse_positive_int,
)
from cvtrace.exceptions import CvtraceConfigError
from cvtrace.exporters.local import default_db_path
from cvtrace.store import DEFAULT_MAX_SPANS, DEFAULT_TAG_KEYS, SpanStore, is_writable

if TYPE_CHECKING:
    from cvtrace.viewer.remote import RemoteOptions

__all__ = [
    "DEFAULT_OTLP_MAX_BODY_BYTES",
    "create_app",
    "create_receiver_app",
    "get_store",
    "remote_options",
    "store_options",
]

DEFAULT_OTLP_MAX_BODY_BYTES = 64 * 1024 * 1024
_STORE_KEY = "cvtrace.store"


def _configure(app: Flask, config: Mapping[str, Any] | None) -> None:
    app.config.from_mapping(
        STORE=None,
        DB_PATH=None,
        TOKEN=None,
        OTLP_MAX_BODY_BYTES=DEFAULT_OTLP_MAX_BODY_BYTES,
        ALLOWED_HOSTS=None,
        OTLP_MAX_CONCURRENT_REQUESTS=None,
        IMPORT_MAX_BODY_BYTES=256 * 1024 * 1024,
        MAX_SPANS=DEFAULT_MAX_SPANS,
        MAX_AGE_HOURS=0,
        CHECKPOINT_INTERVAL_S=None,
        JAEGER_URL=None,
        JAEGER_HEADERS=None,
        JAEGER_TIMEOUT_S=None,
        NO_LOCAL=False,
    )
    app.config.from_prefixed_env("CVTRACE_VIEWER")
    if config:
        app.config.update(config)
    token = app.config.get("TOKEN")
    # from_prefixed_env parses JSON, so a numeric token arrives as an int
    app.config["TOKEN"] = str(token) if token not in (None, "") else None
    app.config["OTLP_MAX_BODY_BYTES"] = parse_positive_int(
        "CVTRACE_VIEWER_OTLP_MAX_BODY_BYTES (--otlp-max-body-bytes)",
        str(app.config["OTLP_MAX_BODY_BYTES"]),
    )
    remote = remote_options(app.config)  # checked before the store is opened
    store = app.config.get("STORE")
    if store is None:
        store = _open_store(app.config)
    app.extensions[_STORE_KEY] = store
    from cvtrace.viewer import sources
    from cvtrace.viewer.remote import JaegerSource

    local = None if remote is not None and remote.no_local else store
    sources.init_app(app, local, JaegerSource(remote) if remote is not None else None)


def remote_options(config: Mapping[str, Any]) -> RemoteOptions | None:
    """Return the remote Jaeger the config names (``JAEGER_*``, ``NO_LOCAL``), or None.

    Raises:
        CvtraceConfigError: A value is malformed, or ``NO_LOCAL`` is set without a URL.
    """
    from cvtrace.viewer.remote import (
        DEFAULT_TIMEOUT_S,
        RemoteOptions,
        parse_env_headers,
        parse_header,
        parse_timeout,
        parse_url,
    )

    raw_no_local = config.get("NO_LOCAL")
    no_local = (
        raw_no_local
        if isinstance(raw_no_local, bool)
        else parse_bool("CVTRACE_VIEWER_NO_LOCAL", str(raw_no_local or "false"))
    )
    raw_url = config.get("JAEGER_URL")
    if not raw_url:
        given = [
            setting
            for setting, value in (
                ("CVTRACE_VIEWER_NO_LOCAL (--no-local)", no_local),
                ("CVTRACE_VIEWER_JAEGER_HEADERS (--jaeger-header)", config.get("JAEGER_HEADERS")),
                (
                    "CVTRACE_VIEWER_JAEGER_TIMEOUT_S (--jaeger-timeout)",
                    config.get("JAEGER_TIMEOUT_S"),
                ),
            )
            if value not in (None, "", False, [])
        ]
        if given:
            msg = (
                f"{given[0]}: set, but there is no Jaeger for it; give --jaeger-url URL "
                "(CVTRACE_VIEWER_JAEGER_URL) too, or leave it out"
            )
            raise CvtraceConfigError(msg)
        return None
    url = parse_url("CVTRACE_VIEWER_JAEGER_URL (--jaeger-url)", str(raw_url))
    raw_headers = config.get("JAEGER_HEADERS")
    name = "CVTRACE_VIEWER_JAEGER_HEADERS (--jaeger-header)"
    if raw_headers is None or raw_headers == "":
        headers: dict[str, str] = {}
    elif isinstance(raw_headers, str):
        headers = parse_env_headers(name, raw_headers)
    elif isinstance(raw_headers, Mapping):
        headers = dict(parse_header(name, f"{k}: {v}") for k, v in raw_headers.items())
    else:  # the command line's list of 'Name: value'
        headers = dict(parse_header(name, str(item)) for item in raw_headers)
    raw_timeout = config.get("JAEGER_TIMEOUT_S")
    timeout_s = (
        DEFAULT_TIMEOUT_S
        if raw_timeout in (None, "")
        else parse_timeout("CVTRACE_VIEWER_JAEGER_TIMEOUT_S (--jaeger-timeout)", raw_timeout)
    )
    return RemoteOptions(url=url, headers=headers, timeout_s=timeout_s, no_local=no_local)


def store_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the viewer's options for its store: its retention, the indexed tag keys.

    ``MAX_SPANS`` and ``MAX_AGE_HOURS`` come from ``config`` (the app's config, which
    ``from_prefixed_env`` filled), else, outside the app (``cvtrace import``), from
    ``CVTRACE_VIEWER_MAX_SPANS`` and ``CVTRACE_VIEWER_MAX_AGE_HOURS``; the tag keys
    from ``CVTRACE_STORE_TAG_KEYS``, the row the ``local`` exporter reads too.

    Raises:
        CvtraceConfigError: a value is malformed.
    """

    def text(key: str, default: object) -> str:
        value = config.get(key)
        if value is None:
            value = os.environ.get(f"CVTRACE_VIEWER_{key}", "").strip() or default
        return str(value)  # from_prefixed_env parses JSON: numbers arrive as numbers

    max_spans = parse_non_negative_int(
        "CVTRACE_VIEWER_MAX_SPANS", text("MAX_SPANS", DEFAULT_MAX_SPANS)
    )
    max_age_hours = parse_float("CVTRACE_VIEWER_MAX_AGE_HOURS", text("MAX_AGE_HOURS", 0))
    (tag_keys,) = (s for s in SETTINGS if s.env_var == "CVTRACE_STORE_TAG_KEYS")
    extra_keys = tag_keys.parse(tag_keys.env_var, os.environ.get(tag_keys.env_var, ""))
    return {
        "max_spans": max_spans,
        "max_age_s": max_age_hours * 3600.0,
        "tag_keys": DEFAULT_TAG_KEYS.union(extra_keys),
    }


def _open_store(config: Mapping[str, Any]) -> SpanStore:
    """Open the store the viewer's config names, with the viewer's own retention.

    A store this user cannot write is opened read-only: searches and pages work,
    the OTLP receivers refuse spans with a status that says why.

    Raises:
        CvtraceConfigError: a setting is malformed, or the file is no store.
    """
    path = Path(config.get("DB_PATH") or default_db_path())
    return SpanStore(
        path,
        **store_options(config),
        checkpoint_interval_s=config.get("CHECKPOINT_INTERVAL_S"),
        # a store this user cannot write is shown, not written (OTLP gets 403)
        read_only=path.exists() and not is_writable(path),
    )


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-src 'none'; worker-src 'none'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
"""Nothing leaves for another origin: scripts, styles, images, fetches and form
posts go to the viewer only, and no frame or worker is loaded at all. No inline
scripts: an escaping mistake still could not run injected script. plotly.js
(the analysis pages' charts) adds inline styles (``'unsafe-inline'`` for styles
only). No ``'unsafe-eval'``: the charts are SVG traces, no WebGL (whose regl code
needs it). The browser tests' ``wait_for_function`` predicates are written as
functions (``"() => ..."``): Playwright evaluates a bare expression string in the
page, which this policy refuses."""


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def get_store(app: Flask | None = None) -> SpanStore:
    """Return the span store of ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    store: SpanStore = target.extensions[_STORE_KEY]
    return store


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the viewer: UI, Jaeger JSON API and OTLP/HTTP receiver.

    Args:
        config: Overrides of the settings in the module docstring.
    """
    from cvtrace.viewer import (
        analyses_api,
        analyses_ui,
        auth,
        jaeger_api,
        receiver,
        transfer,
        ui,
        uploads,
    )

    app = Flask(__name__)
    _configure(app, config)
    auth.init_app(app)
    transfer.init_app(app)
    app.after_request(_security_headers)
    app.register_blueprint(receiver.bp)
    app.register_blueprint(jaeger_api.bp)
    app.register_blueprint(uploads.bp)
    app.register_blueprint(analyses_api.bp)
    app.register_blueprint(ui.bp)
    app.register_blueprint(analyses_ui.bp)
    return app


def create_receiver_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build an app that only receives OTLP/HTTP (for the OTLP port)."""
    from cvtrace.viewer import auth, receiver

    app = Flask(__name__)
    _configure(app, config)
    auth.init_app(app)
    app.register_blueprint(receiver.bp)
    return app
