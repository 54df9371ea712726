"""The single-file HTML export (``exporting.py``) and its download route, without a
browser: what the file holds. ``test_exporting_browser.py`` opens it in Chromium."""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import re
from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path

import pytest
from flask import Flask
from jinja2 import ChoiceLoader, DictLoader

from cvtrace.store import SpanStore
from cvtrace.viewer import create_app
from cvtrace.viewer.exporting import (
    ExportError,
    TraceNotFound,
    export_html,
    export_html_chunks,
)
from tests.viewer.support import SpanSpec, make_request, new_trace_id, simple_trace

HOSTILE = '</script><script>window.pwned=1</script><!--<img src=x onerror="window.pwned=2">'
STATIC = files("cvtrace.viewer") / "static"


@pytest.fixture
def app(store: SpanStore) -> Flask:
    return create_app({"STORE": store, "TESTING": True})


def embedded(page: str) -> dict[str, str]:
    """Return the answers a file embeds, by URL (read as offline.js reads them)."""
    found = re.search(
        r'<script type="text/plain" id="cvtrace-export-data"[^>]*>\n(.*?)</script>',
        page,
        re.DOTALL,
    )
    assert found is not None, "no data block"
    answers = {}
    for line in found.group(1).split("\n"):
        if line:
            url, _, body = line.partition(" ")
            answers[url] = body
    return answers


def header_data_urls(page: str) -> dict[str, str]:
    """Return the data-*-url attributes of a served trace page's #trace-header."""
    header = re.search(r'<section[^>]*id="trace-header"[^>]*>', page)
    assert header is not None
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'(data-[a-z-]+-url)="([^"]*)"', header.group(0))
    }


def inline_scripts(page: str) -> list[str]:
    """Return the text of every script the page runs (not its text/plain data)."""
    return re.findall(r"<script>(.*?)</script>", page, re.DOTALL)


def point_the_trace_page_at_a_missing_url(app: Flask) -> None:
    """Give the app a trace page with one more ``data-*-url``, one that answers 404."""
    source = (files("cvtrace.viewer") / "templates" / "trace.html").read_text()
    broken = source.replace(
        'data-notes-url="{{ notes_url }}"',
        'data-notes-url="{{ notes_url }}" data-nowhere-url="/api/no-such-thing"',
    )
    assert app.jinja_loader is not None
    app.jinja_env.loader = ChoiceLoader([DictLoader({"trace.html": broken}), app.jinja_loader])


class TestTheFile:
    def test_every_data_url_of_the_trace_page_is_embedded(
        self, app: Flask, store: SpanStore
    ) -> None:
        """Each data-*-url of #trace-header is in the file, with the route's own answer."""
        specs = simple_trace(children=3, attrs={"http.request.method": "GET"})
        store.write_request(make_request(specs))
        client = app.test_client()
        page = client.get(f"/trace/{specs[0].trace_id.hex()}").get_data(as_text=True)
        urls = header_data_urls(page)
        assert {"data-figure-url", "data-notes-url"} <= set(urls)
        answers = embedded(export_html(app, specs[0].trace_id))
        for name, url in urls.items():
            assert url in answers, f"{name} ({url}) is not embedded"
            assert answers[url] == client.get(url).get_data(as_text=True), name

    def test_a_new_data_url_is_embedded_without_the_export_knowing_it(
        self, app: Flask, store: SpanStore
    ) -> None:
        """The contract with the trace page's pieces: name a URL on #trace-header, and
        the export carries its answer (here a page whose header names one more)."""
        source = (files("cvtrace.viewer") / "templates" / "trace.html").read_text()
        extended = source.replace(
            'data-notes-url="{{ notes_url }}"',
            'data-notes-url="{{ notes_url }}" data-services-url="/api/services"',
        )
        assert extended != source
        assert app.jinja_loader is not None
        app.jinja_env.loader = ChoiceLoader(
            [DictLoader({"trace.html": extended}), app.jinja_loader]
        )
        specs = simple_trace(service="checkout")
        store.write_request(make_request(specs))
        answers = embedded(export_html(app, specs[0].trace_id))
        assert answers["/api/services"] == app.test_client().get("/api/services").get_data(
            as_text=True
        )
        assert '"checkout"' in answers["/api/services"]

    def test_a_data_url_that_does_not_answer_stops_the_export(
        self, app: Flask, store: SpanStore
    ) -> None:
        point_the_trace_page_at_a_missing_url(app)
        specs = simple_trace()
        store.write_request(make_request(specs))
        with pytest.raises(ExportError, match=r"data-nowhere-url.*/api/no-such-thing.*404"):
            export_html(app, specs[0].trace_id)

    def test_every_fetch_of_the_trace_page_uses_an_embedded_url(
        self, app: Flask, store: SpanStore
    ) -> None:
        """The trace page's scripts fetch only URLs the export embeds: those named on
        #trace-header (header.dataset.*Url), and details.js's span details. A script that
        fetches anything else fails here: name its URL on #trace-header."""
        specs = simple_trace()
        store.write_request(make_request(specs))
        page = app.test_client().get(f"/trace/{specs[0].trace_id.hex()}").get_data(as_text=True)
        named = {
            re.sub(r"-([a-z])", lambda m: m.group(1).upper(), name[5:])
            for name in header_data_urls(page)
        }  # data-figure-url -> figureUrl, as dataset spells it
        scripts = re.findall(r'<script src="/static/([^"?]+)', page)
        assert "waterfall.js" in scripts
        assert "details.js" in scripts
        fetches = 0
        for script in scripts:
            text = (STATIC / script).read_text()
            for call in re.finditer(r"\bfetch\(([^,)]*)", text):
                fetches += 1
                argument = call.group(1).strip()
                read = re.match(r"header\.dataset\.(\w+)", argument)
                if script == "details.js" and argument.startswith('base + "/spans/"'):
                    continue  # every span's details are embedded (exporting._span_answers)
                assert read is not None, f"{script} fetches {argument}, not a #trace-header URL"
                assert read.group(1) in named, f"{script} reads data-…-url {read.group(1)}"
        assert fetches >= 3  # waterfall.json, notes.json, span details: the scan sees them

    def test_span_details_of_every_span_are_embedded(self, app: Flask, store: SpanStore) -> None:
        specs = simple_trace(children=4)
        store.write_request(make_request(specs))
        trace_hex = specs[0].trace_id.hex()
        answers = embedded(export_html(app, specs[0].trace_id))
        client = app.test_client()
        for spec in specs:
            url = f"/trace/{trace_hex}/spans/{spec.span_id.hex()}.json"
            served = client.get(url).get_json()
            served["deepLink"] = f"?span={spec.span_id.hex()}"  # this file, at the span
            assert json.loads(answers[url]) == served

    def test_links_to_other_traces_say_they_are_not_in_the_file(
        self, app: Flask, store: SpanStore
    ) -> None:
        other = simple_trace(children=0)
        trace_id = new_trace_id()
        sibling = SpanSpec("sibling", trace_id)
        span = SpanSpec(
            "linked",
            trace_id,
            links=[
                (other[0].trace_id, other[0].span_id, {}),
                (trace_id, sibling.span_id, {}),
            ],
        )
        store.write_request(make_request([*other, sibling, span]))
        answers = embedded(export_html(app, trace_id))
        details = json.loads(answers[f"/trace/{trace_id.hex()}/spans/{span.span_id.hex()}.json"])
        elsewhere, here = details["links"]
        assert (elsewhere["stored"], elsewhere["url"]) == ("none", "")  # the viewer: "span"
        assert here["stored"] == "span"  # in this trace: the page selects it

    def test_self_contained_with_a_policy_that_allows_only_its_scripts(
        self, app: Flask, store: SpanStore
    ) -> None:
        specs = simple_trace()
        store.write_request(make_request(specs))
        page = export_html(app, specs[0].trace_id)
        # nothing to load: no src, no stylesheet or preload link, no URL of a server
        assert re.search(r"<(script|img|iframe)[^>]*\ssrc=", page) is None
        assert re.findall(r"<link[^>]*>", page) == ['<link rel="icon" href="data:,">']
        assert "http://localhost" not in page
        # the viewer's scripts and styles are in it
        for name in ("theme.js", "viewer.js", "details.js", "waterfall.js", "offline.js"):
            text = (STATIC / name).read_text()
            assert text in page, name
        assert (STATIC / "viewer.css").read_text() in page
        assert 'id="i-chevron"' in page  # base.html's icons
        # the policy: default-src 'none', each script allowed by its hash, and only those
        policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
        assert policy is not None
        assert policy.start() < page.index("<script")  # before anything runs
        directives = dict(d.strip().split(" ", 1) for d in policy.group(1).split(";"))
        assert directives["default-src"] == "'none'"
        scripts = inline_scripts(page)
        hashes = {
            "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
            for s in scripts
        }
        assert set(directives["script-src"].split()) == hashes
        assert len(scripts) == 10  # offline, theme, viewer, details, waterfall, and the analyses'
        assert scripts[0] == (STATIC / "offline.js").read_text()  # first: fetch is answered
        # the page's own deferred scripts run after the body, in their order
        order = [
            page.index((STATIC / n).read_text())
            for n in ("viewer.js", "details.js", "waterfall.js")
        ]
        assert order == sorted(order)
        assert order[0] > page.index('id="waterfall"')

    def test_plotly_inlined_only_when_the_page_loads_it(self, app: Flask, store: SpanStore) -> None:
        """The trace page draws without plotly.js (4.8 MB): not in the file. A trace page
        that loads it gets it inlined (its SVG charts need no 'unsafe-eval', as in the
        viewer); an inline script of the page is allowed by its hash."""
        specs = simple_trace()
        store.write_request(make_request(specs))
        plotly = (files("plotly") / "package_data" / "plotly.min.js").read_text()
        page = export_html(app, specs[0].trace_id)
        assert plotly[:2000] not in page
        assert "'unsafe-eval'" not in page
        source = (files("cvtrace.viewer") / "templates" / "trace.html").read_text()
        with_plotly = source.replace(
            "{% set uses_plotly = false %}", "{% set uses_plotly = true %}"
        ).replace("{% block content %}", "{% block content %}<script>window.own = 1</script>")
        assert with_plotly.count("uses_plotly = true") == 1
        assert app.jinja_loader is not None
        app.jinja_env.loader = ChoiceLoader(
            [DictLoader({"trace.html": with_plotly}), app.jinja_loader]
        )
        page = export_html(app, specs[0].trace_id)
        assert plotly in page
        assert (STATIC / "plotly-config.js").read_text() in page
        policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
        assert policy is not None
        assert "'unsafe-eval'" not in policy.group(1)
        own = "'sha256-" + base64.b64encode(hashlib.sha256(b"window.own = 1").digest()).decode()
        assert own in policy.group(1)

    def test_hostile_values_cannot_end_the_data_block(self, app: Flask, store: SpanStore) -> None:
        specs = simple_trace(root_name=HOSTILE, attrs={"http.route": HOSTILE, HOSTILE: HOSTILE})
        store.write_request(make_request(specs))
        page = export_html(app, specs[0].trace_id)
        # the span's values are in the file only as JSON with < escaped
        assert "<script>window.pwned" not in page
        assert "<!--<img" not in page
        answers = embedded(page)  # still one line per answer, each JSON
        details = json.loads(
            answers[f"/trace/{specs[0].trace_id.hex()}/spans/{specs[0].span_id.hex()}.json"]
        )
        assert details["name"] == HOSTILE
        assert [HOSTILE, HOSTILE] in details["attributes"]

    def test_states_what_it_is_and_what_was_truncated(self, app: Flask, store: SpanStore) -> None:
        specs = simple_trace(service="web", child_service="db", children=2)
        request = make_request(specs)
        dropped = request.resource_spans[1].scope_spans[0].spans[1]
        dropped.dropped_attributes_count = 7
        dropped.dropped_links_count = 1
        store.write_request(request)
        moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        page = export_html(app, specs[0].trace_id, now=moment)
        text = html.unescape(re.sub(r"<[^>]+>", "", page.split("<main>")[1].split("</main>")[0]))
        assert specs[0].trace_id.hex() in text
        assert "web (1)" in text  # the services
        assert "db (2)" in text
        assert "2026-01-02 03:04:05 UTC" in text
        assert "read-only copy" in text
        note = re.search(
            r'<p class="warn export-truncated" id="export-truncated">(.*?)</p>', page, re.DOTALL
        )
        assert note is not None
        assert "1 span(s) were truncated by a size limit" in note.group(1)
        assert f'href="?span={dropped.span_id.hex()}"' in note.group(1)
        assert "db: child 1</a> (7 attributes, 1 links)" in note.group(1)
        # no search box or links into a viewer that is not there
        assert 'id="trace-id-box"' not in page
        assert 'href="/' not in page

    def test_no_truncation_no_note(self, app: Flask, store: SpanStore) -> None:
        specs = simple_trace()
        store.write_request(make_request(specs))
        assert 'id="export-truncated"' not in export_html(app, specs[0].trace_id)

    def test_unknown_trace(self, app: Flask) -> None:
        with pytest.raises(TraceNotFound, match=f"trace {'ab' * 16} is not in the store"):
            export_html(app, bytes.fromhex("ab" * 16))

    def test_chunks_fail_before_the_first_one(self, app: Flask, store: SpanStore) -> None:
        """What can fail fails when the chunks are asked for, before any is written: the
        download answers an error page, the command leaves no file."""
        with pytest.raises(TraceNotFound):
            export_html_chunks(app, bytes.fromhex("ab" * 16))
        specs = simple_trace(children=600)
        store.write_request(make_request(specs))
        chunks = list(export_html_chunks(app, specs[0].trace_id))
        assert len(chunks) > 4  # the spans' details come a few hundred at a time
        assert len(embedded("".join(chunks))) == 6 + 601  # the header's six, every span


class TestRoute:
    def test_the_trace_page_links_the_download(self, app: Flask, store: SpanStore) -> None:
        specs = simple_trace()
        store.write_request(make_request(specs))
        page = app.test_client().get(f"/trace/{specs[0].trace_id.hex()}").get_data(as_text=True)
        link = re.search(r'<a href="([^"]+)" id="download-html" download[^>]*>([^<]+)</a>', page)
        assert link is not None
        assert link.group(1) == f"/trace/{specs[0].trace_id.hex()}/export.html"
        assert "Download as HTML" in page

    def test_download(self, app: Flask, store: SpanStore) -> None:
        specs = simple_trace()
        store.write_request(make_request(specs))
        trace_hex = specs[0].trace_id.hex()
        response = app.test_client().get(f"/trace/{trace_hex}/export.html")
        assert response.status_code == 200
        assert response.mimetype == "text/html"
        assert response.headers["Content-Disposition"] == (
            f'attachment; filename="trace-{trace_hex}.html"'
        )
        assert response.is_streamed  # written as made: a big trace's file is never whole
        page = response.get_data(as_text=True)
        assert f"/trace/{trace_hex}/spans/{specs[1].span_id.hex()}.json" in embedded(page)

    def test_unknown_and_bad_ids(self, app: Flask) -> None:
        client = app.test_client()
        response = client.get(f"/trace/{'ab' * 16}/export.html")
        assert response.status_code == 404
        assert "is not in this viewer" in response.get_data(as_text=True)
        assert client.get("/trace/zzz/export.html").status_code == 404

    def test_a_page_the_export_cannot_carry_is_a_page_that_says_so(
        self, app: Flask, store: SpanStore
    ) -> None:
        point_the_trace_page_at_a_missing_url(app)
        specs = simple_trace()
        store.write_request(make_request(specs))
        response = app.test_client().get(f"/trace/{specs[0].trace_id.hex()}/export.html")
        assert response.status_code == 500
        page = html.unescape(response.get_data(as_text=True))
        assert "This trace cannot be exported as HTML" in page
        assert "data-nowhere-url (/api/no-such-thing) answered HTTP 404" in page

    def test_with_a_token(self, store: SpanStore) -> None:
        """The download needs the token as the others do; the export's own requests
        carry it (without it, the page's data would answer 401 and the export fail)."""
        app = create_app({"STORE": store, "TESTING": True, "TOKEN": "s3cret"})
        specs = simple_trace()
        store.write_request(make_request(specs))
        url = f"/trace/{specs[0].trace_id.hex()}/export.html"
        client = app.test_client()
        assert client.get(url).status_code == 401
        assert client.get(f"/trace/{specs[0].trace_id.hex()}/otlp.json").status_code == 401
        assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        answer = client.get(url, headers={"Authorization": "Bearer s3cret"})
        assert answer.status_code == 200
        assert len(embedded(answer.get_data(as_text=True))) == 6 + 3  # the header's six, the spans
        # the browser's way: ?token= once sets the cookie, then the link works
        assert client.get("/?token=s3cret").status_code == 303
        assert client.get(url).status_code == 200

    def test_allowed_hosts(self, store: SpanStore) -> None:
        """The export's requests name the host the download was asked from."""
        app = create_app({"STORE": store, "TESTING": True, "ALLOWED_HOSTS": ["viewer.test"]})
        specs = simple_trace()
        store.write_request(make_request(specs))
        client = app.test_client()
        url = f"/trace/{specs[0].trace_id.hex()}/export.html"
        assert client.get(url, base_url="http://viewer.test").status_code == 200


def test_the_export_file_is_gzip_friendly(app: Flask, store: SpanStore, tmp_path: Path) -> None:
    """Repeated resources and scripts compress: a 500-span file gzips to under a fifth."""
    trace_id = new_trace_id()
    root = SpanSpec("root", trace_id, duration_ns=10**9)
    specs = [root] + [
        SpanSpec(f"op {i % 20}", trace_id, parent_span_id=root.span_id, attrs={"i": i})
        for i in range(499)
    ]
    store.write_request(make_request(specs))
    data = export_html(app, trace_id).encode()
    assert len(gzip.compress(data)) < len(data) / 5
