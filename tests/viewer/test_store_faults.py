"""The store's faults as the viewer meets them (real HTTP, gRPC and CLI)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from cvtrace.store import SpanStore
from cvtrace.viewer import create_app, get_store
from cvtrace.viewer.grpc_receiver import start_grpc_server
from tests.store.test_connections import app_database, fingerprint, stored_store, unwritable
from tests.store.test_writing import NO_PAGE_LIMIT, big_request, fill_to_page_limit
from tests.viewer.support import OtlpServer, ViewerServer, make_request, simple_trace
from tests.viewer.test_cli import read_banner, start_view

PB = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(params=["otlp-http-server", "flask-route"])
def otlp_url(request: pytest.FixtureRequest, store: SpanStore) -> Iterator[str]:
    """``/v1/traces`` both ways it is served: cvtrace view's OTLP port, the Flask route."""
    if request.param == "otlp-http-server":
        with OtlpServer(store) as server:
            yield f"{server.url}/v1/traces"
    else:
        with ViewerServer(create_app({"STORE": store})) as server:
            yield f"{server.url}/v1/traces"


def store_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


class TestFullDisk:
    """SQLite's page limit stands in for a full disk (see tests/store/test_writing.py)."""

    def test_http_answers_507_with_the_cause_logged_once(
        self, otlp_url: str, store: SpanStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        fill_to_page_limit(store)
        body = big_request().SerializeToString()
        with caplog.at_level(logging.INFO, logger="cvtrace"):
            for _ in range(3):
                response = requests.post(otlp_url, data=body, headers=PB, timeout=10)
                assert response.status_code == 507
                assert "Retry-After" not in response.headers
                status = status_pb2.Status.FromString(response.content)
                assert status.code == code_pb2.RESOURCE_EXHAUSTED
                assert "database or disk is full" in status.message
                assert "free space" in status.message
            (warning,) = store_warnings(caplog)
            assert "is full" in warning
            store._writing().conn.execute(f"PRAGMA max_page_count = {NO_PAGE_LIMIT}")
            response = requests.post(otlp_url, data=body, headers=PB, timeout=10)
            assert response.status_code == 200
        assert store.span_count() == 3

    def test_grpc_answers_resource_exhausted(self, store: SpanStore) -> None:
        fill_to_page_limit(store)
        server, port = start_grpc_server(store, "127.0.0.1", 0)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = trace_service_pb2_grpc.TraceServiceStub(channel)
                with pytest.raises(grpc.RpcError) as info:
                    stub.Export(big_request(), timeout=10)
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "database or disk is full" in (info.value.details() or "")
                store._writing().conn.execute(f"PRAGMA max_page_count = {NO_PAGE_LIMIT}")
                stub.Export(make_request(simple_trace()), timeout=10)
        finally:
            server.stop(grace=None).wait()
        assert store.span_count() == 3


@pytest.mark.slow
def test_view_refuses_another_applications_database(tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite3"  # the file start_view passes as --db
    app_database(user_version=2)(db)
    before = fingerprint(db)
    proc = start_view(tmp_path)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "another application's SQLite database (tables: users" in err
    assert "Point --db at a cvtrace store" in err  # the option it was given with
    assert "Traceback" not in err
    assert fingerprint(db) == before


class TestReadOnlyStore:
    """A store this user cannot write (see ``unwritable``): pages and search work, OTLP is
    refused for good, and no -wal or -shm appears beside it."""

    def test_pages_and_search_work_and_otlp_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "theirs.sqlite3"
        trace_id = stored_store(path)
        before = fingerprint(path)
        with unwritable(path):
            app = create_app({"DB_PATH": path})
            store = get_store(app)
            try:
                assert store.read_only
                with ViewerServer(app) as server:
                    found = requests.get(
                        f"{server.url}/api/traces", params={"service": "shop"}, timeout=10
                    )
                    assert found.status_code == 200
                    assert [t["traceID"] for t in found.json()["data"]] == [trace_id.hex()]
                    for page in ("/?service=shop", f"/trace/{trace_id.hex()}"):
                        assert requests.get(server.url + page, timeout=10).status_code == 200
                    body = make_request(simple_trace()).SerializeToString()
                    refused = requests.post(
                        f"{server.url}/v1/traces", data=body, headers=PB, timeout=10
                    )
                assert refused.status_code == 403  # not retryable, unlike 503
                assert "Retry-After" not in refused.headers
                status = status_pb2.Status.FromString(refused.content)
                assert status.code == code_pb2.PERMISSION_DENIED
                assert "read-only" in status.message
                server_grpc, port = start_grpc_server(store, "127.0.0.1", 0)
                try:
                    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
                        with pytest.raises(grpc.RpcError) as info:
                            stub.Export(make_request(simple_trace()), timeout=10)
                    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
                finally:
                    server_grpc.stop(grace=None).wait()
                assert fingerprint(path) == before
            finally:
                store.close()
        assert fingerprint(path) == before

    @pytest.mark.slow
    def test_view_says_so_at_start(self, tmp_path: Path) -> None:
        db = tmp_path / "cli.sqlite3"  # the file start_view passes as --db
        stored_store(db)
        before = fingerprint(db)
        with unwritable(db):
            proc = start_view(tmp_path)
            try:
                urls = read_banner(proc)
                assert "(read-only: this user cannot write it; OTLP is refused)" in urls["store"]
                services = requests.get(urls["ui"] + "api/services", timeout=10).json()
                assert services["data"] == ["shop"]
                body = make_request(simple_trace()).SerializeToString()
                refused = requests.post(urls["otlp"], data=body, headers=PB, timeout=10)
                assert refused.status_code == 403
                assert fingerprint(db) == before
            finally:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=20) == 0
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
            assert fingerprint(db) == before
