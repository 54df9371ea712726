"""How the viewer's answers travel: gzip, and long caching of versioned files.

- **gzip** for HTML, CSS, JavaScript and JSON of 1 KiB or more, when the browser
  accepts it. plotly.min.js goes from 4.8 MB to 1.5 MB, a 100,000-span
  ``waterfall.json`` from 5.5 MB to 1.5 MB. Answers the browser may keep (a
  ``max-age``: versioned files, a trace's ``waterfall.json`` whose link names its
  span count) are the same for the same URL, so their compressed bytes are kept
  too (:class:`_CompressedCache`) and compressed once. Big dynamic answers use a
  fast level (a 100k trace's body: ~70 ms at level 1 for 1.50 MB, ~260 ms at 6 for
  1.37 MB).
- **Versioned static files**: ``url_for("static", filename=...)`` adds
  ``v=<hash of the file>``; an answer whose ``v`` is the file's hash may be kept
  for a year (``immutable``). A changed file is a new URL.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from collections import OrderedDict
from typing import Any

from flask import Flask, Response, current_app, request

__all__ = ["init_app", "static_version"]

COMPRESSIBLE = frozenset(
    {"text/html", "text/css", "text/javascript", "application/javascript", "application/json"}
)
MIN_BYTES = 1024
FAST_ABOVE_BYTES = 1 << 20
"""Dynamic answers above this size are compressed at level 1 (time over ratio)."""
YEAR_S = 365 * 86400


class _CompressedCache:
    """Compressed bodies of cacheable answers by URL, newest kept up to a byte budget."""

    def __init__(self, budget_bytes: int = 32 << 20) -> None:
        self._budget = budget_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            body = self._items.get(key)
            if body is not None:
                self._items.move_to_end(key)
            return body

    def put(self, key: str, body: bytes) -> None:
        if len(body) > self._budget:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes -= len(old) if old is not None else 0
            self._items[key] = body
            self._bytes += len(body)
            while self._bytes > self._budget:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)


_CACHE_KEY = "cvtrace.compressed"
_VERSIONS_KEY = "cvtrace.static_versions"


def static_version(app: Flask, filename: str) -> str:
    """Return the version of a static file: a hash of its bytes (cached by mtime)."""
    folder = app.static_folder or ""
    path = os.path.join(folder, filename)
    versions: dict[str, tuple[int, str]] = app.extensions[_VERSIONS_KEY]
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return ""
    hit = versions.get(path)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    with open(path, "rb") as f:
        digest = hashlib.blake2b(f.read(), digest_size=6).hexdigest()
    versions[path] = (mtime, digest)
    return digest


def _add_static_version(endpoint: str, values: dict[str, Any]) -> None:
    if endpoint == "static" and "filename" in values and "v" not in values:
        version = static_version(current_app._get_current_object(), values["filename"])  # type: ignore[attr-defined]
        if version:
            values["v"] = version


def _accepts_gzip() -> bool:
    return request.accept_encodings.quality("gzip") > 0


def _finish(response: Response) -> Response:
    """Set long caching of versioned static files, then compress if worth it."""
    if (
        request.endpoint == "static"
        and response.status_code == 200
        and request.args.get("v")
        and request.args.get("v")
        == static_version(current_app._get_current_object(), request.view_args["filename"])  # type: ignore[attr-defined,index]
    ):
        response.cache_control.public = True
        response.cache_control.max_age = YEAR_S
        response.cache_control.immutable = True
        response.cache_control.no_cache = None
    if (
        response.status_code != 200
        or response.mimetype not in COMPRESSIBLE
        or "Content-Encoding" in response.headers
        or (response.is_streamed and not response.direct_passthrough)
    ):
        return response
    response.vary.add("Accept-Encoding")
    if not _accepts_gzip():
        return response
    cacheable = bool(response.cache_control.max_age)
    cache: _CompressedCache = current_app.extensions[_CACHE_KEY]
    key = request.full_path
    body = cache.get(key) if cacheable else None
    if body is None:
        response.direct_passthrough = False  # a file: read it
        data = response.get_data()
        if len(data) < MIN_BYTES:
            return response
        static = request.endpoint == "static" or request.path.endswith(".js")
        level = 1 if len(data) > FAST_ABOVE_BYTES and not static else 6
        body = gzip.compress(data, compresslevel=level, mtime=0)
        if cacheable:
            cache.put(key, body)
    else:
        close = getattr(response.response, "close", None)  # a file not read: close it
        if close is not None:
            close()
    response.direct_passthrough = False
    response.set_data(body)
    response.headers["Content-Encoding"] = "gzip"
    if response.headers.get("ETag"):
        etag, weak = response.get_etag()
        if etag:
            response.set_etag(etag + "-gzip", weak=bool(weak))
    return response


def init_app(app: Flask) -> None:
    """Compress the app's answers and version its static files' URLs."""
    app.extensions[_CACHE_KEY] = _CompressedCache()
    app.extensions[_VERSIONS_KEY] = {}
    app.url_defaults(_add_static_version)
    app.after_request(_finish)
