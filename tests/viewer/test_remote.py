"""The viewer on a remote Jaeger API (cvtrace/viewer/remote.py, sources.py).

The remote here is a second viewer (``create_app`` served by waitress on 127.0.0.1, as
``cvtrace view`` serves it): it serves Jaeger's ``/api/traces`` family but not API
v3, so this is the fallback path; tests/ops/test_remote_jaeger.py runs the same source
against the real Jaeger (v3, and v1 for tag searches). The failing remotes are small
real HTTP servers on 127.0.0.1 that answer 500, 401, a redirect, HTML, or nothing in
time; the closed port is a port that was bound and closed.
"""

from __future__ import annotations

import html
import http.server
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from cvtrace.exceptions import CvtraceConfigError
from cvtrace.store import SpanStore
from cvtrace.viewer import create_app, remote_options
from cvtrace.viewer.remote import JaegerSource, RemoteOptions, split_traces
from tests.viewer.support import SpanSpec, ViewerServer, make_request, simple_trace

NOW_NS = (time.time_ns() // 1000 - 60 * 10**6) * 1000
"""Traces start a minute ago (a remote search without a time range covers 7 days), on a
whole microsecond: Jaeger JSON, the fallback API's answer, has no finer times."""


@pytest.fixture
def remote_store(tmp_path: Path) -> Iterator[SpanStore]:
    with SpanStore(tmp_path / "remote.sqlite3", max_spans=0) as store:
        yield store


@pytest.fixture
def remote(remote_store: SpanStore) -> Iterator[ViewerServer]:
    """A second viewer, serving its store's traces over its Jaeger API."""
    with ViewerServer(create_app({"STORE": remote_store})) as server:
        yield server


@pytest.fixture
def local_store(tmp_path: Path) -> Iterator[SpanStore]:
    with SpanStore(tmp_path / "local.sqlite3", max_spans=0) as store:
        yield store


def viewer_on(local_store: SpanStore, url: str, **config: Any) -> Any:
    """A viewer reading ``local_store`` and the remote at ``url``, and its test client."""
    app = create_app({"STORE": local_store, "JAEGER_URL": url, **config})
    return app.test_client()


def add_trace(store: SpanStore, service: str = "shop", **options: Any) -> list[SpanSpec]:
    specs = simple_trace(service, start_ns=options.pop("start_ns", NOW_NS), **options)
    assert store.write_request(make_request(specs)).accepted_spans == len(specs)
    return specs


def problems(page: str) -> list[str]:
    return re.findall(r'class="error remote-problem" role="alert">([^<]*)<', page)


# -- a failing remote, on a real socket ------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    behave: Callable[[http.server.BaseHTTPRequestHandler], None]

    def do_GET(self) -> None:
        type(self).behave(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the viewer hung up on a slow answer: expected here


class FailingRemote:
    """An HTTP server on 127.0.0.1 that answers every GET with ``behave(handler)``."""

    def __init__(self, behave: Callable[[http.server.BaseHTTPRequestHandler], None]) -> None:
        handler = type("Handler", (_Handler,), {"behave": staticmethod(behave)})
        self.server = _QuietServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FailingRemote:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]


def answer(
    status: int, body: bytes, content_type: str = "application/json", **headers: str
) -> Behaviour:
    def behave(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)

    return behave


def sleep_then_answer(seconds: float) -> Behaviour:
    def behave(handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        answer(200, b'{"data":[]}')(handler)

    return behave


def trickle(handler: http.server.BaseHTTPRequestHandler) -> None:
    """Headers at once, then a byte every 0.3 s: each read is quick, the answer is not."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "100")
    handler.end_headers()
    for _ in range(100):
        try:
            handler.wfile.write(b" ")
            handler.wfile.flush()
        except OSError:
            return
        time.sleep(0.3)


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


FAILURES: list[tuple[str, Any, str]] = [
    # (name, behaviour, what the message must say)
    ("500", answer(500, b"database is on fire"), "failed with 500: database is on fire"),
    (
        "503 in Jaeger's envelope",
        answer(503, b'{"data":null,"errors":[{"code":503,"msg":"storage down"}]}'),
        "failed with 503: storage down",
    ),
    ("401", answer(401, b"{}"), "--jaeger-header 'Authorization: Bearer TOKEN'"),
    ("403", answer(403, b"forbidden", "text/plain"), "refused access"),
    (
        "redirect to a login page",
        answer(302, b"", Location="https://sso.example/login"),
        "a redirect to https://sso.example/login",
    ),
    (
        "an HTML page (not Jaeger)",
        answer(200, b"<html>hello</html>", "text/html"),
        "not JSON (text/html",
    ),
    ("JSON that is not Jaeger's", answer(200, b'{"hello": 1}'), "answered as Jaeger does"),
    ("garbage bytes", answer(200, b"\xff\xfe\x00garbage"), "not JSON"),
    ("no answer in time", sleep_then_answer(5), "no answer to /api/v3/services within 1 s"),
    ("an answer that trickles", trickle, "within 1 s"),
]


class TestFailures:
    @pytest.mark.parametrize(("name", "behave", "says"), FAILURES, ids=[f[0] for f in FAILURES])
    def test_every_page_says_why_and_none_is_a_500(
        self, local_store: SpanStore, name: str, behave: Any, says: str
    ) -> None:
        """With the local store on, pages show its traces and the remote's error; a trace
        only the remote could have gets a 502 page; the Jaeger API answers 502 with
        Jaeger's error envelope. Nothing takes much longer than the timeout."""
        specs = add_trace(local_store)
        with FailingRemote(behave) as failing:
            client = viewer_on(local_store, failing.url, JAEGER_TIMEOUT_S=1)
            started = time.monotonic()
            page = client.get("/")
            assert page.status_code == 200
            [problem] = problems(page.text)
            assert failing.url in problem
            assert says.replace("'", "&#39;") in problem, problem
            assert specs[0].trace_id.hex() in page.text  # the local trace is still listed
            assert time.monotonic() - started < 4  # asked once, not once per list

            missing = "ab" * 16
            page = client.get(f"/trace/{missing}")
            assert page.status_code == 502
            assert says.replace("'", "&#39;") in page.text

            api = client.get(f"/api/traces/{missing}")
            assert api.status_code == 502
            [error] = api.get_json()["errors"]
            assert error["code"] == 502
            assert says in error["msg"]

            services = client.get("/api/services").get_json()
            assert services["data"] == ["shop"]  # the local answer, with the remote's error
            assert says in services["errors"][0]["msg"]

            # a local trace's pages and analyses do not need the remote at all
            local_id = specs[0].trace_id.hex()
            assert client.get(f"/trace/{local_id}").status_code == 200
            assert client.get(f"/api/traces/{local_id}/critical-path").status_code == 200

    @pytest.mark.parametrize(
        ("name", "behave", "says"), FAILURES[:4], ids=[f[0] for f in FAILURES[:4]]
    )
    def test_remote_alone_gets_502_not_500(
        self, local_store: SpanStore, name: str, behave: Any, says: str
    ) -> None:
        with FailingRemote(behave) as failing:
            client = viewer_on(local_store, failing.url, JAEGER_TIMEOUT_S=1, NO_LOCAL=True)
            page = client.get("/?service=shop")
            assert page.status_code == 502
            assert says.replace("'", "&#39;") in problems(page.text)[0]
            api = client.get("/api/traces", query_string={"service": "shop"})
            assert api.status_code == 502
            assert says in api.get_json()["errors"][0]["msg"]
            assert client.get("/api/traces/" + "cd" * 16 + "/stats").status_code == 502

    def test_closed_port(self, local_store: SpanStore) -> None:
        url = closed_port()
        client = viewer_on(local_store, url, JAEGER_TIMEOUT_S=1)
        [problem] = problems(client.get("/").text)
        assert "cannot connect (connection refused)" in problem
        assert "--jaeger-url" in problem

    def test_errors_are_logged(
        self, local_store: SpanStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        with FailingRemote(answer(500, b"nope")) as failing:
            client = viewer_on(local_store, failing.url, JAEGER_TIMEOUT_S=1)
            with caplog.at_level("WARNING", logger="cvtrace.viewer.remote"):
                client.get("/")
        assert any("failed with 500: nope" in r.getMessage() for r in caplog.records)

    def test_a_remote_that_comes_back_is_used(
        self, local_store: SpanStore, remote: ViewerServer, remote_store: SpanStore
    ) -> None:
        """The API version is not remembered from a failure: once the remote answers,
        it is used."""
        state = {"down": True}
        specs = add_trace(remote_store, "far")

        def behave(handler: http.server.BaseHTTPRequestHandler) -> None:
            if state["down"]:
                answer(503, b"starting")(handler)
                return
            upstream = requests.get(remote.url + handler.path, timeout=5)
            answer(upstream.status_code, upstream.content)(handler)

        with FailingRemote(behave) as proxy:
            client = viewer_on(local_store, proxy.url, JAEGER_TIMEOUT_S=2)
            assert problems(client.get("/").text)
            state["down"] = False
            page = client.get("/")
            assert not problems(page.text)
            assert specs[0].trace_id.hex() in page.text


# -- a second cvtrace view as the remote (the /api/traces fallback) --------------------


class TestApiDetection:
    @pytest.mark.parametrize(
        ("v3_answer", "expected"),
        [
            (b'{"services":["a"]}', "v3"),
            (b"{}", "v3"),  # a Jaeger with no traces yet: protobuf JSON drops empty lists
        ],
    )
    def test_v3(self, v3_answer: bytes, expected: str) -> None:
        def behave(handler: http.server.BaseHTTPRequestHandler) -> None:
            if handler.path.startswith("/api/v3/services"):
                answer(200, v3_answer, "text/plain; charset=utf-8")(handler)
            else:
                answer(404, b"404 page not found", "text/plain")(handler)

        with FailingRemote(behave) as server:
            assert JaegerSource(RemoteOptions(server.url, {})).version() == expected

    def test_older_api_with_no_traces_yet(self) -> None:
        def behave(handler: http.server.BaseHTTPRequestHandler) -> None:
            if handler.path.startswith("/api/services"):
                answer(200, b'{"data":null,"total":0,"limit":0,"offset":0,"errors":null}')(handler)
            else:  # Jaeger's placeholder UI page answers every other path
                answer(200, b"<!DOCTYPE html><html></html>", "text/html")(handler)

        with FailingRemote(behave) as server:
            source = JaegerSource(RemoteOptions(server.url, {}))
            assert source.version() == "v1"
            assert source.services() == []


class TestSecondViewer:
    def test_finds_the_fallback_api(self, remote: ViewerServer) -> None:
        source = JaegerSource(RemoteOptions(remote.url, {}))
        assert source.version() == "v1"  # cvtrace view serves no /api/v3

    def test_search_and_pages_merge_both_sources(
        self, local_store: SpanStore, remote_store: SpanStore, remote: ViewerServer
    ) -> None:
        mine = add_trace(local_store, "shop", start_ns=NOW_NS)
        theirs = add_trace(remote_store, "warehouse", start_ns=NOW_NS + 10**9)
        both = add_trace(remote_store, "shop", start_ns=NOW_NS - 10**9)
        local_store.write_request(make_request(both))  # in both: shown once, as local
        client = viewer_on(local_store, remote.url)

        page = client.get("/")
        assert page.status_code == 200
        assert not problems(page.text)
        ids = re.findall(r'href="/trace/([0-9a-f]{32})"', page.text)
        assert ids == [theirs[0].trace_id.hex(), mine[0].trace_id.hex(), both[0].trace_id.hex()]
        origins = re.findall(r'class="origin origin-(\w+)"', page.text)
        assert origins == ["remote", "local", "local"]
        assert "reading the local store" in page.text
        assert f"the Jaeger at {remote.url}" in page.text

        services = client.get("/api/services").get_json()
        assert services == {
            "data": ["shop", "warehouse"],
            "total": 2,
            "limit": 0,
            "offset": 0,
            "errors": None,
        }
        assert client.get("/api/services/warehouse/operations").get_json()["data"] == [
            "GET /",
            "child 0",
            "child 1",
        ]
        found = client.get("/api/traces", query_string={"service": "warehouse"}).get_json()
        assert [t["traceID"] for t in found["data"]] == [theirs[0].trace_id.hex()]

    def test_remote_trace_page_analyses_and_downloads(
        self, local_store: SpanStore, remote_store: SpanStore, remote: ViewerServer
    ) -> None:
        specs = add_trace(remote_store, "far", children=3, error=True)
        trace_id = specs[0].trace_id.hex()
        client = viewer_on(local_store, remote.url)

        page = client.get(f"/trace/{trace_id}")
        assert page.status_code == 200
        assert f"the Jaeger at <code>{remote.url}</code>" in page.text
        assert 'id="save-trace"' in page.text
        figure_url = re.search(r'data-figure-url="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        waterfall = client.get(figure_url.replace("&amp;", "&")).get_json()
        assert waterfall["rowCount"] == 4
        assert waterfall["services"] == ["far"]
        first = waterfall["ids"][:16]
        search_url = re.search(r'data-search-url="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        assert client.get(search_url.replace("&amp;", "&")).status_code == 200  # in-trace search
        details = client.get(f"/trace/{trace_id}/spans/{first}.json").get_json()
        assert details["service"] == "far"
        assert details["status"]["code"] == "error"

        # the analyses, as on a local trace (compare against the same trace saved locally)
        for analysis in ("critical-path", "stats", "flamegraph", "same-shape"):
            answer_ = client.get(f"/api/traces/{trace_id}/{analysis}")
            assert answer_.status_code == 200, (analysis, answer_.text)
        stats = client.get(f"/api/traces/{trace_id}/stats").get_json()["data"]
        assert {(r["service"], r["operation"], r["count"]) for r in stats} == {
            ("far", "GET /", 1),
            ("far", "child 0", 1),
            ("far", "child 1", 1),
            ("far", "child 2", 1),
        }
        found = client.get(f"/api/traces/{trace_id}/search", query_string={"q": "child 2"})
        assert len(found.get_json()["data"]) == 1
        twin = add_trace(remote_store, "far", children=3, error=True)
        shape = client.get(f"/api/traces/{trace_id}/same-shape").get_json()["data"]
        assert [t["traceID"] for t in shape] == [twin[0].trace_id.hex()]
        compared = client.get(
            "/api/compare", query_string={"a": trace_id, "b": twin[0].trace_id.hex()}
        )
        assert compared.status_code == 200
        assert compared.get_json()["data"]["nodes"]

        # the downloads: the same trace as the remote's own
        mine = client.get(f"/api/traces/{trace_id}?download=1").get_json()
        theirs = requests.get(f"{remote.url}/api/traces/{trace_id}", timeout=5).json()
        assert mine == theirs
        html = client.get(f"/trace/{trace_id}/export.html")  # the single-file export too
        assert html.status_code == 200
        assert all(sp.span_id.hex() in html.text for sp in specs)
        otlp = client.get(f"/trace/{trace_id}/otlp.json").get_json()
        spans = [s for rs in otlp["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
        assert sorted(s["spanId"] for s in spans) == sorted(sp.span_id.hex() for sp in specs)

    def test_save_to_local_store_round_trip(
        self, local_store: SpanStore, remote_store: SpanStore, remote: ViewerServer
    ) -> None:
        specs = add_trace(remote_store, "far", children=2)
        raw_id = specs[0].trace_id
        client = viewer_on(local_store, remote.url)
        assert local_store.get_summary(raw_id) is None
        saved = client.post(f"/trace/{raw_id.hex()}/save")
        assert saved.status_code == 303
        page = client.get(saved.headers["Location"])
        assert 'id="saved-note"' in page.text
        assert "(3 new spans)" in page.text
        assert 'id="save-trace"' not in page.text  # now read from the local store
        mine = sorted(
            (s.span.SerializeToString(), s.service) for s in local_store.get_trace(raw_id)
        )
        theirs = sorted(
            (s.span.SerializeToString(), s.service) for s in remote_store.get_trace(raw_id)
        )
        assert mine == theirs
        other_site = client.post(
            f"/trace/{raw_id.hex()}/save", headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert other_site.status_code == 403  # another site's form cannot make it save
        other_origin = client.post(
            f"/trace/{raw_id.hex()}/save", headers={"Origin": "http://evil.example"}
        )
        assert other_origin.status_code == 403
        again = client.post(f"/trace/{raw_id.hex()}/save")
        assert "saved=0" in again.headers["Location"]  # nothing new the second time

    def test_traces_by_id_through_the_remote(
        self, local_store: SpanStore, remote_store: SpanStore, remote: ViewerServer
    ) -> None:
        mine = add_trace(local_store, "shop")
        theirs = add_trace(remote_store, "far")
        unknown = "ef" * 16
        ids = [theirs[0].trace_id.hex(), unknown, mine[0].trace_id.hex()]
        both = viewer_on(local_store, remote.url)
        body = both.get("/api/traces", query_string=[("traceID", i) for i in ids]).get_json()
        assert [t["traceID"] for t in body["data"]] == [ids[0], ids[2]]
        assert body["errors"] == [{"msg": "trace not found", "traceID": unknown}]
        remote_only = viewer_on(local_store, remote.url, NO_LOCAL=True)
        body = remote_only.get("/api/traces", query_string=[("traceID", i) for i in ids]).get_json()
        assert [t["traceID"] for t in body["data"]] == [ids[0]]
        assert [e["traceID"] for e in body["errors"]] == [unknown, ids[2]]

    def test_save_with_no_local_confirms_where_it_went(
        self, local_store: SpanStore, remote_store: SpanStore, remote: ViewerServer
    ) -> None:
        specs = add_trace(remote_store, "far", children=2)
        raw_id = specs[0].trace_id
        client = viewer_on(local_store, remote.url, NO_LOCAL=True)
        assert 'id="save-trace"' in client.get(f"/trace/{raw_id.hex()}").text
        saved = client.post(f"/trace/{raw_id.hex()}/save")
        assert saved.status_code == 303
        assert local_store.span_count() == 3
        page = client.get(saved.headers["Location"]).text  # the Jaeger's copy, as before
        note = re.search(r'id="saved-note"[^>]*>([^<]*)<', page)
        assert note is not None, "no confirmation of the save"
        assert html.unescape(note.group(1)) == (
            f"Saved (3 new spans) to the local store {local_store.path}: this viewer runs "
            "with --no-local and shows the Jaeger's copy; cvtrace view --db "
            f"{local_store.path} shows the saved one."
        )
        assert 'id="save-trace"' not in page  # not offered again
        # spans the viewer's own receiver stored before: the save adds none, and says so
        more = add_trace(remote_store, "far", children=1)
        local_store.write_request(make_request(more))
        again = client.post(f"/trace/{more[0].trace_id.hex()}/save")
        assert "saved=0" in again.headers["Location"]
        page = client.get(again.headers["Location"]).text
        assert "Saved (it was there already: no new spans) to the local store" in page
        # with the local store shown, the page is the local copy, and says the same
        shown = viewer_on(local_store, remote.url)
        page = shown.get(again.headers["Location"]).text
        assert "saved from the Jaeger (it was there already: no new spans)" in page

    def test_no_local_hides_the_store(
        self, local_store: SpanStore, remote_store: SpanStore, remote: ViewerServer
    ) -> None:
        mine = add_trace(local_store, "shop")
        theirs = add_trace(remote_store, "far")
        client = viewer_on(local_store, remote.url, NO_LOCAL=True)
        page = client.get("/")
        assert theirs[0].trace_id.hex() in page.text
        assert mine[0].trace_id.hex() not in page.text
        assert client.get("/api/services").get_json()["data"] == ["far"]
        assert client.get(f"/trace/{mine[0].trace_id.hex()}").status_code == 404
        for page_path in ("/map", "/metrics"):  # these read the store's call tables
            assert 'id="local-only"' in client.get(page_path).text
        unknown = client.get("/trace/" + "ef" * 16)
        assert unknown.status_code == 404
        assert f"not in the Jaeger at {remote.url}" in unknown.text

    def test_headers_reach_the_remote(
        self, local_store: SpanStore, remote_store: SpanStore, tmp_path: Path
    ) -> None:
        """A remote viewer with a token: refused without the header (401, said clearly),
        answered with it."""
        specs = add_trace(remote_store, "far")
        with ViewerServer(create_app({"STORE": remote_store, "TOKEN": "s3cret"})) as guarded:
            client = viewer_on(local_store, guarded.url)
            [problem] = problems(client.get("/").text)
            assert "refused access to /api/v3/services (401)" in problem
            client = viewer_on(
                local_store, guarded.url, JAEGER_HEADERS=["Authorization: Bearer s3cret"]
            )
            page = client.get("/")
            assert not problems(page.text)
            assert specs[0].trace_id.hex() in page.text


class TestSplitTraces:
    def test_summaries_are_the_stores(self, store: SpanStore) -> None:
        """A remote trace's summary is what the store computes for the same spans."""
        a = simple_trace("a", children=3, child_service="b", error=True)
        orphan = simple_trace("c", children=2)[1:]  # no root: named after its first span
        request = make_request(a + orphan)
        store.write_request(request)
        for trace_id, remote_trace in split_traces(request).items():
            assert remote_trace.summary == store.get_summary(trace_id)
            assert [s.span for s in remote_trace.spans] == [
                s.span for s in store.get_trace(trace_id)
            ]


class TestSettings:
    @pytest.mark.parametrize(
        ("config", "says"),
        [
            (
                {"JAEGER_URL": "jaeger:16686"},
                "CVTRACE_VIEWER_JAEGER_URL (--jaeger-url): 'jaeger:16686' is not the URL",
            ),
            (
                {"JAEGER_URL": "http://j", "JAEGER_HEADERS": ["Bearer x"]},
                "'Bearer x' is not a header; give 'Name: value'",
            ),
            (
                {"JAEGER_URL": "http://j", "JAEGER_HEADERS": "Authorization"},
                "'Authorization' is not Name=value",
            ),
            (
                {"JAEGER_URL": "http://j", "JAEGER_TIMEOUT_S": "soon"},
                "CVTRACE_VIEWER_JAEGER_TIMEOUT_S (--jaeger-timeout): 'soon' is not a number",
            ),
            ({"JAEGER_URL": "http://j", "JAEGER_TIMEOUT_S": 0}, "'0' is not a number of seconds"),
            (
                {"NO_LOCAL": True},
                "CVTRACE_VIEWER_NO_LOCAL (--no-local): set, but there is no Jaeger",
            ),
            (
                {"JAEGER_HEADERS": ["Authorization: Bearer x"]},
                "CVTRACE_VIEWER_JAEGER_HEADERS (--jaeger-header): set, but there is no Jaeger for "
                "it; give --jaeger-url URL",
            ),
            (
                {"JAEGER_TIMEOUT_S": "5"},
                "CVTRACE_VIEWER_JAEGER_TIMEOUT_S (--jaeger-timeout): set, but there is no Jaeger",
            ),
            (
                {"JAEGER_URL": "http://j", "NO_LOCAL": "maybe"},
                "CVTRACE_VIEWER_NO_LOCAL: 'maybe' is not a boolean",
            ),
        ],
    )
    def test_bad_settings_name_setting_value_and_fix(
        self, config: dict[str, Any], says: str
    ) -> None:
        with pytest.raises(CvtraceConfigError) as caught:
            remote_options(config)
        assert says in str(caught.value)

    def test_environment(self, monkeypatch: pytest.MonkeyPatch, local_store: SpanStore) -> None:
        monkeypatch.setenv("CVTRACE_VIEWER_JAEGER_URL", "http://jaeger.example:16686/")
        monkeypatch.setenv("CVTRACE_VIEWER_JAEGER_HEADERS", "Authorization=Bearer%20abc,X-Org=7")
        monkeypatch.setenv("CVTRACE_VIEWER_JAEGER_TIMEOUT_S", "2.5")
        monkeypatch.setenv("CVTRACE_VIEWER_NO_LOCAL", "true")
        from cvtrace.viewer.sources import get_source

        app = create_app({"STORE": local_store})
        source = get_source(app)
        assert source.local is None
        assert source.remote is not None
        assert source.remote.options == RemoteOptions(
            "http://jaeger.example:16686",
            {"Authorization": "Bearer abc", "X-Org": "7"},
            2.5,
            no_local=True,
        )
