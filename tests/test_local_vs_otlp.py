"""Spans stored by the ``local`` exporter and received over OTLP are stored identically."""

from __future__ import annotations

from pathlib import Path

import pytest

import cvtrace
from cvtrace.exporters.local import LocalSpanExporter
from cvtrace.store import SpanStore
from tests.sample_app import create_app, create_engine
from tests.viewer_support import ViewerServer, store_snapshot


def test_same_spans_both_ways_give_the_same_rows(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    via_local, via_otlp = tmp_path / "local.sqlite3", tmp_path / "otlp.sqlite3"
    from viewer import create_receiver_app

    receiver_store = SpanStore(via_otlp)
    with ViewerServer(create_receiver_app({"STORE": receiver_store})) as viewer:
        clean_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{viewer.url}/v1/traces")
        engine = create_engine()
        app = create_app(engine)
        # One processor hands every batch to both exporters: the same spans, two paths.
        handle = cvtrace.init(
            app=app, engine=engine, exporters=["otlp", "local"], local_db=via_local
        )
        assert handle.processor is not None
        assert any(isinstance(e, LocalSpanExporter) for e in handle.processor._exporters)
        client = app.test_client()
        client.get("/users/1")
        client.get("/fail")
        client.post("/login", data={"user": "ada", "password": "pw", "api_key": "k"})
        cvtrace.shutdown()
    receiver_store.close()

    local_rows = store_snapshot(via_local)
    otlp_rows = store_snapshot(via_otlp)
    groups = dict(local_rows)["span_groups"]  # (id, resource_id, scope_id, span_ids, body)
    assert sum(len(row[3]) // 8 for row in groups) == 5  # users: 2, fail: 1, login: 2
    assert local_rows == otlp_rows
