"""One trace as one HTML file that opens anywhere: ``cvtrace export`` and the trace page's
"HTML (one file)" download.

The file is the viewer's own trace page, not a copy of it: the same template, scripts,
styles and JSON answers, put in one file. :func:`export_html` builds it like this:

1. The app renders the trace page (Flask's test client: the same routes, templates and
   token check as a browser gets), with :data:`cvtrace.viewer.ui.EXPORT_ENVIRON_KEY` set
   in the request: the page then has no search box or links to the viewer's other pages
   (templates test ``exported``: a piece that leads into the viewer leaves itself out),
   and says what it is: the trace id, services, when and by which cvtrace it was
   exported, and which spans were truncated by a size limit (what their producers
   dropped: :func:`cvtrace.viewer.ui.dropped_counts`).
2. **Every JSON URL the page names as a ``data-*-url`` attribute of ``#trace-header``**
   is requested the same way, and its answer embedded. That is the contract with the
   page's scripts: a script that fetches data reads its URL from such an attribute, and
   the export carries the answer without knowing what it is. A script that adds query
   parameters to the URL gets the answer of the URL as named only for the parameters
   of :data:`SUBSET_PARAMETERS` (``notes.json``'s ``&rows=``: such a route answers
   everything when asked without them); for any other (a search's ``q``) the file has
   no answer, and says so (a 404, logged), rather than answer another question. Every span's
   details (``spans/<id>.json``, which ``details.js`` asks for) are embedded too, built
   by the function the route uses (a request each would cost ~1 ms per span).
3. The scripts and stylesheets the page loads are inlined (deferred scripts at the end
   of the body, in their order); other ``<link>`` elements (the preload) are dropped.
4. ``static/offline.js`` goes first: it answers the page's ``fetch`` calls from the
   embedded answers. A Content-Security-Policy ``<meta>`` allows only the inlined scripts
   (by their hashes), inline styles and ``data:`` images: the file can load nothing, from
   anywhere, whatever it contains.

The answers are embedded as one ``<script type="text/plain">`` block, one ``URL BODY``
line each, read by ``offline.js`` line by line: no parsing of 10 MB of JSON before the
page draws. The spans' details are made while the file is written
(:func:`export_html_chunks`): the download and the command never hold it whole. A
10,000-span trace makes a file of 9-16 MB (0.55-0.67 MB gzipped): BENCHMARKS.md,
section 13.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from html.parser import HTMLParser
from importlib.resources import files
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from cvtrace._version import __version__
from cvtrace.viewer import get_store
from cvtrace.viewer.sources import get_source
from cvtrace.viewer.tracetree import Row

__all__ = [
    "ExportError",
    "TraceNotFound",
    "default_file_name",
    "export_html",
    "export_html_chunks",
]

DATA_BLOCK_ID = "cvtrace-export-data"
SUBSET_PARAMETERS = ("rows", "row")
"""Query parameters a page may add to an embedded URL and still get its answer: they pick
part of it (``notes.json``'s ``rows``) or say where it is (the span details' ``row``).
Any other (a search's ``q``) is not answered from the file: the answer without it is
another question's."""


class ExportError(Exception):
    """The trace page needs something the export cannot embed (a bug, said plainly)."""


class TraceNotFound(LookupError):
    """The store has no trace of that id."""


def default_file_name(trace_id: bytes) -> str:
    """Return the file name of a trace's export (as the download names it)."""
    return f"trace-{trace_id.hex()}.html"


class _Tag:
    """A tag of the page: where it starts and ends in the text, and its attributes."""

    __slots__ = ("attrs", "end", "name", "start")

    def __init__(self, name: str, start: int, end: int, attrs: dict[str, str | None]) -> None:
        self.name = name
        self.start = start
        self.end = end
        self.attrs = attrs


class _PageParts(HTMLParser):
    """The parts of a rendered page the export rewrites, with their offsets."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self._text = text
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._script: _Tag | None = None
        self._inline: list[str] | None = None
        self.scripts: list[_Tag] = []
        """``<script src>`` elements, from the start tag to the end tag's end."""
        self.inline_scripts: list[str] = []
        """The text of the page's own inline scripts that run (the policy must allow them)."""
        self.links: list[_Tag] = []
        self.charset: _Tag | None = None
        self.header: dict[str, str | None] | None = None
        """The attributes of ``#trace-header``."""
        self.body_end = -1
        self.feed(text)
        self.close()

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        start = self._offset()
        found = _Tag(tag, start, start + len(self.get_starttag_text() or ""), dict(attrs))
        if tag == "script" and found.attrs.get("src"):
            self._script = found
        elif tag == "script" and found.attrs.get("type") in (None, "", "text/javascript", "module"):
            self._inline = []
        elif tag == "link":
            self.links.append(found)
        elif tag == "meta" and "charset" in found.attrs:
            self.charset = found
        if found.attrs.get("id") == "trace-header":
            self.header = found.attrs

    def handle_data(self, data: str) -> None:
        if self._inline is not None:
            self._inline.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self._script.end = self._text.index(">", self._offset()) + 1
            self.scripts.append(self._script)
            self._script = None
        elif tag == "script" and self._inline is not None:
            self.inline_scripts.append("".join(self._inline))
            self._inline = None
        elif tag == "body":
            self.body_end = self._offset()


def data_urls(page: str) -> dict[str, str]:
    """Return the ``data-*-url`` attributes of a trace page's ``#trace-header``.

    Raises:
        ExportError: The page has no ``#trace-header``.
    """
    header = _PageParts(page).header
    if header is None:
        msg = "the trace page has no #trace-header element: nothing says what data it loads"
        raise ExportError(msg)
    return {
        name: value
        for name, value in header.items()
        if name.startswith("data-") and name.endswith("-url") and value
    }


def _embeddable(url: str, body: str) -> str:
    """Return a JSON answer as one line that cannot end its ``<script>`` block.

    ``<`` occurs in JSON only inside strings, where ``\\u003c`` means the same.
    """
    if "\n" in body:
        body = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False)
    if " " in url or "\n" in url:
        msg = f"the URL {url!r} has a space or a line break: it cannot be a key of the data"
        raise ExportError(msg)
    return body.replace("<", "\\u003c")


def _script_text(text: str) -> str:
    """Return a script's text safe to inline (no ``</script`` ends the element early).

    Raises:
        ExportError: It holds ``<!--`` or ``<script``, which change how HTML reads the
            rest of a script element.
    """
    if re.search(r"<!--|<script", text, re.IGNORECASE):
        msg = "a script of the trace page holds <!-- or <script: it cannot be inlined as it is"
        raise ExportError(msg)
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE)


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _truncated(row: Row, dropped: Mapping[str, int]) -> dict[str, str]:
    """Return what the page says of a span whose producer dropped data at a size limit."""
    return {
        "id": row.span_id.hex(),
        "name": row.stored.span.name[:200],
        "service": row.stored.service[:200],
        "dropped": ", ".join(f"{n} {kind}" for kind, n in dropped.items()),
    }


def _span_lines(trace_id: bytes, rows: list[Row], page_path: str) -> Iterator[str]:
    """Yield every span's ``spans/<id>.json`` answer as a line of the data block, a few
    hundred spans at a time. Needs a request context."""
    from cvtrace.viewer.ui import span_details_data

    summary = get_source().get_summary(trace_id)
    start_ns = summary.start_ns if summary is not None else min(r.start_ns for r in rows)
    trace_hex = trace_id.hex()
    lines = []
    for row in rows:
        data = span_details_data(
            trace_id,
            row.stored,
            orphan=row.orphan,
            skewed=row.skewed,
            trace_start_ns=start_ns,
            page_url="",  # "Link to this span": ?span=ID, this file at the span (offline.js)
        )
        for link in data["links"]:
            if link["traceId"] != trace_hex:  # another trace: not in this file
                link["stored"], link["url"] = "none", ""
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
        lines.append(f"{page_path}/spans/{data['spanId']}.json {_embeddable('', body)}\n")
        if len(lines) == 256:
            yield "".join(lines)
            lines.clear()
    yield "".join(lines)


def export_html(
    app: Flask,
    trace_id: bytes,
    *,
    base_url: str = "http://localhost/",
    now: datetime | None = None,
) -> str:
    """Return one trace of ``app``'s store as a self-contained HTML page (the chunks of
    :func:`export_html_chunks`, joined)."""
    return "".join(export_html_chunks(app, trace_id, base_url=base_url, now=now))


def export_html_chunks(
    app: Flask,
    trace_id: bytes,
    *,
    base_url: str = "http://localhost/",
    now: datetime | None = None,
) -> Iterator[str]:
    """Return one trace of ``app``'s store as a self-contained HTML page, in chunks.

    Everything that can fail is done before this returns; the spans' details are made
    as the chunks are taken, so the file is never whole in memory (a 100,000-span
    trace's is 90-160 MB).

    Args:
        app: The viewer (:func:`cvtrace.viewer.create_app`); its token, if it has one,
            is sent with the export's own requests.
        trace_id: The trace's 16 bytes.
        base_url: The scheme and host the export's requests name (the viewer's
            ``ALLOWED_HOSTS`` must allow it).
        now: The export time the page states (default: now).

    Raises:
        TraceNotFound: The store has no such trace.
        ExportError: The page names data the app does not answer with JSON.
    """
    from cvtrace.viewer.ui import EXPORT_ENVIRON_KEY, dropped_counts, trace_rows

    trace_hex = trace_id.hex()
    page_path = f"/trace/{trace_hex}"
    with app.test_request_context(page_path, base_url=base_url):
        source = get_source(app)
        where = f"the store {get_store(app).path}" if source.remote is None else source.describe()
        if source.get_summary(trace_id) is None:
            msg = f"trace {trace_hex} is not in {where}"
            raise TraceNotFound(msg)
        try:
            rows = trace_rows(trace_id)
        except HTTPException:  # gone since (retention): as if never there
            msg = f"trace {trace_hex} is not in {where}"
            raise TraceNotFound(msg) from None
    truncated = []
    for row in rows:
        dropped = dropped_counts(row.stored)
        if dropped:
            truncated.append(_truncated(row, dropped))
    moment = now or datetime.now(timezone.utc)
    exported = {
        "at": moment.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "version": __version__,
        "truncated": truncated,
    }
    client = app.test_client()
    token = app.config.get("TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(url: str, what: str) -> tuple[str, str]:
        response = client.get(
            url,
            base_url=base_url,
            headers=headers,
            environ_overrides={EXPORT_ENVIRON_KEY: exported},
        )
        with response:  # a static file's answer holds the file open
            if response.status_code != 200:
                msg = f"{what} ({url}) answered HTTP {response.status_code}; the export needs 200"
                raise ExportError(msg)
            return response.get_data(as_text=True), response.mimetype or ""

    page, _ = get(page_path, "the trace page")
    answers = {}
    for name, url in data_urls(page).items():
        body, mimetype = get(url, f"the trace page's {name}")
        if mimetype != "application/json":
            msg = f"the trace page's {name} ({url}) answered {mimetype}, not JSON"
            raise ExportError(msg)
        answers[url] = body
    before, after = _assemble(page, page_path, get)
    lines = "".join(f"{url} {_embeddable(url, body)}\n" for url, body in answers.items())

    def chunks() -> Iterator[str]:
        yield before
        yield lines
        with app.test_request_context(page_path, base_url=base_url):
            yield from _span_lines(trace_id, rows, page_path)
        yield after

    return chunks()


def _assemble(page: str, page_path: str, get: Any) -> tuple[str, str]:
    """Return the page with its assets inlined and ``offline.js`` in it, cut where the
    data block's lines go (the text before them, and after)."""
    parts = _PageParts(page)
    if parts.charset is None or parts.body_end < 0:
        msg = "the trace page has no <meta charset> or no </body>: cannot place the export's parts"
        raise ExportError(msg)
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), in page order
    hashes: list[str] = []
    deferred: list[str] = []
    for tag in parts.scripts:
        src = str(tag.attrs["src"])
        text, _ = get(src, "a script of the trace page")
        script = _script_text(text)
        hashes.append(_hash(script))
        if "defer" in tag.attrs or "async" in tag.attrs or tag.attrs.get("type") == "module":
            edits.append((tag.start, tag.end, ""))
            deferred.append(f"<script>{script}</script>")
        else:
            edits.append((tag.start, tag.end, f"<script>{script}</script>"))
    for tag in parts.links:
        rel = (tag.attrs.get("rel") or "").split()
        href = tag.attrs.get("href") or ""
        if "stylesheet" in rel:
            text, _ = get(href, "a stylesheet of the trace page")
            if re.search(r"</style", text, re.IGNORECASE):
                msg = f"the stylesheet {href} contains </style: it cannot be inlined"
                raise ExportError(msg)
            edits.append((tag.start, tag.end, f"<style>{text}</style>"))
        elif not href.startswith("data:"):  # a preload: nothing to load offline
            edits.append((tag.start, tag.end, ""))
    shim = _script_text(files("cvtrace.viewer").joinpath("static/offline.js").read_text("utf-8"))
    hashes.insert(0, _hash(shim))
    hashes.extend(_hash(text) for text in parts.inline_scripts)
    policy = (
        "default-src 'none'; script-src "
        + " ".join(hashes)
        + "; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
    )
    head = (
        f'\n<meta http-equiv="Content-Security-Policy" content="{policy}">\n<script>{shim}</script>'
    )
    edits.append((parts.charset.end, parts.charset.end, head))
    out: list[str] = []
    at = 0
    for start, end, text in sorted(edits, key=lambda e: (e[0], e[1])):
        out.append(page[at:start])
        out.append(text)
        at = end
    out.append(page[at : parts.body_end])
    before = "".join(out) + (
        f'<script type="text/plain" id="{DATA_BLOCK_ID}" data-page="{page_path}" '
        f'data-subset="{" ".join(SUBSET_PARAMETERS)}">\n'
    )
    after = "</script>\n" + "\n".join(deferred) + "\n" + page[parts.body_end :]
    return before, after
