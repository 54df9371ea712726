"""The server-rendered pages, the downloads and the span details endpoint."""

from __future__ import annotations

import html
import json
import re
from importlib.resources import files
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from cvtrace.store import SpanStore, spans_to_traces_data
from cvtrace.viewer import create_app
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
        html = client.get("/").get_data(as_text=True)
        assert "web: GET /" in html
        assert "db (2)" in html
        assert "web (1)" in html
        assert 'id="durations-data"' in html
        assert 'class="trace-link"' in html

    def test_filters(self, client: FlaskClient, store: SpanStore) -> None:
        store.write_request(make_request(simple_trace("web", root_name="GET /a")))
        store.write_request(make_request(simple_trace("api", root_name="GET /b", error=True)))
        html = client.get("/?service=api").get_data(as_text=True)
        assert "api: GET /b" in html
        assert "web: GET /a" not in html
        html = client.get("/?errors=1").get_data(as_text=True)
        assert "api: GET /b" in html
        assert "web: GET /a" not in html
        html = client.get("/?tags=span.kind%3Dserver+error%3Dtrue").get_data(as_text=True)
        assert "api: GET /b" in html
        assert "web: GET /a" not in html
        html = client.get("/?min_duration=1s").get_data(as_text=True)
        assert "No traces match" in html

    def test_bad_filter_shows_message(self, client: FlaskClient) -> None:
        response = client.get("/?min_duration=soon")
        assert response.status_code == 400  # the page, with its message
        assert "min duration: &#39;soon&#39; is not a duration" in response.get_data(as_text=True)

    def test_hostile_values_escaped(self, client: FlaskClient, store: SpanStore) -> None:
        store.write_request(make_request(hostile_trace()))
        html = client.get("/").get_data(as_text=True)
        assert "<script>window.pwned" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html


class TestTracePage:
    def test_header_and_figure(self, client: FlaskClient, store: SpanStore) -> None:
        specs = simple_trace("web", child_service="db", children=3)
        store.write_request(make_request(specs))
        response = client.get(f"/trace/{specs[0].trace_id.hex()}")
        assert response.status_code == 200
        html = response.get_data(as_text=True)
        assert 'id="root-name">GET /<' in html
        assert 'id="span-count">4<' in html
        assert "<dd>10ms</dd>" in html
        url = re.search(r'data-figure-url="([^"]+)"', html)
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
        assert f'<link rel="preload" href="{url.group(1)}"' in html  # loads with plotly.js
        assert "script-src 'self' 'unsafe-eval';" in response.headers["Content-Security-Policy"]
        assert "<script>" not in html  # no inline script: the policy forbids them

    def test_hostile_trace_page(self, client: FlaskClient, store: SpanStore) -> None:
        specs = hostile_trace()
        store.write_request(make_request(specs))
        html = client.get(f"/trace/{specs[0].trace_id.hex()}").get_data(as_text=True)
        assert "<script>window.pwned" not in html
        assert "<img src=x" not in html
        figure = client.get(f"/trace/{specs[0].trace_id.hex()}/waterfall.json").get_data(True)
        assert "<script>" not in figure
        assert "&lt;script&gt;" in figure

    def test_attribute_notes(self, client: FlaskClient, store: SpanStore) -> None:
        specs = hostile_trace()
        store.write_request(make_request(specs))
        html = client.get(f"/trace/{specs[0].trace_id.hex()}").get_data(as_text=True)
        url = re.search(r'data-notes-url="([^"]+)"', html)
        assert url is not None
        answer = client.get(url.group(1).replace("&amp;", "&") + "&rows=0-256")
        notes = answer.get_json()
        assert list(notes) == ["0"]
        assert notes["0"].startswith("http.route: " + HOSTILE_ESCAPED[:40])
        assert "<" not in notes["0"]
        assert answer.headers["Cache-Control"] == "private, max-age=86400"
        path = f"/trace/{specs[0].trace_id.hex()}/notes.json"
        assert client.get(path + "?rows=1-2").get_json() == {}
        assert client.get(path + "?rows=x").status_code == 400
        assert client.get(f"/trace/{'ab' * 16}/notes.json?rows=0-1").status_code == 404

    def test_unknown_and_bad_ids_404(self, client: FlaskClient) -> None:
        assert client.get(f"/trace/{'ab' * 16}").status_code == 404
        assert client.get("/trace/zzz").status_code == 404
        assert client.get(f"/trace/{'ab' * 16}/spans/{'cd' * 8}.json").status_code == 404

    def test_span_details(self, client: FlaskClient, store: SpanStore) -> None:
        specs = hostile_trace()
        store.write_request(make_request(specs))
        url = f"/trace/{specs[0].trace_id.hex()}/spans/{specs[0].span_id.hex()}.json"
        details = client.get(url).get_json()
        assert details["name"] == HOSTILE  # raw: the page renders it with textContent
        assert [HOSTILE, HOSTILE] in details["attributes"]
        assert details["events"][0]["name"] == HOSTILE
        assert ["host.name", "box"] in details["resource"]
        assert details["scope"] == {"name": "tests", "version": "1.0", "attributes": []}
        assert details["deepLink"].endswith(f"?span={specs[0].span_id.hex()}")
        child = client.get(
            f"/trace/{specs[0].trace_id.hex()}/spans/{specs[1].span_id.hex()}.json"
        ).get_json()
        assert child["parentSpanId"] == specs[0].span_id.hex()
        assert child["orphan"] is False

    def test_collapse_and_focus_params(self, client: FlaskClient, store: SpanStore) -> None:
        specs = simple_trace(children=3)
        store.write_request(make_request(specs))
        root_hex = specs[0].span_id.hex()
        html = client.get(
            f"/trace/{specs[0].trace_id.hex()}?collapse={root_hex}&span={root_hex}"
        ).get_data(as_text=True)
        assert f'data-collapsed="{root_hex}"' in html
        assert f'data-focus="{root_hex}"' in html
        assert "Expand all" in html
        rows = client.get(
            f"/trace/{specs[0].trace_id.hex()}/waterfall.json?collapse={root_hex}"
        ).get_json()
        assert rows["rowCount"] == 1
        assert rows["names"] == ["GET /"]
        assert rows["children"] == {"0": 3}
        assert rows["flags"]["bdata"] == "CA=="  # FLAG_COLLAPSED
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

    def test_plotly_served_from_package(self, client: FlaskClient) -> None:
        response = client.get("/static/plotly.min.js")
        assert response.status_code == 200
        packaged = (files("plotly") / "package_data" / "plotly.min.js").read_bytes()
        assert response.get_data() == packaged
        response.close()
        html = client.get("/").get_data(as_text=True)
        url = re.search(r'<script src="(/static/plotly\.min\.js\?v=[^"]+)"', html)
        assert url is not None
        assert "cdn" not in html.lower()
        # versioned by the plotly package: kept by the browser for good
        response = client.get(url.group(1))
        assert response.get_data() == packaged
        assert "immutable" in response.headers["Cache-Control"]
        assert "max-age=31536000" in response.headers["Cache-Control"]
        response.close()
