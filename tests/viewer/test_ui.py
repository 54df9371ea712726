"""The server-rendered pages, the downloads and the span details endpoint."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from cvtrace.store import SpanStore, spans_to_traces_data
from cvtrace.viewer import create_app
from cvtrace.viewer.figures import service_color
from tests.viewer.support import T0_NS, SpanSpec, make_request, new_trace_id, simple_trace

HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
HOSTILE_ESCAPED = html.escape(HOSTILE)


@pytest.fixture
def client(store: SpanStore) -> FlaskClient:
    return create_app({"STORE": store, "TESTING": True}).test_client()


def hostile_trace() -> list[SpanSpec]:
    trace_id = new_trace_id()
    root = SpanSpec(
        HOSTILE,
        trace_id,
        service=f"svc{HOSTILE}",
        duration_ns=20_000_000,
        attrs={"http.route": HOSTILE, HOSTILE: HOSTILE},
        events=[(HOSTILE, T0_NS + 5, {"k": HOSTILE})],
    )
    child = SpanSpec("child", trace_id, parent_span_id=root.span_id, start_ns=T0_NS + 1000)
    return [root, child]


def scatter(page: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="durations-data">(.*?)</script>', page)
    assert found is not None
    data: dict[str, object] = json.loads(found.group(1))
    return data


def result_names(page: str) -> list[str]:
    return re.findall(r'class="trace-link trunc"[^>]*>(?:<span[^>]*></span>)?([^<]*)</a>', page)


class TestSearchPage:
    @pytest.mark.parametrize(
        ("query", "name"),
        [
            ("lookback=999999999999999d", "time range"),
            ("from=9999-12-31T23:59", "from"),
            ("from=0001-01-01T00:00%2B14:00", "from"),
            ("to=1969-12-31T00:00", "to"),
            ("min_duration=" + "9" * 400 + "h", "min duration"),
            ("limit=" + "9" * 5000, "limit"),
        ],
    )
    def test_out_of_range_is_the_page_with_its_error(
        self, client: FlaskClient, query: str, name: str
    ) -> None:
        """Issue 11, 4: these were 500s; now the search page says what is wrong."""
        response = client.get(f"/?{query}")
        assert response.status_code == 400
        page = response.get_data(as_text=True)
        error = re.search(r'id="search-error">([^<]*)<', page)
        assert error is not None
        assert html.unescape(error.group(1)).startswith(f"{name}: ")
        assert "out of range" in error.group(1) or "not a number" in error.group(1)

    def test_lists_results_with_summary(self, client: FlaskClient, store: SpanStore) -> None:
        store.write_request(make_request(simple_trace("web", child_service="db", error=True)))
        page = client.get("/").get_data(as_text=True)
        assert "web: GET /" in page
        assert "db (2)" in page
        assert "web (1)" in page
        assert 'class="trace-link trunc"' in page
        assert "1 trace found" in page
        # the same colour as on the trace page: from the service's name
        assert f"border-color: {service_color('db')}" in page
        assert scatter(page)["color"] == [service_color("web")]
        # the search page draws its own scatter: no plotly.js (4.8 MB) to load
        assert "plotly.min.js" not in page

    def test_filters(self, client: FlaskClient, store: SpanStore) -> None:
        store.write_request(make_request(simple_trace("web", root_name="GET /a")))
        store.write_request(make_request(simple_trace("api", root_name="GET /b", error=True)))
        page = client.get("/?service=api").get_data(as_text=True)
        assert "api: GET /b" in page
        assert "web: GET /a" not in page
        page = client.get("/?errors=1").get_data(as_text=True)
        assert "api: GET /b" in page
        assert "web: GET /a" not in page
        page = client.get("/?tags=span.kind%3Dserver+error%3Dtrue").get_data(as_text=True)
        assert "api: GET /b" in page
        assert "web: GET /a" not in page
        page = client.get("/?min_duration=1s").get_data(as_text=True)
        assert "No traces match" in page

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("min_duration=abc", "min duration: &#39;abc&#39; is not a duration"),
            ("max_duration=2 s", "max duration: &#39;2 s&#39; is not a duration"),
            ("lookback=soon", "time range: &#39;soon&#39; is not a duration"),
            ("limit=many", "limit: &#39;many&#39; is not a number"),
            ("limit=-5", "limit: &#39;-5&#39; is out of range; expected 1 to 1000"),
            ("limit=0", "limit: &#39;0&#39; is out of range; expected 1 to 1000"),
            ("limit=1001", "limit: &#39;1001&#39; is out of range; expected 1 to 1000"),
            ("tags=nokey", "tags: &#39;nokey&#39; is not key=value"),
            ("from=yesterday", "from: &#39;yesterday&#39; is not a date and time"),
            ("sort=random", "sort: &#39;random&#39; is not one of newest, oldest"),
            ("operation=GET+%2F", "operation: choose a service too"),
        ],
    )
    def test_bad_input_gets_its_message_not_no_traces(
        self, client: FlaskClient, store: SpanStore, query: str, message: str
    ) -> None:
        store.write_request(make_request(simple_trace("web")))
        response = client.get(f"/?{query}")
        assert response.status_code == 400
        page = response.get_data(as_text=True)
        assert message in page
        assert 'id="search-error"' in page
        assert "No traces match" not in page
        assert "traces found" not in page

    def test_operation_with_its_service(self, client: FlaskClient, store: SpanStore) -> None:
        store.write_request(make_request(simple_trace("web", root_name="GET /a")))
        store.write_request(make_request(simple_trace("web", root_name="GET /b")))
        page = client.get("/?service=web&operation=GET+%2Fb").get_data(as_text=True)
        assert result_names(page) == ["web: GET /b"]

    def test_sorting(self, client: FlaskClient, store: SpanStore) -> None:
        for i, (duration_ms, children, error) in enumerate(
            [(30, 1, False), (10, 5, True), (20, 3, False)]
        ):
            specs = simple_trace(
                "web", start_ns=T0_NS + i * 10**9, children=children, root_name=f"t{i}"
            )
            specs[0].duration_ns = duration_ms * 1_000_000
            specs[-1].error = error
            store.write_request(make_request(specs))
        orders = {
            "": ["t2", "t1", "t0"],
            "newest": ["t2", "t1", "t0"],
            "oldest": ["t0", "t1", "t2"],
            "longest": ["t0", "t2", "t1"],
            "shortest": ["t1", "t2", "t0"],
            "spans": ["t1", "t2", "t0"],
            "errors": ["t1", "t2", "t0"],  # ties stay newest first
        }
        for sort, expected in orders.items():
            page = client.get(f"/?sort={sort}").get_data(as_text=True)
            assert result_names(page) == [f"web: {name}" for name in expected], sort
        page = client.get("/?sort=longest&service=web").get_data(as_text=True)
        # the header's links sort and keep the other fields
        assert 'href="/?sort=shortest&amp;service=web"' in page or (
            'href="/?service=web&amp;sort=shortest"' in page
        )

    def test_says_when_the_limit_cut_the_list(self, client: FlaskClient, store: SpanStore) -> None:
        for i in range(3):
            store.write_request(make_request(simple_trace(start_ns=T0_NS + i)))
        page = client.get("/?limit=2").get_data(as_text=True)
        assert len(result_names(page)) == 2
        assert "2 traces shown" in page
        assert "the limit (2) cut the list" in page
        page = client.get("/?limit=3").get_data(as_text=True)
        assert "3 traces found" in page
        assert "cut the list" not in page

    def test_operation_list_waits_for_a_service(self, client: FlaskClient) -> None:
        page = client.get("/").get_data(as_text=True)
        assert re.search(r'<select name="operation" id="operation-select" disabled', page)

    def test_hostile_values_escaped(self, client: FlaskClient, store: SpanStore) -> None:
        store.write_request(make_request(hostile_trace()))
        page = client.get("/").get_data(as_text=True)
        assert "<script>window.pwned" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
        # the scatter's data: JSON inside <script>, with < > & as \u escapes
        assert "\\u003cscript\\u003e" in page
        assert scatter(page)["name"] == [HOSTILE]

    def test_trace_id_box_on_every_page(self, client: FlaskClient, store: SpanStore) -> None:
        specs = simple_trace()
        store.write_request(make_request(specs))
        for path in ("/", f"/trace/{specs[0].trace_id.hex()}", f"/trace/{'ab' * 16}"):
            page = client.get(path).get_data(as_text=True)
            assert 'id="trace-id-box"' in page, path
            assert 'action="/trace"' in page, path


class TestTraceIdBox:
    def test_opens_the_trace(self, client: FlaskClient) -> None:
        response = client.get(f"/trace?id=+{'AB' * 16}%0A")
        assert response.status_code == 302
        assert response.headers["Location"] == f"/trace/{'ab' * 16}"
        short = client.get("/trace?id=abc123")  # a 64-bit id, left-padded as Jaeger does
        assert short.headers["Location"] == f"/trace/{'0' * 26}abc123"

    @pytest.mark.parametrize("text", ["", "not-an-id", "g" * 32, "a" * 33])
    def test_bad_id_gets_its_message(self, client: FlaskClient, text: str) -> None:
        response = client.get(f"/trace?id={text}")
        assert response.status_code == 400
        page = response.get_data(as_text=True)
        assert "is not a trace id" in page
        assert "up to 32 hex digits" in page
        assert 'id="search-link"' in page


class TestTracePage:
    def test_header_and_rows(self, client: FlaskClient, store: SpanStore) -> None:
        specs = simple_trace("web", child_service="db", children=3)
        store.write_request(make_request(specs))
        response = client.get(f"/trace/{specs[0].trace_id.hex()}")
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert 'id="root-name">GET /<' in page
        assert 'id="span-count">4<' in page
        assert "<dd>10ms</dd>" in page
        assert f"border-color: {service_color('db')}" in page
        url = re.search(r'data-figure-url="([^"]+)"', page)
        assert url is not None
        answer = client.get(url.group(1).replace("&amp;", "&"))
        rows = answer.get_json()
        assert rows["rowCount"] == 4
        assert rows["services"] == ["web", "db"]
        # the facts that need the span tree come with the rows
        assert rows["tree"] == {"depth": 2, "orphans": 0, "skewed": 0}
        assert rows["ids"] == "".join(s.span_id.hex() for s in specs)
        # the link names the span count: a browser may keep the answer
        assert "v=4." in url.group(1)
        assert answer.headers["Cache-Control"] == "private, max-age=86400"
        assert f'<link rel="preload" href="{url.group(1)}"' in page  # loads with the scripts
        assert "<script>" not in page  # no inline script: the policy forbids them
        assert "plotly.min.js" not in page  # the waterfall is drawn without plotly

    def test_content_security_policy(self, client: FlaskClient, store: SpanStore) -> None:
        specs = simple_trace()
        store.write_request(make_request(specs))
        for path in ("/", f"/trace/{specs[0].trace_id.hex()}", "/trace/nope"):
            policy = client.get(path).headers["Content-Security-Policy"]
            directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
            assert directives["connect-src"] == "'self'"
            assert directives["form-action"] == "'self'"
            assert directives["frame-src"] == "'none'"
            assert directives["default-src"] == "'self'"
            assert directives["script-src"] == "'self'"  # no inline script, no eval
            assert "http" not in policy  # no other origin anywhere

    def test_hostile_trace_page(self, client: FlaskClient, store: SpanStore) -> None:
        specs = hostile_trace()
        store.write_request(make_request(specs))
        page = client.get(f"/trace/{specs[0].trace_id.hex()}").get_data(as_text=True)
        assert "<script>window.pwned" not in page
        assert "<img src=x" not in page
        answer = client.get(f"/trace/{specs[0].trace_id.hex()}/waterfall.json")
        assert answer.mimetype == "application/json"
        body = answer.get_data(as_text=True)
        assert "<" not in body  # \u003c: inert even if something read it as markup
        assert answer.get_json()["names"][0] == HOSTILE

    def test_attribute_notes(self, client: FlaskClient, store: SpanStore) -> None:
        specs = hostile_trace()
        store.write_request(make_request(specs))
        page = client.get(f"/trace/{specs[0].trace_id.hex()}").get_data(as_text=True)
        url = re.search(r'data-notes-url="([^"]+)"', page)
        assert url is not None
        answer = client.get(url.group(1).replace("&amp;", "&") + "&rows=0-256")
        assert answer.get_json() == {"0": [["http.route", HOSTILE]]}
        assert "<" not in answer.get_data(as_text=True)
        assert answer.headers["Cache-Control"] == "private, max-age=86400"
        path = f"/trace/{specs[0].trace_id.hex()}/notes.json"
        assert client.get(path + "?rows=1-2").get_json() == {}
        assert client.get(path + "?rows=x").status_code == 400
        assert client.get(f"/trace/{'ab' * 16}/notes.json?rows=0-1").status_code == 404

    def test_attribute_notes_of_every_row_without_rows(
        self, client: FlaskClient, store: SpanStore
    ) -> None:
        """The export embeds notes.json as the page names it: then every row's notes."""
        specs = simple_trace(children=3, attrs={"http.request.method": "GET"})
        store.write_request(make_request(specs))
        page = client.get(f"/trace/{specs[0].trace_id.hex()}").get_data(as_text=True)
        url = re.search(r'data-notes-url="([^"]+)"', page)
        assert url is not None
        named = url.group(1).replace("&amp;", "&")
        every = client.get(named).get_json()
        assert every == client.get(named + "&rows=0-4").get_json()
        assert every["0"] == [["http.route", "/"], ["http.request.method", "GET"]]
        assert every["3"] == [["db.system.name", "sqlite"]]
        assert sorted(every) == ["0", "1", "2", "3"]
        assert sorted(client.get(named + "&rows=1-3").get_json()) == ["1", "2"]

    def test_every_json_url_of_the_trace_page_is_on_its_header(
        self, client: FlaskClient, store: SpanStore
    ) -> None:
        """The single-file export (issue 15) answers the page's fetches by these names."""
        specs = hostile_trace()
        store.write_request(make_request(specs))
        page = client.get(f"/trace/{specs[0].trace_id.hex()}").get_data(as_text=True)
        header = re.search(r'<section [^>]*id="trace-header"[^>]*>', page)
        assert header is not None
        urls = dict(re.findall(r'data-([a-z-]+)-url="([^"]+)"', header.group(0)))
        assert set(urls) == {"figure", "notes", "search", "critical-path", "stats", "flamegraph"}
        for name, url in urls.items():
            url = url.replace("&amp;", "&") + ("&rows=0-10" if name == "notes" else "")
            answer = client.get(url)
            assert answer.status_code == 200, name
            assert answer.is_json, name
        index = client.get(urls["search"].replace("&amp;", "&"))
        assert index.get_json()["rowCount"] == len(specs)
        assert "<" not in index.get_data(as_text=True)
        assert index.headers["Cache-Control"] == "private, max-age=86400"
        assert client.get(f"/trace/{'ab' * 16}/search.json").status_code == 404

    def test_unknown_trace_page_in_the_layout(self, client: FlaskClient) -> None:
        response = client.get(f"/trace/{'ab' * 16}")
        assert response.status_code == 404
        page = response.get_data(as_text=True)
        assert 'class="top"' in page  # the viewer's header and layout
        assert f"Trace {'ab' * 16} is not in this viewer" in page
        assert "flushed yet" in page
        assert "past retention" in page
        assert 'id="search-link"' in page

    def test_bad_ids_and_other_pages_404(self, client: FlaskClient) -> None:
        response = client.get("/trace/zzz")
        assert response.status_code == 404
        assert "zzz is not a trace id" in response.get_data(as_text=True)
        response = client.get("/no/such/page")
        assert response.status_code == 404
        assert 'id="search-link"' in response.get_data(as_text=True)
        # JSON answers stay JSON or plain
        missing = client.get(f"/trace/{'ab' * 16}/spans/{'cd' * 8}.json")
        assert missing.status_code == 404
        assert 'id="search-link"' not in missing.get_data(as_text=True)
        assert client.get(f"/api/traces/{'ab' * 16}").get_json()["errors"][0]["code"] == 404

    def test_span_details(self, client: FlaskClient, store: SpanStore) -> None:
        specs = hostile_trace()
        store.write_request(make_request(specs))
        url = f"/trace/{specs[0].trace_id.hex()}/spans/{specs[0].span_id.hex()}.json"
        details = client.get(url).get_json()
        assert details["name"] == HOSTILE  # raw: the page renders it with textContent
        assert [HOSTILE, HOSTILE] in details["attributes"]
        assert details["events"][0]["name"] == HOSTILE
        assert details["events"][0]["offset"] == "+0µs"  # 5 ns after the span's start
        assert ["host.name", "box"] in details["resource"]
        assert details["scope"] == {"name": "tests", "version": "1.0", "attributes": []}
        assert details["deepLink"].endswith(f"?span={specs[0].span_id.hex()}")
        assert details["color"] == service_color(f"svc{HOSTILE}")
        child = client.get(
            f"/trace/{specs[0].trace_id.hex()}/spans/{specs[1].span_id.hex()}.json"
        ).get_json()
        assert child["parentSpanId"] == specs[0].span_id.hex()
        assert child["orphan"] is False
        assert child["startOffset"] == "+1µs"

    def test_span_details_say_what_size_limits_dropped(
        self, client: FlaskClient, store: SpanStore
    ) -> None:
        specs = simple_trace(children=1)
        request = make_request(specs)
        scope_spans = request.resource_spans[0].scope_spans[0]
        root, child = scope_spans.spans
        root.dropped_attributes_count = 3
        root.dropped_events_count = 2
        request.resource_spans[0].resource.dropped_attributes_count = 1
        store.write_request(request)
        base = f"/trace/{specs[0].trace_id.hex()}/spans/"
        details = client.get(f"{base}{root.span_id.hex()}.json").get_json()
        assert details["dropped"] == {"attributes": 3, "events": 2, "resource attributes": 1}
        # the resource is the child's too; nothing of the child's own was dropped
        details = client.get(f"{base}{child.span_id.hex()}.json").get_json()
        assert details["dropped"] == {"resource attributes": 1}

    def test_span_details_from_the_loaded_trace(
        self, client: FlaskClient, store: SpanStore
    ) -> None:
        """With the page's row number the answer comes from the loaded trace, the same."""
        trace_id = new_trace_id()
        root = SpanSpec("root", trace_id, duration_ns=1_000_000)
        early = SpanSpec("early", trace_id, parent_span_id=root.span_id, start_ns=T0_NS - 10)
        store.write_request(make_request([root, early]))
        client.get(f"/trace/{trace_id.hex()}/waterfall.json")  # loads the trace
        url = f"/trace/{trace_id.hex()}/spans/{early.span_id.hex()}.json"
        plain = client.get(url).get_json()
        hinted = client.get(url + "?row=1").get_json()
        assert hinted == plain
        assert hinted["skewed"] is True
        assert client.get(url + "?row=0").get_json() == plain  # a wrong row: the store answers
        assert client.get(url + "?row=99").get_json() == plain

    def test_event_times_relative_to_the_span(self, client: FlaskClient, store: SpanStore) -> None:
        trace_id = new_trace_id()
        span = SpanSpec(
            "work",
            trace_id,
            start_ns=T0_NS + 2_000_000,
            duration_ns=10_000_000,
            events=[("exception", T0_NS + 3_500_000, {"exception.stacktrace": "a\n  b\n    c"})],
        )
        store.write_request(make_request([SpanSpec("root", trace_id, duration_ns=10**8), span]))
        details = client.get(f"/trace/{trace_id.hex()}/spans/{span.span_id.hex()}.json").get_json()
        (event,) = details["events"]
        assert event["offset"] == "+1.5ms"
        assert event["time"].endswith(" UTC")
        assert event["attributes"] == [["exception.stacktrace", "a\n  b\n    c"]]
        assert details["startOffset"] == "+2ms"

    def test_links_say_where_they_lead(self, client: FlaskClient, store: SpanStore) -> None:
        stored_trace = simple_trace("web", children=1)
        store.write_request(make_request(stored_trace))
        trace_id = new_trace_id()
        span = SpanSpec(
            "job",
            trace_id,
            links=[
                (stored_trace[0].trace_id, stored_trace[1].span_id, {"job.link": "queued by"}),
                (stored_trace[0].trace_id, b"\x09" * 8, {}),
                (new_trace_id(), b"\x08" * 8, {}),
            ],
        )
        store.write_request(make_request([span]))
        details = client.get(f"/trace/{trace_id.hex()}/spans/{span.span_id.hex()}.json").get_json()
        found, span_missing, absent = details["links"]
        assert found["stored"] == "span"
        assert found["url"] == (
            f"/trace/{stored_trace[0].trace_id.hex()}?span={stored_trace[1].span_id.hex()}"
        )
        assert (found["name"], found["service"]) == ("child 0", "web")
        assert found["attributes"] == [["job.link", "queued by"]]
        assert span_missing["stored"] == "trace"
        assert span_missing["url"] == f"/trace/{stored_trace[0].trace_id.hex()}"
        assert absent["stored"] == "none"
        assert absent["url"] == ""

    def test_collapse_and_focus_params_for_the_page(
        self, client: FlaskClient, store: SpanStore
    ) -> None:
        specs = simple_trace(children=3)
        store.write_request(make_request(specs))
        root_hex = specs[0].span_id.hex()
        page = client.get(
            f"/trace/{specs[0].trace_id.hex()}?collapse={root_hex},zz&span={root_hex}"
        ).get_data(as_text=True)
        assert f'data-collapsed="{root_hex}"' in page
        assert f'data-focus="{root_hex}"' in page
        child_hex = specs[1].span_id.hex()
        trace_url = f"/trace/{specs[0].trace_id.hex()}"
        page = client.get(f"{trace_url}?depth=2&expand={child_hex}").get_data(as_text=True)
        assert 'data-depth="2"' in page
        assert f'data-expanded="{child_hex}"' in page
        for depth in ("0", "31", "-1", "two", "9" * 40):  # none the page's menu offers
            page = client.get(f"{trace_url}?depth={depth}").get_data(as_text=True)
            assert 'data-depth=""' in page, depth
        # the page collapses; the rows are always the whole trace
        rows = client.get(f"/trace/{specs[0].trace_id.hex()}/waterfall.json").get_json()
        assert rows["rowCount"] == 4
        # without the page's v=..., nothing says how long the answer holds
        assert "max-age" not in client.get(
            f"/trace/{specs[0].trace_id.hex()}/waterfall.json"
        ).headers.get("Cache-Control", "")
        assert client.get(f"/trace/{'ab' * 16}/waterfall.json").status_code == 404


class TestDownloads:
    def test_otlp_json_round_trips(
        self, client: FlaskClient, store: SpanStore, tmp_path: Path
    ) -> None:
        specs = hostile_trace()
        store.write_request(make_request(specs))
        response = client.get(f"/trace/{specs[0].trace_id.hex()}/otlp.json")
        assert response.status_code == 200
        assert "attachment" in response.headers["Content-Disposition"]
        body = response.get_data()
        assert json.loads(body)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == (
            specs[0].trace_id.hex()
        )
        with SpanStore(tmp_path / "other.sqlite3") as other:
            other_client = create_app({"STORE": other, "TESTING": True}).test_client()
            posted = other_client.post(
                "/v1/traces", data=body, headers={"Content-Type": "application/json"}
            )
            assert posted.status_code == 200
            assert spans_to_traces_data(other.get_trace(specs[0].trace_id)) == (
                spans_to_traces_data(store.get_trace(specs[0].trace_id))
            )

    def test_jaeger_download(self, client: FlaskClient, store: SpanStore) -> None:
        specs = simple_trace()
        store.write_request(make_request(specs))
        response = client.get(f"/api/traces/{specs[0].trace_id.hex()}?download=1")
        assert "attachment" in response.headers["Content-Disposition"]
        assert response.get_json()["data"][0]["traceID"] == specs[0].trace_id.hex()


def test_counts_on_the_pages_say_1_span_not_1_spans(client: FlaskClient, store: SpanStore) -> None:
    trace_id = new_trace_id()
    store.write_request(make_request([SpanSpec("alone", trace_id, service="solo")]))
    search = client.get("/").get_data(as_text=True)
    assert "1 span stored" in search
    assert 'title="solo: 1 span"' in search
    assert "1 spans" not in search
    page = client.get(f"/trace/{trace_id.hex()}").get_data(as_text=True)
    assert "Loading 1 span…" in page
    assert "1 spans" not in page


def test_metrics_of_an_unknown_service_say_so_and_draw_no_other(
    client: FlaskClient, store: SpanStore
) -> None:
    store.write_request(make_request(simple_trace("web")))
    response = client.get("/metrics?service=nosuch")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "The store has no spans of a service named “nosuch”" in page
    assert 'data-service=""' in page  # no charts: not web's in its place
    known = client.get("/metrics?service=web")
    assert known.status_code == 200
    assert 'data-service="web"' in known.get_data(as_text=True)
    assert 'data-service="web"' in client.get("/metrics").get_data(as_text=True)
