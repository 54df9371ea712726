"""The viewer on a real Jaeger (v2.12.0, built by deploy/build.sh) as its remote source.

Jaeger runs as deploy/jaeger-local.yaml starts it (in-memory storage, ports from the
OS) and is fed over OTLP/HTTP, as a collector feeds it. The viewer reads it through
API v3 (OTLP JSON) and, for tag searches and with the API forced to the older one,
through ``/api/traces`` (Jaeger JSON): both must give the same traces, the ones that
were sent. Then the pages over HTTP, ``cvtrace view --jaeger-url`` and ``cvtrace import
--jaeger-url`` as subprocesses, and a remote trace's page in Chromium.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.protobuf import text_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from cvtrace.demo.cli import Child, stop_child
from cvtrace.demo.pipeline import JaegerAddresses, clean_environment, start_jaeger
from cvtrace.store import SpanStore, TraceQuery
from cvtrace.viewer import create_app
from cvtrace.viewer.remote import JaegerSource, RemoteOptions, split_traces
from tests.ops.binaries import ROOT, Binaries
from tests.viewer.support import SpanSpec, ViewerServer, make_request, new_trace_id, simple_trace

pytestmark = pytest.mark.slow

START_NS = (time.time_ns() // 1000 - 120 * 10**6) * 1000
"""Two minutes ago, on a whole microsecond (what Jaeger JSON keeps)."""


class Fed:
    """What was sent to Jaeger: the traces by id, and named ones."""

    def __init__(self) -> None:
        self.requests: dict[bytes, ExportTraceServiceRequest] = {}
        self.named: dict[str, bytes] = {}


def rich_trace() -> list[SpanSpec]:
    """A trace of two services with events, a link, an error, typed attributes."""
    specs = simple_trace("shop", start_ns=START_NS, children=3, child_service="db", error=True)
    root = specs[0]
    root.attrs = {**root.attrs, "http.response.status_code": 500, "ratio": 0.5, "ok": False}
    root.events = [("retry", START_NS + 500_000, {"attempt": 2})]
    root.links = [(new_trace_id(), b"\x01" * 8, {})]
    specs[1].kind = Span.SPAN_KIND_CLIENT
    return specs


@pytest.fixture(scope="module")
def jaeger(
    binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Fed]]:
    """A real Jaeger with a few traces sent over OTLP/HTTP (protobuf); its query URL."""
    workdir = tmp_path_factory.mktemp("remote-jaeger")
    addresses = JaegerAddresses.on_free_ports()
    started: list[Child] = []
    start_jaeger(
        binaries.jaeger,
        ROOT / "deploy" / "jaeger-local.yaml",
        addresses,
        workdir / "jaeger.log",
        started=started,
    )
    fed = Fed()
    try:
        traces = {
            "rich": rich_trace(),
            "plain": simple_trace("shop", start_ns=START_NS + 10**9, children=2),
            "twin": simple_trace("shop", start_ns=START_NS + 2 * 10**9, children=2),
            "other": simple_trace("warehouse", start_ns=START_NS + 3 * 10**9, children=1),
        }
        for name, specs in traces.items():
            request = make_request(specs)
            fed.requests[specs[0].trace_id] = request
            fed.named[name] = specs[0].trace_id
            answer = requests.post(
                f"http://{addresses.otlp_http}/v1/traces",
                data=request.SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 30  # Jaeger's batch processor: a few hundred ms
        source = JaegerSource(RemoteOptions(addresses.query_url, {}))
        while len(source.search(TraceQuery(service="shop", limit=10))) < 3:
            assert time.monotonic() < deadline, "Jaeger did not store the traces sent"
            time.sleep(0.2)
        yield addresses.query_url, fed
    finally:
        for child in started:
            stop_child(child)


def source_of(url: str, version: str | None = None) -> JaegerSource:
    source = JaegerSource(RemoteOptions(url, {}))
    if version is not None:
        source._version = version  # the older API, as an older Jaeger would serve it
    return source


def comparable(request: ExportTraceServiceRequest) -> dict[bytes, Any]:
    """A trace's spans by id, with their service, resource and scope, as protobuf bytes.

    Jaeger 2.12 drops the W3C span flags when it takes OTLP (docs/operations.md): they
    are cleared on both sides; so is an empty status (API v3 writes ``"status": {}``,
    which protobuf keeps as a present but empty field); attributes are compared in key
    order (Jaeger sorts them)."""
    out = {}
    for trace in split_traces(request).values():
        for stored in trace.spans:
            span = Span()
            span.CopyFrom(stored.span)
            span.flags = 0
            if span.status == Status():
                span.ClearField("status")
            ordered = sorted(span.attributes, key=lambda kv: kv.key)
            del span.attributes[:]
            span.attributes.extend(ordered)
            out[span.span_id] = (
                text_format.MessageToString(span, as_one_line=True),
                stored.service,
                sorted((kv.key, kv.value.SerializeToString()) for kv in stored.resource.attributes),
                stored.scope.name,
                stored.scope.version,
            )
    return out


class TestApiVersions:
    def test_v3_is_found(self, jaeger: tuple[str, Fed]) -> None:
        url, _ = jaeger
        assert source_of(url).version() == "v3"

    @pytest.mark.parametrize("version", ["v3", "v1"])
    def test_traces_come_back_as_sent(self, jaeger: tuple[str, Fed], version: str) -> None:
        """Every field the viewer shows: ids, parents, names, kinds, times, attributes of
        every type, events, links, status, resource and scope."""
        url, fed = jaeger
        source = source_of(url, version)
        for trace_id, sent in fed.requests.items():
            found = source.trace(trace_id)
            assert found is not None, (version, trace_id.hex())
            assert comparable(found.request) == comparable(sent), version
            assert found.summary == split_traces(sent)[trace_id].summary

    @pytest.mark.parametrize("version", ["v3", "v1"])
    def test_services_operations_search(self, jaeger: tuple[str, Fed], version: str) -> None:
        url, fed = jaeger
        source = source_of(url, version)
        assert source.services() == ["db", "shop", "warehouse"]
        assert source.operations("shop") == ["GET /", "child 0", "child 1"]
        found = source.search(TraceQuery(service="shop", limit=10))
        named = fed.named
        assert [s.trace_id for s in found] == [named["twin"], named["plain"], named["rich"]]
        found = source.search(TraceQuery(service="warehouse", operation="GET /", limit=10))
        assert [s.trace_id for s in found] == [named["other"]]
        found = source.search(TraceQuery(service="shop", min_duration_ns=10**7, limit=10))
        assert {s.trace_id for s in found} == {named["twin"], named["plain"], named["rich"]}
        assert source.search(TraceQuery(service="shop", min_duration_ns=10**9, limit=10)) == []
        assert source.search(TraceQuery(service="nobody", limit=10)) == []
        found = source.search(TraceQuery(service="shop", limit=2))
        assert len(found) == 2

    def test_tag_and_error_searches(self, jaeger: tuple[str, Fed]) -> None:
        """API v3's HTTP gateway takes no attribute filter: tag searches go to
        /api/traces; errors only is checked by the viewer (Jaeger 2.12's memory storage
        reads the v1 API's error=true as false)."""
        url, fed = jaeger
        source = source_of(url)
        errors = source.search(TraceQuery(service="shop", errors_only=True, limit=10))
        assert [s.trace_id for s in errors] == [fed.named["rich"]]
        tagged = source.search(
            TraceQuery(service="shop", tags={"http.response.status_code": "500"}, limit=10)
        )
        assert [s.trace_id for s in tagged] == [fed.named["rich"]]
        assert source.version() == "v3"

    def test_an_unknown_trace_is_none(self, jaeger: tuple[str, Fed]) -> None:
        url, _ = jaeger
        for version in ("v3", "v1"):
            assert source_of(url, version).trace(new_trace_id()) is None


class TestViewerOnJaeger:
    def test_pages_over_http(self, jaeger: tuple[str, Fed], tmp_path: Path) -> None:
        url, fed = jaeger
        with SpanStore(tmp_path / "local.sqlite3", max_spans=0) as store:
            app = create_app({"STORE": store, "JAEGER_URL": url, "NO_LOCAL": True})
            with ViewerServer(app) as viewer:
                page = requests.get(f"{viewer.url}/?service=shop", timeout=30)
                assert page.status_code == 200
                assert "remote-problem" not in page.text
                listed = re.findall(r'href="/trace/([0-9a-f]{32})"', page.text)
                assert set(listed) == {fed.named[n].hex() for n in ("rich", "plain", "twin")}
                rich = fed.named["rich"].hex()
                page = requests.get(f"{viewer.url}/trace/{rich}", timeout=30)
                assert page.status_code == 200
                assert f"the Jaeger at <code>{url}</code>" in page.text
                for path in (
                    f"/api/traces/{rich}/critical-path",
                    f"/api/traces/{rich}/stats",
                    f"/api/traces/{rich}/flamegraph",
                    f"/trace/{rich}/otlp.json",
                    f"/api/traces/{rich}?download=1",
                ):
                    assert requests.get(viewer.url + path, timeout=30).status_code == 200, path
                shape = requests.get(
                    f"{viewer.url}/api/traces/{fed.named['plain'].hex()}/same-shape", timeout=30
                )
                assert [t["traceID"] for t in shape.json()["data"]] == [fed.named["twin"].hex()]
                saved = requests.post(
                    f"{viewer.url}/trace/{rich}/save", timeout=30, allow_redirects=False
                )
                assert saved.status_code == 303
            stored = store.get_trace(fed.named["rich"])
            assert len(stored) == 4
            assert (
                store.get_summary(fed.named["rich"])
                == split_traces(fed.requests[fed.named["rich"]])[fed.named["rich"]].summary
            )

    def test_cvtrace_view_and_import_as_a_new_user_runs_them(
        self, jaeger: tuple[str, Fed], tmp_path: Path
    ) -> None:
        """``cvtrace view --jaeger-url URL --no-local`` says which API it found and
        serves Jaeger's traces; ``cvtrace import --jaeger-url URL ID`` saves one."""
        url, fed = jaeger
        env = clean_environment() | {"PYTHONUNBUFFERED": "1"}
        view = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cvtrace.cli",
                "view",
                "--db",
                str(tmp_path / "v.sqlite3"),
                "--port",
                "0",
                "--otlp-port",
                "0",
                "--otlp-grpc-port",
                "-1",
                "--jaeger-url",
                url,
                "--no-local",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        try:
            assert view.stdout is not None
            lines = [view.stdout.readline() for _ in range(4)]  # the start-up lines
            assert (
                f"traces instead of the store's from the Jaeger at {url} (API v3)" in lines[-1]
            ), lines
            viewer_url = re.search(r"cvtrace viewer on (\S+)", lines[0]).group(1)  # type: ignore[union-attr]
            page = requests.get(f"{viewer_url}trace/{fed.named['other'].hex()}", timeout=30)
            assert page.status_code == 200
            assert "warehouse" in page.text
        finally:
            view.terminate()
            view.wait(timeout=10)
            if view.stdout is not None:
                view.stdout.close()

        db = tmp_path / "imported.sqlite3"
        ids = [fed.named["plain"].hex(), fed.named["other"].hex(), "ff" * 16]

        def import_from_jaeger(*trace_ids: str) -> subprocess.CompletedProcess[str]:
            command = ["import", "--db", str(db), "--jaeger-url", url, *trace_ids]
            return subprocess.run(
                [sys.executable, "-m", "cvtrace.cli", *command],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            )

        done = import_from_jaeger(*ids)
        assert done.returncode == 1, done.stderr  # the unknown id is reported
        assert f"the Jaeger at {url} does not have it" in done.stderr
        assert "2 traces, 5 spans (5 new, 0 already stored)" in done.stdout
        with SpanStore(db) as store:
            assert store.trace_count() == 2
        again = import_from_jaeger(ids[0])
        assert again.returncode == 0, again.stderr
        assert "(0 new, 3 already stored)" in again.stdout


@pytest.mark.browser
def test_remote_trace_page_in_chromium(jaeger: tuple[str, Fed], tmp_path: Path) -> None:
    """A Jaeger trace's page draws its waterfall and details in Chromium, asking only
    the viewer (never the Jaeger) from the browser, with no console error."""
    from playwright.sync_api import sync_playwright

    from bench.common import CHROMIUM, CHROMIUM_ARGS
    from tests.browser import READY

    url, fed = jaeger
    rich = fed.named["rich"].hex()
    with SpanStore(tmp_path / "local.sqlite3", max_spans=0) as store:
        app = create_app({"STORE": store, "JAEGER_URL": url})
        with ViewerServer(app) as viewer, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                asked: list[str] = []
                errors: list[str] = []
                page.on("request", lambda r: asked.append(r.url))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(f"{viewer.url}/trace/{rich}")
                page.wait_for_function(READY, timeout=60_000)
                assert page.locator(".wf-row[data-row]").count() == 4
                assert page.locator("#trace-origin").inner_text().startswith("Source")
                page.locator(".wf-row[data-row]").first.click()
                page.wait_for_selector("#details :text('retry')", timeout=30_000)
                page.locator("#save-trace").click()
                page.wait_for_selector("#saved-note", timeout=30_000)
                assert "4 new spans" in page.locator("#saved-note").inner_text()
                page.wait_for_load_state("networkidle")
                assert errors == []
                assert asked
                assert all(
                    u.startswith(viewer.url) or u.startswith(("data:", "blob:")) for u in asked
                )
            finally:
                browser.close()
