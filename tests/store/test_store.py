"""The SQLite span store: writing, validation, summaries, search, retention."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cvtrace.exceptions import CvtraceConfigError
from cvtrace.store import (
    DEFAULT_MAX_SPANS,
    DEFAULT_TAG_KEYS,
    SCHEMA_VERSION,
    SpanStore,
    TraceQuery,
    WriteResult,
    retention,
    search,
    spans_to_traces_data,
)
from cvtrace.store.batches import duration_bucket
from cvtrace.store.schema import MIGRATIONS
from tests.viewer.support import T0_NS, SpanSpec, make_request, new_trace_id, simple_trace


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SpanStore]:
    s = SpanStore(tmp_path / "t.sqlite3", max_spans=0, max_age_s=0)
    yield s
    s.close()


class TestOpen:
    def test_parent_dirs_created_and_wal(self, tmp_path: Path) -> None:
        path = tmp_path / "a" / "b" / "t.sqlite3"
        with SpanStore(path):
            pass
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 8192
        conn.close()


class TestWrite:
    def test_roundtrip_is_lossless(self, store: SpanStore) -> None:
        specs = simple_trace(attrs={"password_hint": "x", "n": 3, "f": 1.5, "b": True})
        specs[0].events = [("exception", T0_NS + 5, {"exception.type": "ValueError"})]
        request = make_request(specs)
        assert store.write_request(request) == WriteResult(3, 0, "", 3)
        stored = store.get_trace(specs[0].trace_id)
        assert [s.span.name for s in stored] == ["GET /", "child 0", "child 1"]
        data = spans_to_traces_data(stored)
        sent = {
            s.span_id: s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans
        }
        got = [s for rs in data.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert {s.span_id: s for s in got} == sent
        assert data.resource_spans[0].resource == request.resource_spans[0].resource
        assert data.resource_spans[0].scope_spans[0].scope.name == "tests"
        assert stored[0].service == "svc"

    def test_invalid_spans_rejected_valid_kept(self, store: SpanStore) -> None:
        trace_id = new_trace_id()
        specs = [
            SpanSpec("ok", trace_id),
            SpanSpec("short trace", b"\x01" * 8),
            SpanSpec("zero trace", bytes(16)),
            SpanSpec("short span", trace_id, span_id=b"\x01\x02"),
            SpanSpec("zero span", trace_id, span_id=bytes(8)),
            SpanSpec("bad parent", trace_id, parent_span_id=b"\x01" * 3),
        ]
        result = store.write_request(make_request(specs))
        assert result.accepted_spans == 1
        assert result.rejected_spans == 5
        assert "all-zero trace id" in result.error_message
        assert "span id that is not 8 bytes" in result.error_message
        assert [s.span.name for s in store.get_trace(trace_id)] == ["ok"]
        assert store.span_count() == 1

    def test_all_invalid_changes_nothing(self, store: SpanStore, tmp_path: Path) -> None:
        result = store.write_request(make_request([SpanSpec("bad", bytes(16))]))
        assert result == WriteResult(0, 1, result.error_message)
        assert store.span_count() == 0
        assert store.trace_count() == 0

    def test_duplicates_are_stored_once(self, store: SpanStore) -> None:
        specs = simple_trace(children=3)
        assert store.write_request(make_request(specs[:2])).new_spans == 2
        # resend one old span with the rest; and one span twice in one request
        result = store.write_request(make_request([specs[1], specs[2], specs[3], specs[3]]))
        assert (result.accepted_spans, result.new_spans) == (4, 2)
        assert store.write_request(make_request(specs)).new_spans == 0
        summary = store.get_summary(specs[0].trace_id)
        assert summary is not None
        assert summary.span_count == 4
        assert store.span_count() == 4
        assert len(store.get_trace(specs[0].trace_id)) == 4

    def test_summary_merges_batches_root_last(self, store: SpanStore) -> None:
        specs = simple_trace(children=2, child_service="db", error=False)
        specs[2].error = True
        store.write_request(make_request(specs[1:]))  # children first, as SDKs do
        summary = store.get_summary(specs[0].trace_id)
        assert summary is not None
        assert not summary.has_root
        assert summary.root_name == "child 0"
        store.write_request(make_request(specs[:1]))
        summary = store.get_summary(specs[0].trace_id)
        assert summary is not None
        assert summary.has_root
        assert (summary.root_name, summary.root_service) == ("GET /", "svc")
        assert summary.span_count == 3
        assert summary.error_count == 1
        assert summary.services == {"svc": 1, "db": 2}
        assert summary.start_ns == T0_NS
        assert summary.duration_ns == 10_000_000

    def test_times_beyond_int64_are_stored_and_summarised(self, store: SpanStore) -> None:
        """OTLP times are unsigned 64-bit; SQLite's integers are signed."""
        specs = simple_trace(start_ns=2**64 - 10, children=0)
        specs[0].duration_ns = 5
        assert store.write_request(make_request(specs)).accepted_spans == 1
        summary = store.get_summary(specs[0].trace_id)
        assert summary is not None
        assert summary.start_ns == summary.end_ns == 2**63 - 1
        assert summary.root_name == "GET /"
        (stored,) = store.get_trace(specs[0].trace_id)
        assert stored.span.end_time_unix_nano == 2**64 - 5

    def test_sdk_spans_through_encoder(self, store: SpanStore) -> None:
        exporter = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": "sdk-app"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner"):
            pass
        provider.shutdown()
        spans = exporter.get_finished_spans()
        assert store.write_request(encode_spans(spans)).accepted_spans == 2
        assert store.services() == ["sdk-app"]
        assert store.operations("sdk-app") == ["inner", "outer"]
        (summary,) = store.search(TraceQuery(service="sdk-app"))
        assert summary.root_name == "outer"

    def test_concurrent_writers_two_stores(self, tmp_path: Path) -> None:
        path = tmp_path / "shared.sqlite3"
        stores = [SpanStore(path, max_spans=0), SpanStore(path, max_spans=0)]
        errors: list[BaseException] = []

        def work(s: SpanStore) -> None:
            try:
                for _ in range(30):
                    s.write_request(make_request(simple_trace(service="w")))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert stores[0].span_count() == 180
        assert stores[1].trace_count() == 60
        for s in stores:
            s.close()

    def test_threads_sharing_one_store_group_commit(self, store: SpanStore) -> None:
        """Requests written together in one transaction each keep their own spans."""
        traces = [[simple_trace(f"svc{t}", children=4) for _ in range(25)] for t in range(4)]
        errors: list[BaseException] = []

        def work(mine: list[list[SpanSpec]]) -> None:
            try:
                for specs in mine:
                    # each request: one whole trace plus one span sent twice
                    result = store.write_request(make_request([*specs, specs[0]]))
                    assert result.accepted_spans == 6
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(mine,)) for mine in traces]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert store.span_count() == 4 * 25 * 5
        for mine in traces:
            for specs in mine:
                summary = store.get_summary(specs[0].trace_id)
                assert summary is not None
                assert summary.span_count == 5
                assert summary.services == {specs[0].service: 5}
        assert store.services() == ["svc0", "svc1", "svc2", "svc3"]

    def test_short_lived_reader_threads_do_not_leak_connections(self, store: SpanStore) -> None:
        """A threaded WSGI server reads from a new thread per request."""
        store.write_request(make_request(simple_trace()))
        store.services()
        fds_before = len(os.listdir("/proc/self/fd"))
        for _ in range(60):
            t = threading.Thread(target=store.services)
            t.start()
            t.join()
        assert len(os.listdir("/proc/self/fd")) <= fds_before + 8 * 3  # a few pooled

    def test_file_changed_when_deleted_or_replaced(self, tmp_path: Path) -> None:
        path = tmp_path / "t.sqlite3"
        with SpanStore(path) as store:
            assert not store.file_changed()
            store.write_request(make_request(simple_trace()))
            assert not store.file_changed()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink()
            assert store.file_changed()
            path.write_bytes(b"")  # another file by the same name
            assert store.file_changed()

    def test_not_a_database_is_a_config_error(self, tmp_path: Path) -> None:
        path = tmp_path / "notes.txt"
        path.write_text("not sqlite at all " * 100)
        with pytest.raises(CvtraceConfigError, match="CVTRACE_LOCAL_DB: cannot open"):
            SpanStore(path)
        assert path.read_text().startswith("not sqlite")

    def test_a_new_store_says_it_is_made_not_migrated(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Six "migrating ... to schema N" lines for a file just made looked alarming."""
        path = tmp_path / "new.sqlite3"
        with caplog.at_level("INFO", logger="cvtrace.store"), SpanStore(path):
            pass
        said = [r.getMessage() for r in caplog.records if "span store" in r.getMessage()]
        assert said == [f"creating the span store {path} (schema {SCHEMA_VERSION})"]

    def test_migrates_a_version_1_store(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A file written with schema 1 (a row per span, keyed by an index) is upgraded."""
        traces = [simple_trace(start_ns=T0_NS + i, children=i % 3) for i in range(6)]
        traces[0][0].duration_ns = 50_000_000_000  # a long trace
        v2_path, v1_path = tmp_path / "v2.sqlite3", tmp_path / "v1.sqlite3"
        with SpanStore(v2_path, max_spans=0) as reference:
            for specs in traces:
                reference.write_request(make_request(specs))
            expected = {s[0].trace_id: reference.get_trace(s[0].trace_id) for s in traces}
        # the same rows, laid out as schema 1 stored them
        v1 = sqlite3.connect(v1_path)
        v1.executescript(MIGRATIONS[1])
        v1.execute("PRAGMA user_version = 1")
        v1.execute("ATTACH ? AS v2", (str(v2_path),))
        v1.execute("DELETE FROM meta")
        v1.execute("INSERT INTO meta SELECT * FROM v2.meta WHERE key = 'span_count'")
        for table in ("services", "operations", "resources", "scopes", "tags"):
            v1.execute(f"INSERT INTO {table} SELECT * FROM v2.{table}")
        for table in ("trace_services", "trace_operations", "trace_tags"):
            v1.execute(f"INSERT INTO {table} SELECT * FROM v2.{table}")
        v1.execute(
            "INSERT INTO traces SELECT key, trace_id, start_ns, end_ns, span_count, "
            "error_count, has_root, root_name, root_service, services FROM v2.traces"
        )
        groups = v1.execute(
            "SELECT id, resource_id, scope_id, span_ids, body FROM v2.span_groups ORDER BY id DESC"
        ).fetchall()
        for row_id, resource_id, scope_id, span_ids, body in groups:
            for i, span in enumerate(ScopeSpans.FromString(body).spans):
                assert span.span_id == span_ids[8 * i : 8 * i + 8]
                v1.execute(
                    "INSERT INTO spans (trace_key, span_id, resource_id, scope_id, body) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (row_id >> 32, span.span_id, resource_id, scope_id, span.SerializeToString()),
                )
        v1.commit()
        v1.execute("DETACH v2")
        v1.close()
        with caplog.at_level("INFO", logger="cvtrace.store"):
            SpanStore(v1_path, max_spans=0).close()
        assert [r.getMessage() for r in caplog.records if "migrating" in r.getMessage()] == [
            f"migrating the span store {v1_path} to schema {n}"
            for n in range(2, SCHEMA_VERSION + 1)
        ]
        with SpanStore(v1_path, max_spans=0) as migrated:
            conn = sqlite3.connect(v1_path)
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            ids = [r[0] for r in conn.execute("SELECT id FROM span_groups ORDER BY id")]
            conn.close()
            by_trace: dict[int, list[int]] = {}
            for row_id in ids:  # schema 1's spans become groups of one span
                by_trace.setdefault(row_id >> 32, []).append(row_id & 0xFFFFFFFF)
            assert sorted(map(len, by_trace.values())) == sorted(len(t) for t in traces)
            assert all(ordinals == list(range(len(ordinals))) for ordinals in by_trace.values())
            for trace_id, spans in expected.items():
                assert migrated.get_trace(trace_id) == spans
            (long_trace,) = migrated.search(TraceQuery(min_duration_ns=40_000_000_000))
            assert long_trace.trace_id == traces[0][0].trace_id
            assert len(migrated.search(TraceQuery(min_duration_ns=1, limit=100))) == 6
            # writing continues after the migrated rows: a late span of an old trace
            late = simple_trace(children=1)[1]
            late.trace_id = traces[2][0].trace_id
            migrated.write_request(make_request([late]))
            assert len(migrated.get_trace(late.trace_id)) == len(traces[2]) + 1
            assert migrated.span_count() == sum(len(t) for t in traces) + 1


class TestTraceIdIndex:
    """New traces are looked up in memory until enough of them are indexed at once."""

    @pytest.fixture(autouse=True)
    def _small_batches(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("cvtrace.store.writing._INDEX_BATCH", 4)

    @staticmethod
    def _indexed(path: Path) -> tuple[int, int]:
        with sqlite3.connect(path) as conn:
            (indexed_key,) = conn.execute(
                "SELECT value FROM meta WHERE key = 'indexed_key'"
            ).fetchone()
            (indexed,) = conn.execute("SELECT count(*) FROM trace_ids").fetchone()
        return int(indexed_key), int(indexed)

    def test_traces_are_indexed_in_batches_and_found_either_way(self, store: SpanStore) -> None:
        traces = [simple_trace(start_ns=T0_NS + i) for i in range(10)]
        for specs in traces[:3]:
            store.write_request(make_request(specs[:2]))
        assert self._indexed(store.path) == (0, 0)  # 3 recent traces
        for specs in traces[3:]:
            store.write_request(make_request(specs[:2]))
        indexed_key, indexed = self._indexed(store.path)
        assert indexed_key == indexed == 8  # two batches of 4 (and more), 2 recent
        # the rest of each trace arrives: merged into the stored trace, indexed or not
        for specs in traces:
            store.write_request(make_request(specs[2:]))
        assert store.trace_count() == 10
        for specs in traces:
            assert len(store.get_trace(specs[0].trace_id)) == 3
            summary = store.get_summary(specs[0].trace_id)
            assert summary is not None
            assert summary.span_count == 3
            assert store.get_span(specs[0].trace_id, specs[2].span_id) is not None
        assert store.get_trace(new_trace_id()) == []
        # many at once: indexed, recent and unknown ones
        asked = [specs[0].trace_id for specs in traces] + [new_trace_id()]
        found = store.get_traces(asked)
        assert set(found) == set(asked[:-1])
        assert all(len(spans) == 3 for spans in found.values())

    def test_writers_see_each_others_recent_and_indexed_traces(self, tmp_path: Path) -> None:
        path = tmp_path / "shared.sqlite3"
        with SpanStore(path, max_spans=0) as first, SpanStore(path, max_spans=0) as second:
            traces = [simple_trace(start_ns=T0_NS + i, children=3) for i in range(7)]
            for specs in traces:
                first.write_request(make_request(specs[:2]))
            # the second store continues every trace; 4 are indexed, 3 recent
            assert self._indexed(path) == (4, 4)
            for specs in traces:
                second.write_request(make_request(specs[2:]))
            # and the first store continues after the second one's writes
            extra = SpanSpec("late", traces[0][0].trace_id, parent_span_id=traces[0][0].span_id)
            first.write_request(make_request([extra]))
            assert first.trace_count() == 7
            assert len(second.get_trace(traces[0][0].trace_id)) == 5
            for specs in traces[1:]:
                assert len(first.get_trace(specs[0].trace_id)) == 4

    def test_retention_removes_indexed_ids(self, tmp_path: Path) -> None:
        with SpanStore(tmp_path / "r.sqlite3", max_spans=30, max_age_s=0) as store:
            traces = [simple_trace(start_ns=T0_NS + i) for i in range(12)]
            for specs in traces:
                store.write_request(make_request(specs))
            with sqlite3.connect(store.path) as conn:
                indexed = {bytes(r[0]) for r in conn.execute("SELECT trace_id FROM trace_ids")}
            assert indexed  # some were indexed, and only stored ones are
            assert indexed <= set(store.iter_trace_ids())
            assert traces[0][0].trace_id not in indexed

    def test_a_failed_write_forgets_its_new_traces(self, store: SpanStore) -> None:
        """After a rollback, the store does not believe in traces it never wrote."""
        specs = simple_trace()
        store._writing().conn.execute(
            "CREATE TRIGGER fail_groups BEFORE INSERT ON span_groups "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
        with pytest.raises(sqlite3.IntegrityError, match="disk full"):
            store.write_request(make_request(specs))
        store._writing().conn.execute("DROP TRIGGER fail_groups")
        store.write_request(make_request(specs))
        assert store.trace_count() == 1
        assert len(store.get_trace(specs[0].trace_id)) == 3


class TestEncoded:
    def test_spans_stored_as_sent(self, store: SpanStore, tmp_path: Path) -> None:
        """With the request's bytes, each span is kept as its slice of them."""
        specs = simple_trace(children=2)
        request = make_request(specs)
        encoded = request.SerializeToString()
        assert store.write_request(request, encoded).accepted_spans == 3
        conn = sqlite3.connect(tmp_path / "t.sqlite3")
        (body,) = conn.execute("SELECT body FROM span_groups").fetchone()
        conn.close()
        assert body in encoded  # one resource and scope: the request's spans field, as sent
        sent = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert list(ScopeSpans.FromString(body).spans) == sent

    def test_bytes_that_do_not_match_are_not_used(self, store: SpanStore) -> None:
        """Bytes of another request (or garbage) fall back to serializing the spans."""
        specs = simple_trace(children=2)
        other = make_request(simple_trace(children=5)).SerializeToString()
        for wrong in (other, b"\xff\xff\xff", b""):
            trace = simple_trace(children=2)
            store.write_request(make_request(trace), wrong)
            stored = store.get_trace(trace[0].trace_id)
            assert {s.span.span_id for s in stored} == {s.span_id for s in trace}
        store.write_request(make_request(specs), other)
        assert len(store.get_trace(specs[0].trace_id)) == 3


def test_duration_buckets_are_ordered() -> None:
    durations = [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 1000, 1023, 1024, 10**9, 2**62, 2**63 - 1]
    buckets = [duration_bucket(d) for d in durations]
    assert buckets == sorted(buckets)
    assert duration_bucket(10**9) != duration_bucket(2 * 10**9)
    assert duration_bucket(-5) == 0


class TestSearch:
    @pytest.fixture
    def filled(self, store: SpanStore) -> SpanStore:
        for i in range(30):
            store.write_request(
                make_request(
                    simple_trace(
                        service="web" if i % 3 else "api",
                        start_ns=T0_NS + i * 1_000_000_000,
                        root_name="GET /a" if i % 2 else "GET /b",
                        error=i % 5 == 0,
                        attrs={
                            "http.response.status_code": 500 if i % 5 == 0 else 200,
                            "custom.key": f"v{i}",
                        },
                    )
                )
            )
        return store

    def test_services_and_operations(self, filled: SpanStore) -> None:
        assert filled.services() == ["api", "web"]
        assert filled.operations("api") == ["GET /a", "GET /b", "child 0", "child 1"]
        assert filled.operations("nope") == []

    def test_newest_first_and_limit(self, filled: SpanStore) -> None:
        results = filled.search(TraceQuery(limit=5))
        assert len(results) == 5
        starts = [r.start_ns for r in results]
        assert starts == sorted(starts, reverse=True)
        assert starts[0] == T0_NS + 29 * 1_000_000_000

    def test_service_and_operation(self, filled: SpanStore) -> None:
        results = filled.search(TraceQuery(service="api", operation="GET /b", limit=100))
        # api: i % 3 == 0; GET /b: i even -> i in 0, 6, 12, 18, 24
        assert len(results) == 5
        assert all(r.root_service == "api" and r.root_name == "GET /b" for r in results)
        assert filled.search(TraceQuery(service="nope")) == []
        assert filled.search(TraceQuery(service="api", operation="nope")) == []

    def test_indexed_tags(self, filled: SpanStore) -> None:
        results = filled.search(TraceQuery(tags={"http.response.status_code": "500"}, limit=100))
        assert len(results) == 6
        assert all(r.error_count == 1 for r in results)
        both = filled.search(
            TraceQuery(service="web", tags={"error": "true", "host.name": "box"}, limit=100)
        )
        assert {r.root_service for r in both} == {"web"}
        assert len(both) == 4  # i in 5, 10, 20, 25

    def test_unindexed_tag_scans(self, filled: SpanStore) -> None:
        (result,) = filled.search(TraceQuery(tags={"custom.key": "v7"}))
        assert result.start_ns == T0_NS + 7 * 1_000_000_000

    def test_duration_time_and_errors(self, filled: SpanStore) -> None:
        assert len(filled.search(TraceQuery(min_duration_ns=10_000_000, limit=100))) == 30
        assert filled.search(TraceQuery(min_duration_ns=10_000_001)) == []
        assert len(filled.search(TraceQuery(max_duration_ns=10_000_000, limit=100))) == 30
        window = TraceQuery(
            start_min_ns=T0_NS + 10 * 1_000_000_000, start_max_ns=T0_NS + 19 * 1_000_000_000
        )
        window.limit = 100
        assert len(filled.search(window)) == 10
        assert len(filled.search(TraceQuery(errors_only=True, limit=100))) == 6


class TestRetention:
    def test_max_spans_deletes_oldest_whole_traces(self, tmp_path: Path) -> None:
        with SpanStore(tmp_path / "r.sqlite3", max_spans=30, max_age_s=0) as store:
            traces = [simple_trace(start_ns=T0_NS + i) for i in range(12)]  # 3 spans each
            for specs in traces:
                store.write_request(make_request(specs))
            assert store.span_count() <= 30
            assert store.span_count() % 3 == 0
            remaining = set(store.iter_trace_ids())
            assert traces[-1][0].trace_id in remaining
            assert traces[0][0].trace_id not in remaining
            for trace_id in remaining:
                assert len(store.get_trace(trace_id)) == 3
            # search tables were cleaned too
            assert len(store.search(TraceQuery(service="svc", limit=100))) == len(remaining)

    def test_deletes_in_steps_and_keeps_the_cap(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Above the limit, each write deletes one step, never letting the store stay over it."""
        monkeypatch.setattr(retention, "RETENTION_STEP_SPANS", 30)
        with SpanStore(tmp_path / "r.sqlite3", max_spans=300, max_age_s=0) as store:
            counts = []
            for i in range(200):  # 3 spans each
                store.write_request(make_request(simple_trace(start_ns=T0_NS + i)))
                counts.append(store.span_count())
        assert max(counts) <= 300
        crossing = counts.index(max(counts)) + 1  # the write that went above 300
        # one step: the 3 spans over the limit and 30 more at most, not down to 270 at once
        assert counts[crossing] == 300 + 3 - 30
        steps = [b - a for a, b in zip(counts[crossing:], counts[crossing + 1 :], strict=False)]
        assert min(steps) >= 3 - 30 - 3  # every later write deleted one step at most
        assert 270 in counts  # ... down to 90% of the limit, then the store grows again
        assert counts[-1] > 270

    def test_age_sweep_goes_in_steps_without_waiting_a_minute(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        import time

        monkeypatch.setattr(retention, "RETENTION_STEP_SPANS", 30)
        now = time.time_ns()
        with SpanStore(tmp_path / "a.sqlite3", max_spans=0, max_age_s=3600) as store:
            store.enforce_retention()  # the first sweep, on an empty store
            for i in range(20):
                store.write_request(make_request(simple_trace(start_ns=now - 7200 * 10**9 + i)))
            assert store.span_count() == 60  # swept a minute ago: not yet
            store.enforce_retention()
            assert store.span_count() == 30  # one step of 30 spans
            store.write_request(make_request(simple_trace(start_ns=now)))
            assert store.span_count() == 3  # the next write went on at once

    def test_deleting_call_rows_uses_their_trace_index(self, store: SpanStore) -> None:
        """Retention deletes the oldest traces' call rows by range, not by a scan."""
        plan = (
            store._writing()
            .conn.execute("EXPLAIN QUERY PLAN DELETE FROM calls WHERE trace_key <= 5")
            .fetchall()
        )
        assert [row[3] for row in plan] == [
            "SEARCH calls USING COVERING INDEX calls_by_trace (trace_key<?)"
        ]

    def test_a_version_5_store_gets_the_call_index(self, tmp_path: Path) -> None:
        path = tmp_path / "v5.sqlite3"
        with SpanStore(path, max_spans=0) as store:
            store.write_request(make_request(simple_trace()))
        with sqlite3.connect(path) as conn:
            conn.execute("DROP INDEX calls_by_trace")
            conn.execute("PRAGMA user_version = 5")
        with SpanStore(path, max_spans=0) as store:
            assert store.span_count() == 3
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        assert conn.execute("SELECT count(*) FROM calls INDEXED BY calls_by_trace").fetchone()
        conn.close()

    def test_the_store_reads_no_environment(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Its writers pass their own settings (CVTRACE_VIEWER_* set the viewer's only)."""
        monkeypatch.setenv("CVTRACE_VIEWER_MAX_SPANS", "5")
        monkeypatch.setenv("CVTRACE_VIEWER_MAX_AGE_HOURS", "lots")
        monkeypatch.setenv("CVTRACE_STORE_TAG_KEYS", "app.tenant")
        with SpanStore(tmp_path / "e.sqlite3") as store:
            assert (store.max_spans, store.max_age_s) == (DEFAULT_MAX_SPANS, 0)
            assert store.tag_keys == DEFAULT_TAG_KEYS

    def test_max_age(self, tmp_path: Path) -> None:
        import time

        now = time.time_ns()
        with SpanStore(tmp_path / "a.sqlite3", max_spans=0, max_age_s=3600) as store:
            old = simple_trace(start_ns=now - 7200 * 10**9)
            new = simple_trace(start_ns=now - 60 * 10**9)
            store.write_request(make_request(old))
            store.write_request(make_request(new))
            store.enforce_retention()
            assert list(store.iter_trace_ids()) == [new[0].trace_id]
            assert store.span_count() == 3


def test_search_sizes_count_the_newest_traces(
    monkeypatch: pytest.MonkeyPatch, store: SpanStore
) -> None:
    """Which filter drives is chosen by its traces among the newest, not in the whole store."""
    monkeypatch.setattr(search, "_SIZE_WINDOW", 10)
    for i in range(30):  # the 20 oldest fail, the 10 newest do not
        store.write_request(make_request(simple_trace(start_ns=T0_NS + i, error=i < 20)))
    query = TraceQuery(service="svc", tags={"error": "true"}, min_duration_ns=1)
    with store._connections.reading() as conn:
        lookups = store._searcher.lookups(conn, query)
        assert lookups is not None
        assert lookups.service_id is not None
        errors = search.Index("trace_tags", "tag_id", lookups.tag_ids[0])
        service = search.Index("trace_services", "service_id", lookups.service_id)
        assert store._searcher._size(conn, errors) == 0
        assert store._searcher._size(conn, service) == 10
        durations = search.DurationRange(duration_bucket(1), search.MAX_BUCKET)
        assert store._searcher._size(conn, durations) == 10
    assert len(store.search(query)) == 20


def test_min_duration_search_matches_a_full_scan(store: SpanStore) -> None:
    """Searches driven by duration buckets find what filtering every trace finds."""
    durations: dict[bytes, tuple[int, str]] = {}
    for i in range(60):
        specs = simple_trace(service="a" if i % 2 else "b", start_ns=T0_NS + i, children=1)
        specs[0].duration_ns = 1_000 * (1 + (i * 37) % 97) ** 3  # 1 µs .. 0.9 s
        store.write_request(make_request(specs))
        durations[specs[0].trace_id] = (specs[0].duration_ns, specs[0].service)
    for min_ns in (0, 1_000, 5_000_000, 123_456_789, 900_000_000, 10**12):
        for service in (None, "a"):
            for max_ns in (None, 300_000_000):
                query = TraceQuery(
                    service=service, min_duration_ns=min_ns, max_duration_ns=max_ns, limit=7
                )
                expected = sorted(
                    (
                        tid
                        for tid, (d, svc) in durations.items()
                        if d >= min_ns
                        and (max_ns is None or d <= max_ns)
                        and service in (None, svc)
                    ),
                    key=lambda tid: list(durations).index(tid),
                )[-7:]
                found = store.search(query)
                assert {s.trace_id for s in found} == set(expected), (min_ns, service, max_ns)


def test_get_span_finds_each_span_of_each_group(store: SpanStore) -> None:
    """Spans are stored in groups (per trace, resource and scope, per request)."""
    specs = simple_trace(children=3, child_service="db")
    store.write_request(make_request(specs[:2]))
    store.write_request(make_request(specs[2:]))
    for spec in specs:
        found = store.get_span(spec.trace_id, spec.span_id)
        assert found is not None
        assert found.span.span_id == spec.span_id
        assert found.service == spec.service
    assert store.get_span(specs[0].trace_id, bytes(7) + b"\1") is None
    assert store.get_span(bytes(15) + b"\1", specs[0].span_id) is None


def test_encoded_spans_of_every_size_round_trip(store: SpanStore) -> None:
    """Spans of one-, two- and three-byte lengths are sliced out of the request."""
    specs = simple_trace(children=2)
    specs[1].attrs = {"big": "x" * 300}
    specs[2].attrs = {"huge": "y" * 40_000}
    specs[0].attrs = {}
    request = make_request(specs)
    store.write_request(request, request.SerializeToString())
    sent = {
        s.span_id: s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans
    }
    stored = store.get_trace(specs[0].trace_id)
    assert {s.span.span_id: s.span for s in stored} == sent
