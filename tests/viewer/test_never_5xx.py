"""Property (issue 11, 4): no query, path or body makes any route of the viewer answer 5xx.

Every route of the app is driven over HTTP (the app served by waitress, as
``cvtrace view`` serves it; ``/v1/traces`` also on the OTLP port) with every
query parameter it reads, and some it does not, set to values drawn from a
table of known troublemakers (out-of-range numbers, dates outside what a 64-bit
nanosecond time holds, lone surrogates in JSON, deep nesting, 5,000-digit
numbers) and from arbitrary text. A bad value is a 4xx with a message: JSON for
the API, the search page's own error for the UI.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvtrace.store import SpanStore
from cvtrace.viewer import create_app
from tests.viewer.support import OtlpServer, ViewerServer, make_request, simple_trace

pytestmark = pytest.mark.slow

TROUBLE = [
    "",
    " ",
    "0",
    "-1",
    "1e999",
    "NaN",
    "-inf",
    "9" * 400,
    "9" * 5000,
    "-99999999999999999999",
    "99999999999999999999",
    "999999999999999d",
    "9" * 400 + "h",
    "1" * 30 + "ns",
    "106752d",
    "1.5s",
    "40ms",
    ".5us",
    "9999-12-31T23:59",
    "0001-01-01T00:00+14:00",
    "0001-01-01T00:00-14:00",
    "2262-04-12T00:00",
    "1969-12-31T23:59:59",
    "2025-01-31T13:45",
    "custom",
    "{}",
    "[",
    "[" * 5000,
    '{"a": ' * 3000,
    '{"\\ud800": "x"}',
    '{"error": "\\udfff"}',
    '{"error": true, "n": 1e999}',
    '{"http.route": "/"}',
    "a=b",
    "a='unclosed",
    "=",
    "%",
    "\x00",
    "ffffffffffffffffffffffffffffffff",
    "0" * 16,
    "0-99999999999999999999999",
    "5-3",
    "-3-5",
    "0-" + "9" * 5000,
    "key:value",
    ":",
    "true",
]
VALUES = st.one_of(
    st.sampled_from(TROUBLE),
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=30),
    st.integers().map(str),
    st.floats().map(str),
    st.builds(
        "{}{}".format,
        st.integers(-(10**30), 10**30),
        st.sampled_from(["ns", "us", "ms", "s", "m", "h", "d", "y", ""]),
    ),
)

SEARCH_PAGE = [
    "service",
    "operation",
    "tags",
    "errors",
    "min_duration",
    "max_duration",
    "lookback",
    "from",
    "to",
    "limit",
    "sort",
]
API_SEARCH = [
    "service",
    "operation",
    "tags",
    "tag",
    "minDuration",
    "maxDuration",
    "start",
    "end",
    "lookback",
    "limit",
]
METRICS = ["service", "spanKind", "groupByOperation", "endTs", "lookback", "step", "ratePer"]
PARAMETERS: dict[str, list[str]] = {
    "/": SEARCH_PAGE,
    "/api/services": [],
    "/api/services/<path:service>/operations": [],
    "/api/operations": ["service"],
    "/api/traces": API_SEARCH,
    "/api/traces/<trace_id>": ["download"],
    "/api/dependencies": ["endTs", "lookback", "service"],
    "/api/dependencies/traces": ["parent", "child", "endTs", "lookback", "limit"],
    "/api/traces/<trace_id>/critical-path": [],
    "/api/traces/<trace_id>/stats": [],
    "/api/traces/<trace_id>/flamegraph": [],
    "/api/traces/<trace_id>/search": ["q", "service", "status", "minDuration"],
    "/api/traces/<trace_id>/same-shape": ["limit"],
    "/api/compare": ["a", "b"],
    "/api/metrics/calls": METRICS,
    "/api/metrics/errors": METRICS,
    "/api/metrics/latencies": [*METRICS, "quantile"],
    "/api/metrics/minstep": [],
    "/compare": ["a", "b"],
    "/map": ["window"],
    "/metrics": ["service", "window", "operation"],
    "/trace": ["id"],
    "/trace/<trace_id>": ["collapse", "span"],
    "/trace/<trace_id>/waterfall.json": ["v"],
    "/trace/<trace_id>/notes.json": ["rows", "v"],
    "/trace/<trace_id>/search.json": ["v"],
    "/trace/<trace_id>/otlp.json": [],
    "/trace/<trace_id>/export.html": [],
    "/trace/<trace_id>/save": [],
    "/trace/<trace_id>/spans/<span_id>.json": ["row"],
    "/static/<path:filename>": ["v"],
    "/static/plotly.min.js": ["v"],
    "/v1/traces": [],
    "/api/import": ["name"],
}
"""Each route's query parameters, as the code reads them ('token' is added to all)."""


class Viewer:
    """A seeded store served by the viewer app and by the OTLP port."""

    def __init__(self, tmp: Path) -> None:
        self.store = SpanStore(tmp / "spans.sqlite3", max_spans=0)
        specs = simple_trace(children=3, error=True)
        self.store.write_request(make_request(specs))
        self.trace_id = specs[0].trace_id.hex()
        self.span_id = specs[1].span_id.hex()
        self.app = create_app({"STORE": self.store})
        self.ui = ViewerServer(self.app)
        self.otlp = OtlpServer(self.store)
        self.session = requests.Session()


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    v = Viewer(tmp_path_factory.mktemp("never5xx"))
    with v.ui, v.otlp, v.session:
        yield v
    v.store.close()


def test_the_table_names_every_route(viewer: Viewer) -> None:
    """A new route fails here until its parameters are listed (and so fuzzed)."""
    assert {rule.rule for rule in viewer.app.url_map.iter_rules()} == set(PARAMETERS)


def path_values(viewer: Viewer, kind: str) -> st.SearchStrategy[str]:
    known = {"trace_id": viewer.trace_id, "span_id": viewer.span_id}.get(kind, "svc")
    return st.one_of(
        st.just(known),
        st.sampled_from(TROUBLE).filter(bool),
        st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40),
    )


def check(response: requests.Response, path: str) -> None:
    assert response.status_code < 500, (path, response.status_code, response.text[:300])
    if response.status_code == 400 and path.startswith("/api/"):
        errors = response.json()["errors"]
        assert errors[0]["code"] == 400
        assert errors[0]["msg"]


POST_ROUTES = ("/v1/traces", "/api/import", "/trace/<trace_id>/save")
GET_ROUTES = [rule for rule in PARAMETERS if rule not in POST_ROUTES]
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def fill(rule: str, trace_id: str, span_id: str, other: str) -> str:
    """The path of ``rule`` with its variables set (URL-quoted)."""
    return (
        rule.replace("<trace_id>", quote(trace_id, safe=""))
        .replace("<span_id>", quote(span_id, safe=""))
        .replace("<path:service>", quote(other, safe=""))
        .replace("<path:filename>", quote(other, safe=""))
    )


def get(viewer: Viewer, path: str, params: list[tuple[str, str]]) -> None:
    with viewer.session.get(viewer.ui.url + path, params=params, timeout=30, stream=True) as r:
        if r.status_code < 500 and not path.startswith("/static/"):
            r.content  # noqa: B018 - read the body: a failure may come late
        check(r, path)


@pytest.mark.parametrize("rule", GET_ROUTES)
def test_each_parameter_alone(viewer: Viewer, rule: str) -> None:
    """Every parameter and path variable of the route, with each troublemaker in turn."""
    path = fill(rule, viewer.trace_id, viewer.span_id, "svc")
    for name in [*PARAMETERS[rule], "token"]:
        for value in TROUBLE:
            get(viewer, path, [(name, value)])
    if "<" in rule:
        for value in filter(None, TROUBLE):
            get(viewer, fill(rule, value, value, value), [])


@pytest.mark.parametrize("rule", GET_ROUTES)
def test_get_routes_never_answer_5xx(viewer: Viewer, rule: str) -> None:
    """Arbitrary combinations of the route's parameters and path variables."""
    names = [*PARAMETERS[rule], "token", "x"]

    @FUZZ
    @given(
        params=st.lists(st.tuples(st.sampled_from(names), VALUES), max_size=8),
        trace_id=path_values(viewer, "trace_id"),
        span_id=path_values(viewer, "span_id"),
        other=path_values(viewer, "service"),
    )
    def probe(params: list[tuple[str, str]], trace_id: str, span_id: str, other: str) -> None:
        get(viewer, fill(rule, trace_id, span_id, other), params)

    probe()


BODIES = st.one_of(
    st.binary(max_size=300),
    st.just(make_request(simple_trace()).SerializeToString()),
    st.builds(gzip.compress, st.binary(max_size=300)),
    st.sampled_from([b"{}", b'{"resourceSpans": [{"scopeSpans": "x"}]}', b"[" * 5000, b"\x1f\x8b"]),
)


@FUZZ
@given(
    params=st.lists(st.tuples(st.sampled_from(["token", "x"]), VALUES), max_size=3),
    body=BODIES,
    content_type=st.sampled_from(
        ["application/x-protobuf", "application/json", "text/plain", "", "application/JSON; x=1"]
    ),
    encoding=st.sampled_from([None, "gzip", "x-gzip", "GZIP", "br", "identity", "gzip, gzip"]),
    port=st.sampled_from(["ui", "otlp"]),
)
def test_otlp_receivers_never_answer_5xx(
    viewer: Viewer,
    params: list[tuple[str, str]],
    body: bytes,
    content_type: str,
    encoding: str | None,
    port: str,
) -> None:
    headers = {"Content-Type": content_type}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    base = viewer.ui.url if port == "ui" else viewer.otlp.url
    response = viewer.session.post(
        f"{base}/v1/traces", params=params, data=body, headers=headers, timeout=30
    )
    check(response, "/v1/traces")


@FUZZ
@given(trace_id=st.one_of(st.just("0" * 32), st.text(min_size=1, max_size=40)))
def test_save_never_answers_5xx(viewer: Viewer, trace_id: str) -> None:
    """Saving a remote trace (``POST /trace/<id>/save``) with any id, and no remote set."""
    path = fill("/trace/<trace_id>/save", trace_id, "", "")
    response = viewer.session.post(viewer.ui.url + path, timeout=30, allow_redirects=False)
    check(response, path)


@FUZZ
@given(
    params=st.lists(st.tuples(st.sampled_from(["name", "token", "x"]), VALUES), max_size=3),
    body=BODIES,
    content_type=st.sampled_from(["application/octet-stream", "text/plain", ""]),
)
def test_import_never_answers_5xx(
    viewer: Viewer, params: list[tuple[str, str]], body: bytes, content_type: str
) -> None:
    """The search page's import (``POST /api/import``) with any file: a summary or a 4xx."""
    response = viewer.session.post(
        f"{viewer.ui.url}/api/import",
        params=params,
        data=body,
        headers={"Content-Type": content_type},
        timeout=30,
    )
    assert response.status_code < 500, (response.status_code, response.text[:300])
