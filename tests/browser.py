"""Debian's Chromium driven by Playwright, as every browser test and benchmark runs it.

Playwright's own browsers cannot be downloaded here, so it launches ``/usr/bin/chromium``
headless. :class:`Recorder` keeps what a page asked for and what went wrong in it; the
fixtures built on it (``browser``, ``recorder``, ``page``) are in ``tests/conftest.py``;
Chromium's path and flags are the benchmarks' (:mod:`bench.common`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Page

# A function, not an expression: Playwright evaluates an expression with eval, which
# the viewer's Content-Security-Policy forbids. Null-safe: a navigation may be between
# documents when it runs.
READY = "() => document.body?.dataset.waterfallReady === '1'"
"""True once a trace page has drawn its waterfall."""


class Recorder:
    """Every request a browser context makes, and every console error of its pages."""

    def __init__(self, context: BrowserContext) -> None:
        self.urls: list[str] = []
        self.errors: list[str] = []
        self.expected: list[str] = []
        """Pages a test expects to answer 4xx (Chromium logs those as console errors)."""
        context.on("request", lambda request: self.urls.append(request.url))
        context.on("page", self.watch)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        # console errors include Content-Security-Policy violations
        page.on("console", self.console)

    def console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        url = msg.location.get("url", "")
        if msg.text.startswith("Failed to load resource") and any(e in url for e in self.expected):
            return
        self.errors.append(msg.text)

    def elsewhere(self, origin: str) -> list[str]:
        """Return the requests to any origin but ``origin`` (data: and blob: are local)."""
        return [
            url
            for url in self.urls
            if urlsplit(url).scheme not in ("data", "blob", "about")
            and f"{urlsplit(url).scheme}://{urlsplit(url).netloc}" != origin
        ]
