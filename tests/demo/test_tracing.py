"""The demo traced: in process with captured spans, and as two real services."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import make_url

from cvtrace.demo import create_app, examples, preview_service
from cvtrace.demo.cli import Child, start_child, stop_child
from cvtrace.demo.db import engine_of, make_engine
from cvtrace.demo.seed import seed
from cvtrace.store import SpanStore, StoredSpan
from cvtrace.testing import CapturedSpans


def seeded(url: str, circuits: int = 10) -> str:
    """Seed the database at ``url`` through an untraced engine; return the URL."""
    engine = make_engine(url)
    seed(engine, circuits=circuits)
    engine.dispose()
    return url


class TestInProcess:
    @pytest.fixture
    def client(self, database_url: str, cvtrace_spans: CapturedSpans) -> Iterator[Any]:
        app = create_app(
            {
                "DATABASE_URL": seeded(database_url),
                "SECRET_KEY": "test",
                "PREVIEW_URL": "http://127.0.0.1:9",  # nothing listens: the job fails
            }
        )
        yield app.test_client()
        app.extensions["demo_jobs"].shutdown()
        engine_of(app).dispose()

    def test_health_checks_make_no_spans_not_even_their_query(
        self, client: Any, cvtrace_spans: CapturedSpans
    ) -> None:
        assert client.get("/up").status_code == 200
        assert cvtrace_spans.spans == []
        client.get("/circuits/1", headers={"Accept": "application/json"})
        names = cvtrace_spans.names()
        assert "GET /circuits/<int:circuit_id>" in names
        assert any(name.startswith("SELECT") for name in names)

    def test_database_spans_name_the_database_and_its_server(
        self, client: Any, cvtrace_spans: CapturedSpans, database_url: str
    ) -> None:
        client.get("/circuits/1", headers={"Accept": "application/json"})
        queries = [s for s in cvtrace_spans.spans if s.kind == SpanKind.CLIENT]
        assert len(queries) >= 3
        url = make_url(database_url)
        if url.get_backend_name() == "postgresql":
            expected: dict[str, Any] = {
                "db.system.name": "postgresql",
                "db.namespace": url.database,
                "server.address": "127.0.0.1",
                "server.port": url.port,
            }
            target = url.database
        else:
            expected = {"db.system.name": "sqlite", "db.namespace": url.database}
            target = "circuits.sqlite3"
        for span in queries:
            attributes = dict(span.attributes or {})
            assert {key: attributes.get(key) for key in expected} == expected
            if url.get_backend_name() == "sqlite":
                assert "server.address" not in attributes
            assert span.name == f"{attributes['db.operation.name']} {target}"
        texts = " ".join(str((s.attributes or {}).get("db.query.text")) for s in queries)
        assert "FROM circuits" in texts

    def test_background_job_is_its_own_trace_linked_to_the_request(
        self, client: Any, cvtrace_spans: CapturedSpans, caplog: pytest.LogCaptureFixture
    ) -> None:
        client.post("/login", json={"username": "ada"})
        created = client.post("/circuits", json={"name": "x", "circuit": examples.half_adder()})
        assert created.status_code == 201
        assert client.application.extensions["demo_jobs"].wait(timeout_s=10)
        [request_span] = cvtrace_spans.by_name("POST /circuits")
        [job] = cvtrace_spans.by_name("regenerate preview")
        assert job.parent is None
        assert job.context.trace_id != request_span.context.trace_id
        assert [link.context.span_id for link in job.links] == [request_span.context.span_id]
        # the job's own work is inside its trace; its failure is recorded there
        [call] = [s for s in cvtrace_spans.spans if s.kind == SpanKind.CLIENT and s.name == "POST"]
        assert call.context.trace_id == job.context.trace_id
        assert job.status.status_code == StatusCode.ERROR
        # and its log line carries its trace id
        [record] = [r for r in caplog.records if r.getMessage() == "job regenerate preview failed"]
        # set by the logging hook; logging.LogRecord does not declare it
        assert vars(record)["otelTraceID"] == format(job.context.trace_id, "032x")

    def test_a_failed_simulation_is_an_error_span_under_a_400(
        self, client: Any, cvtrace_spans: CapturedSpans
    ) -> None:
        client.post("/login", json={"username": "ada"})
        created = client.post("/circuits", json={"name": "l", "circuit": examples.sr_latch()})
        circuit_id = created.json["circuit"]["id"]
        response = client.post(
            f"/circuits/{circuit_id}/simulate", json={"inputs": {"s": 1, "r": 0}}
        )
        assert response.status_code == 400
        [span] = cvtrace_spans.by_name("simulate circuit")
        assert span.status.status_code == StatusCode.ERROR
        assert "cycle" in (span.status.description or "")
        [server] = cvtrace_spans.by_name("POST /circuits/<int:circuit_id>/simulate")
        assert span.parent is not None
        assert span.parent.span_id == server.context.span_id
        assert server.attributes is not None
        assert server.attributes["http.response.status_code"] == 400


def test_the_app_names_its_service(tmp_path: Path, cvtrace_spans: CapturedSpans) -> None:
    url = seeded(f"sqlite:///{tmp_path / 'circuits.sqlite3'}", circuits=2)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "t"})
    app.test_client().get("/circuits")
    assert {s.resource.attributes["service.name"] for s in cvtrace_spans.spans} == {"circuits"}


def test_a_deployment_may_rename_a_service(
    cvtrace_spans: CapturedSpans, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "cvtrace-demo-preview")
    preview_service.create_app().test_client().post(
        "/render", json={"circuit": examples.majority()}
    )
    names = {s.resource.attributes["service.name"] for s in cvtrace_spans.spans}
    assert names == {"cvtrace-demo-preview"}


def _attrs(stored: StoredSpan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in stored.span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value") or "string_value")
    return out


@pytest.mark.slow
class TestTwoServices:
    """The site and the preview service as real processes, traced into one store."""

    @pytest.fixture
    def services(self, tmp_path: Path, database_url: str) -> Iterator[tuple[Child, Child, Path]]:
        store = tmp_path / "traces.sqlite3"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OTEL_", "CVTRACE_", "NEW_RELIC_"))
        }
        env |= {
            "CVTRACE_EXPORTERS": "local",
            "CVTRACE_LOCAL_DB": str(store),
            "DATABASE_URL": seeded(database_url),
            "SECRET_KEY": "test",
            "PYTHONUNBUFFERED": "1",
        }
        started: list[Child] = []
        try:
            preview = start_child(
                "preview",
                [sys.executable, "-m", "cvtrace.demo.serve", "preview", "--port", "0"],
                env,
                tmp_path / "preview.log",
                started=started,
            )
            app = start_child(
                "app",
                [sys.executable, "-m", "cvtrace.demo.serve", "app", "--port", "0"],
                env | {"PREVIEW_URL": preview.url},
                tmp_path / "app.log",
                started=started,
            )
            yield app, preview, store
        finally:
            for child in reversed(started):
                stop_child(child)

    def test_one_trace_spans_both_services(
        self, services: tuple[Child, Child, Path], tmp_path: Path
    ) -> None:
        app, preview, store = services
        web = requests.Session()
        web.headers["Accept"] = "application/json"
        assert web.get(f"{app.url}/up", timeout=10).text == "ok\n"
        assert web.get(f"{preview.url}/up", timeout=10).text == "ok\n"
        svg = web.get(f"{app.url}/circuits/2/preview.svg", timeout=10)
        assert svg.status_code == 200
        assert svg.text.startswith("<svg")
        assert web.post(f"{app.url}/login", json={"username": "ada"}, timeout=10).ok
        created = web.post(
            f"{app.url}/circuits",
            json={"name": "Traced adder", "circuit": examples.full_adder()},
            timeout=10,
        )
        assert created.status_code == 201
        circuit_id = created.json()["circuit"]["id"]
        deadline = time.monotonic() + 10  # the job draws the preview in the background
        while "preview of circuit" not in (tmp_path / "app.log").read_text():
            assert time.monotonic() < deadline, (tmp_path / "app.log").read_text()
            time.sleep(0.05)
        assert stop_child(app) == 0  # a clean stop flushes the spans
        assert stop_child(preview) == 0

        with SpanStore(store) as spans:
            assert set(spans.services()) == {"circuits", "preview"}
            traces = [spans.get_trace(trace_id) for trace_id in spans.iter_trace_ids()]
            every_span = [s for trace in traces for s in trace]
            assert not [s for s in every_span if "/up" in str(_attrs(s).get("url.path", ""))]

            # GET preview.svg (circuits) -> POST (requests) -> POST /render (preview)
            [trace] = [
                t
                for t in traces
                if t[0].span.trace_id
                and any(s.span.name == "GET /circuits/<int:circuit_id>/preview.svg" for s in t)
            ]
            by_name = {s.span.name: s for s in trace}
            server = by_name["GET /circuits/<int:circuit_id>/preview.svg"]
            call = by_name["POST"]
            remote = by_name["POST /render"]
            render = by_name["render svg"]
            assert {server.service, call.service} == {"circuits"}
            assert {remote.service, render.service} == {"preview"}
            assert server.span.parent_span_id == b""
            assert call.span.parent_span_id == server.span.span_id
            assert remote.span.parent_span_id == call.span.span_id
            assert render.span.parent_span_id == remote.span.span_id
            assert len({s.span.trace_id for s in trace}) == 1

            # the preview job after the create: its own trace, linked to the request
            [create] = [s for s in every_span if s.span.name == "POST /circuits"]
            [job] = [s for s in every_span if s.span.name == "regenerate preview"]
            assert job.span.trace_id != create.span.trace_id
            assert job.span.parent_span_id == b""
            assert [link.span_id for link in job.span.links] == [create.span.span_id]
            job_trace = spans.get_trace(job.span.trace_id)
            assert {s.service for s in job_trace} == {"circuits", "preview"}

        # the app's log line from the job carries the job's trace id
        log = (tmp_path / "app.log").read_text()
        match = re.search(
            rf"trace_id=([0-9a-f]{{32}}) span_id=[0-9a-f]+\] preview of circuit {circuit_id} ",
            log,
        )
        assert match, log
        assert match.group(1) == job.span.trace_id.hex()
        # and so does the line the request itself logged
        match = re.search(
            rf"trace_id=([0-9a-f]{{32}}) span_id=([0-9a-f]{{16}})\] circuit {circuit_id} created",
            log,
        )
        assert match, log
        assert match.group(1) == create.span.trace_id.hex()
