"""``cvtrace import`` and ``POST /api/import``: trace files from real producers back in.

The files come from the producers themselves: the viewer's own downloads
(``/trace/<id>/otlp.json`` and ``/api/traces/<id>``), the Python SDK's OTLP encoder, the
Node.js SDK's serializers (``tests/node/send_spans.mjs``) and the OpenTelemetry
Collector's ``file`` exporter (the distribution ``deploy/build.sh`` builds) in each of
its formats and compressions. The other variants of the formats (the viewer's download
split into lines, framed, compressed) are built from the viewer's download.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import zstandard
from flask import Flask
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cvtrace.demo.ports import free_port
from cvtrace.otlp.json_form import otlp_json_bytes, parse_otlp_json
from cvtrace.store import SpanStore, StoredSpan
from cvtrace.viewer import create_app
from cvtrace.viewer.importing import Importer, ImportSummary
from tests.ops.binaries import build
from tests.viewer.support import T0_NS, ViewerServer, new_span_id, new_trace_id, store_snapshot

# -- the traces ------------------------------------------------------------------


def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _array(*values: str) -> AnyValue:
    value = AnyValue()
    value.array_value.values.extend(AnyValue(string_value=v) for v in values)
    return value


def rich_request(trace_id: bytes) -> ExportTraceServiceRequest:
    """A trace using every part of OTLP a span can carry, over two services."""
    request = ExportTraceServiceRequest()
    root_id, child_id, worker_id = new_span_id(), new_span_id(), new_span_id()
    front = request.resource_spans.add(schema_url="https://opentelemetry.io/schemas/1.26.0")
    front.resource.attributes.extend(
        [
            _kv("service.name", AnyValue(string_value="front")),
            _kv("host.name", AnyValue(string_value="box")),
            _kv("process.pid", AnyValue(int_value=4242)),
        ]
    )
    scope = front.scope_spans.add(schema_url="https://example.com/scope-schema")
    scope.scope.name, scope.scope.version = "shop.http", "2.0"
    scope.scope.attributes.append(_kv("lib.flavour", AnyValue(string_value="lean")))
    root = scope.spans.add(
        trace_id=trace_id,
        span_id=root_id,
        name="GET /cart",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=T0_NS + 123,
        end_time_unix_nano=T0_NS + 25_000_456,
        trace_state="congo=t61rcWkgMzE",
        flags=0x301,
        dropped_attributes_count=2,
    )
    kvlist = AnyValue()
    kvlist.kvlist_value.values.append(_kv("k", AnyValue(int_value=1)))
    root.attributes.extend(
        [
            _kv("http.route", AnyValue(string_value="/cart")),
            _kv("http.response.status_code", AnyValue(int_value=500)),
            _kv("ratio", AnyValue(double_value=0.125)),
            _kv("cached", AnyValue(bool_value=True)),
            _kv("digest", AnyValue(bytes_value=b"\x00\xffhi")),
            _kv("tags", _array("red", "green")),
            _kv("nested", kvlist),
        ]
    )
    root.status.code, root.status.message = Status.STATUS_CODE_ERROR, "boom"
    event = root.events.add(name="exception", time_unix_nano=T0_NS + 20_000_789)
    event.attributes.append(_kv("exception.type", AnyValue(string_value="ValueError")))
    link = root.links.add(trace_id=new_trace_id(), span_id=new_span_id(), flags=0x101)
    link.attributes.append(_kv("messaging.message.id", AnyValue(string_value="m-1")))
    child = scope.spans.add(
        trace_id=trace_id,
        span_id=child_id,
        parent_span_id=root_id,
        name="SELECT cart",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=T0_NS + 1_000_000,
        end_time_unix_nano=T0_NS + 3_000_000,
    )
    child.status.code = Status.STATUS_CODE_OK
    back = request.resource_spans.add()
    back.resource.attributes.append(_kv("service.name", AnyValue(string_value="back")))
    worker_scope = back.scope_spans.add()
    worker_scope.scope.name = "worker"
    worker_scope.spans.add(
        trace_id=trace_id,
        span_id=worker_id,
        parent_span_id=child_id,
        name="render",
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=T0_NS + 4_000_000,
        end_time_unix_nano=T0_NS + 5_000_000,
    )
    return request


def jaeger_request(trace_id: bytes) -> ExportTraceServiceRequest:
    """The same trace with only what Jaeger JSON can carry (see cvtrace.otlp.jaeger_json):
    microsecond times, W3C flags, attributes in key order, no link or scope attributes, no
    schema URLs, no arrays."""
    request = rich_request(trace_id)
    for rs in request.resource_spans:
        rs.schema_url = ""
        for ss in rs.scope_spans:
            ss.schema_url = ""
            del ss.scope.attributes[:]
            for span in ss.spans:
                span.start_time_unix_nano -= span.start_time_unix_nano % 1000
                span.end_time_unix_nano -= span.end_time_unix_nano % 1000
                span.flags &= 0xFF
                span.dropped_attributes_count = 0
                # Jaeger JSON's tags are sorted by key, as Jaeger sorts them
                keep = [kv for kv in span.attributes if kv.key not in ("tags", "nested")]
                del span.attributes[:]
                span.attributes.extend(sorted(keep, key=lambda kv: kv.key))
                for event in span.events:
                    event.time_unix_nano -= event.time_unix_nano % 1000
                    fields = sorted(event.attributes, key=lambda kv: kv.key)
                    del event.attributes[:]
                    event.attributes.extend(fields)
                for link in span.links:
                    del link.attributes[:]
                    link.flags = 0
    return request


def canonical(spans: list[StoredSpan]) -> dict[bytes, tuple[Any, ...]]:
    """Everything stored about each span: the span, its resource, scope and schemas."""

    def attrs(kvs: Any) -> dict[str, bytes]:
        return {kv.key: kv.value.SerializeToString(deterministic=True) for kv in kvs}

    return {
        s.span.span_id: (
            s.span.SerializeToString(deterministic=True),
            attrs(s.resource.attributes),
            s.resource_schema_url,
            (s.scope.name, s.scope.version, attrs(s.scope.attributes)),
            s.scope_schema_url,
        )
        for s in spans
    }


# -- the viewer's own downloads ----------------------------------------------------


class Source:
    """A viewer with one trace stored, to download it as a user would."""

    def __init__(self, tmp_path: Path, request: ExportTraceServiceRequest) -> None:
        self.store = SpanStore(tmp_path / "source.sqlite3")
        self.app = create_app({"STORE": self.store})
        self.trace_id = request.resource_spans[0].scope_spans[0].spans[0].trace_id
        assert self.store.write_request(request).rejected_spans == 0

    def otlp_json(self) -> bytes:
        response = self.app.test_client().get(f"/trace/{self.trace_id.hex()}/otlp.json")
        assert response.status_code == 200
        return response.get_data()

    def jaeger_json(self) -> bytes:
        client = self.app.test_client()
        response = client.get(f"/api/traces/{self.trace_id.hex()}?download=1")
        assert response.status_code == 200
        return response.get_data()

    def spans(self) -> list[StoredSpan]:
        return self.store.get_trace(self.trace_id)


@pytest.fixture
def source(tmp_path: Path) -> Source:
    return Source(tmp_path, rich_request(new_trace_id()))


def import_bytes(
    tmp_path: Path, data: bytes, name: str = "file", db: str = "target.sqlite3"
) -> tuple[ImportSummary, SpanStore]:
    store = SpanStore(tmp_path / db)
    importer = Importer(store)
    importer.import_stream(io.BytesIO(data), name)
    return importer.summary, store


def _lines(request_json: bytes) -> bytes:
    """One request per resource, a line each: what the collector's file exporter writes
    for requests that arrived one service at a time."""
    data = json.loads(request_json)
    return b"".join(
        json.dumps({"resourceSpans": [rs]}).encode() + b"\n" for rs in data["resourceSpans"]
    )


def _framed(*payloads: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in payloads)


def _requests_of(request_json: bytes) -> list[ExportTraceServiceRequest]:
    out = []
    for line in _lines(request_json).splitlines():
        out.append(parse_otlp_json(line, ExportTraceServiceRequest()))
    return out


FORMATS: dict[str, Callable[[Source], bytes]] = {
    # the viewer's download as it is, and pretty-printed as an editor saves it
    "OTLP JSON": lambda s: s.otlp_json(),
    "OTLP JSON, indented": lambda s: json.dumps(json.loads(s.otlp_json()), indent=2).encode(),
    "OTLP JSON lines": lambda s: _lines(s.otlp_json()),
    "OTLP protobuf": lambda s: b"".join(r.SerializeToString() for r in _requests_of(s.otlp_json())),
    "OTLP protobuf, length-prefixed": lambda s: _framed(
        *(r.SerializeToString() for r in _requests_of(s.otlp_json()))
    ),
    # the collector's compression: zstd (without its native-compression gate)
    "length-prefixed, zstd per record": lambda s: _framed(
        *(
            zstandard.ZstdCompressor().compress(r.SerializeToString())
            for r in _requests_of(s.otlp_json())
        )
    ),
    "length-prefixed, gzip per record": lambda s: _framed(
        *(gzip.compress(r.SerializeToString()) for r in _requests_of(s.otlp_json()))
    ),
    "length-prefixed JSON, zstd per record": lambda s: _framed(
        *(zstandard.ZstdCompressor().compress(line) for line in _lines(s.otlp_json()).splitlines())
    ),
}
COMPRESSIONS: dict[str, Callable[[bytes], bytes]] = {
    "plain": lambda data: data,
    "gzip": gzip.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


class TestRoundTrip:
    @pytest.mark.parametrize("compression", COMPRESSIONS)
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_otlp_formats_give_back_the_same_trace(
        self, tmp_path: Path, source: Source, fmt: str, compression: str
    ) -> None:
        data = COMPRESSIONS[compression](FORMATS[fmt](source))
        summary, target = import_bytes(tmp_path, data)
        assert summary.ok, summary.problems
        assert (summary.traces, summary.spans, summary.new_spans) == (1, 3, 3)
        assert canonical(target.get_trace(source.trace_id)) == canonical(source.spans())

    @pytest.mark.parametrize("compression", COMPRESSIONS)
    def test_jaeger_download_gives_back_what_jaeger_json_carries(
        self, tmp_path: Path, compression: str
    ) -> None:
        source = Source(tmp_path, jaeger_request(new_trace_id()))
        data = COMPRESSIONS[compression](source.jaeger_json())
        summary, target = import_bytes(tmp_path, data)
        assert summary.ok, summary.problems
        assert summary.formats["file"] == "Jaeger JSON" + (
            "" if compression == "plain" else f", {compression}"
        )
        got = canonical(target.get_trace(source.trace_id))
        want = canonical(source.spans())
        # the store keeps schema URLs of resources and scopes; Jaeger JSON has none
        assert got == want

    def test_jaeger_json_loses_only_what_it_cannot_carry(
        self, tmp_path: Path, source: Source
    ) -> None:
        summary, target = import_bytes(tmp_path, source.jaeger_json())
        assert summary.ok, summary.problems
        got = {s.span.span_id: s for s in target.get_trace(source.trace_id)}
        sent = {s.span.span_id: s for s in source.spans()}
        assert got.keys() == sent.keys()
        root = next(s for s in got.values() if s.span.name == "GET /cart").span
        attrs = {kv.key: kv.value for kv in root.attributes}
        assert attrs["tags"].string_value == '["red","green"]'  # arrays as Go's JSON text
        assert attrs["nested"].string_value == '{"k":1}'
        assert attrs["digest"].bytes_value == b"\x00\xffhi"
        assert root.start_time_unix_nano == T0_NS  # microseconds: the 123 ns are gone
        assert root.flags == 0x01
        assert [len(link.attributes) for link in root.links] == [0]
        assert root.status.message == "boom"
        assert root.trace_state == "congo=t61rcWkgMzE"

    def test_the_viewers_own_warnings_are_not_imported(self, tmp_path: Path) -> None:
        """Orphan and clock-skew warnings are derived on export, and again on display."""
        request = jaeger_request(new_trace_id())
        spans = request.resource_spans[0].scope_spans[0].spans
        spans[1].start_time_unix_nano = T0_NS - 1_000_000  # before its parent: skewed
        request.resource_spans[1].scope_spans[0].spans[0].parent_span_id = new_span_id()
        source = Source(tmp_path, request)
        document = json.loads(source.jaeger_json())
        assert document["data"][0]["warnings"]  # the export did warn
        summary, target = import_bytes(tmp_path, source.jaeger_json())
        assert summary.ok, summary.problems
        assert canonical(target.get_trace(source.trace_id)) == canonical(source.spans())


class TestRecords:
    def test_reimporting_adds_nothing(self, tmp_path: Path, source: Source) -> None:
        data = _lines(source.otlp_json())
        first, target = import_bytes(tmp_path, data)
        assert first.new_spans == 3
        target.close()
        before = store_snapshot(tmp_path / "target.sqlite3")
        again, target = import_bytes(tmp_path, data)
        assert (again.spans, again.new_spans, again.ok) == (3, 0, True)
        target.close()
        assert store_snapshot(tmp_path / "target.sqlite3") == before

    def test_bad_lines_are_reported_and_good_ones_kept(
        self, tmp_path: Path, source: Source
    ) -> None:
        good = _lines(source.otlp_json()).splitlines()
        zero_id = json.loads(good[0])
        zero_id["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["spanId"] = "0" * 16
        # one record half good, half broken: none of it may be stored
        half = json.loads(good[0])
        half["resourceSpans"].append(json.loads(good[1])["resourceSpans"][0])
        half["resourceSpans"][1]["scopeSpans"][0]["spans"][0]["traceId"] = "not hex"
        lines = [
            good[0],
            b"{not json",
            b"",
            b'{"foo": 1}',
            json.dumps(half).encode(),
            b"[1, 2]",
            json.dumps(zero_id).encode(),
            good[1],
        ]
        summary, target = import_bytes(tmp_path, b"\n".join(lines) + b"\n", "mixed.jsonl")
        problems = [str(p) for p in summary.problems]
        assert problems[0].startswith("mixed.jsonl: line 2: not JSON: ")
        assert problems[1].startswith("mixed.jsonl: line 4: neither OTLP JSON")
        assert problems[2] == (
            "mixed.jsonl: line 5: resourceSpans[1].scopeSpans[0].spans[0].traceId: "
            "'not hex' is not hex"
        )
        assert problems[3] == "mixed.jsonl: line 6: expected a JSON object, got list"
        assert problems[4] == ("mixed.jsonl: line 7: 1 span(s) refused: 1 with an all-zero span id")
        assert len(problems) == 5
        assert (summary.rejected_records, summary.rejected_spans) == (4, 1)
        assert not summary.ok
        # lines 1 and 8 whole, line 7 but its bad span; line 5's good half is not there
        assert len(target.get_trace(source.trace_id)) == 3
        assert summary.new_spans == 3

    def test_jaeger_document_with_a_bad_trace(self, tmp_path: Path, source: Source) -> None:
        good = json.loads(source.jaeger_json())["data"][0]
        bad = json.loads(json.dumps(good))
        bad["spans"][0]["startTime"] = "yesterday"
        other = Source(tmp_path / "other", jaeger_request(new_trace_id()))
        document = {"data": [good, bad, json.loads(other.jaeger_json())["data"][0]]}
        summary, target = import_bytes(tmp_path, json.dumps(document).encode(), "ui.json")
        assert [str(p) for p in summary.problems] == [
            "ui.json: data[1]: Jaeger JSON: data[1].spans[0].startTime: "
            "expected an integer, got str"
        ]
        assert (summary.traces, summary.spans, summary.rejected_records) == (2, 6, 1)
        assert len(target.get_trace(other.trace_id)) == 3

    def test_truncated_length_prefixed_file(self, tmp_path: Path, source: Source) -> None:
        payloads = [r.SerializeToString() for r in _requests_of(source.otlp_json())]
        data = _framed(*payloads)[:-5]
        summary, target = import_bytes(tmp_path, data, "cut.pb")
        (problem,) = summary.problems
        assert str(problem).startswith("cut.pb: file: record 2 (byte ")
        assert "the file ends inside the record" in problem.reason
        assert summary.spans == 2  # record 1: the first service's two spans
        assert len(target.get_trace(source.trace_id)) == 2

    def test_garbage_protobuf_record(self, tmp_path: Path, source: Source) -> None:
        payloads = [r.SerializeToString() for r in _requests_of(source.otlp_json())]
        summary, _ = import_bytes(tmp_path, _framed(payloads[0], b"\x0a\xff\xff", payloads[1]))
        (problem,) = summary.problems
        assert problem.where == f"record 2 (byte {4 + len(payloads[0]):,})"
        assert problem.reason.startswith("the body is not an ExportTraceServiceRequest")
        assert summary.spans == 3

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (b"time,name\n1,a\n", "not a trace file read here"),
            (gzip.compress(b"{")[:-6], "cannot be read"),
            (zstandard.ZstdCompressor().compress(b"{" * 100)[:-4], "not valid zstd"),
            (b'{"resourceSpans": [', "not JSON"),
        ],
    )
    def test_unreadable_files(self, tmp_path: Path, data: bytes, reason: str) -> None:
        summary, _ = import_bytes(tmp_path, data)
        (problem,) = summary.problems
        assert reason in problem.reason
        assert not summary.ok

    def test_zstd_without_zstandard_names_the_extra(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The package cannot be uninstalled for one test: its import is made to fail."""
        monkeypatch.setitem(sys.modules, "zstandard", None)
        data = zstandard.ZstdCompressor().compress(b"{}")
        summary, _ = import_bytes(tmp_path, data)
        (problem,) = summary.problems
        assert "pip install 'cvtrace[viewer]'" in problem.reason

    def test_a_failed_write_is_reported(self, tmp_path: Path, source: Source) -> None:
        store = SpanStore(tmp_path / "closed.sqlite3")
        store.close()
        importer = Importer(store)
        importer.import_stream(io.BytesIO(source.otlp_json()), "t.json")
        (problem,) = importer.summary.problems
        assert problem.where == "document"
        assert problem.reason.startswith("not stored: the span store")
        assert (importer.summary.records, importer.summary.rejected_records) == (0, 1)

    def test_many_small_records_are_written_in_groups(self, tmp_path: Path) -> None:
        """Records of one span each still import whole, in order, whatever the grouping."""
        lines = []
        trace_ids = [new_trace_id() for _ in range(3000)]
        for trace_id in trace_ids:
            request = ExportTraceServiceRequest()
            rs = request.resource_spans.add()
            rs.resource.attributes.append(_kv("service.name", AnyValue(string_value="s")))
            rs.scope_spans.add().spans.add(
                trace_id=trace_id,
                span_id=new_span_id(),
                name="one",
                start_time_unix_nano=T0_NS,
                end_time_unix_nano=T0_NS + 1,
            )
            lines.append(otlp_json_bytes(request))
        summary, target = import_bytes(tmp_path, b"\n".join(lines))
        assert (summary.records, summary.traces, summary.new_spans) == (3000, 3000, 3000)
        assert target.span_count() == 3000


# -- files from the SDKs and the collector ---------------------------------------


def _sdk_spans() -> list[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "py-sdk"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("import-test", "1.0")
    with tracer.start_as_current_span("outer", attributes={"n": 1, "tags": ["a", "b"]}) as outer:
        outer.add_event("started", {"ok": True})
        with tracer.start_as_current_span("inner"):
            pass
    provider.shutdown()
    return list(exporter.get_finished_spans())


@pytest.mark.parametrize("framing", ["single", "length-prefixed"])
def test_python_sdk_protobuf_file(tmp_path: Path, framing: str) -> None:
    """The Python SDK's own OTLP encoder (what its OTLP exporters send) wrote the file."""
    spans = _sdk_spans()
    body = encode_spans(spans).SerializeToString()
    data = body if framing == "single" else _framed(body)
    summary, target = import_bytes(tmp_path, data)
    assert summary.ok, summary.problems
    trace_id = spans[0].context.trace_id.to_bytes(16, "big")
    stored = {s.span.name: s for s in target.get_trace(trace_id)}
    assert set(stored) == {"outer", "inner"}
    outer = stored["outer"].span
    assert outer.span_id == spans[1].context.span_id.to_bytes(8, "big")
    assert outer.start_time_unix_nano == spans[1].start_time
    assert [e.name for e in outer.events] == ["started"]
    tags = next(kv.value for kv in outer.attributes if kv.key == "tags")
    assert [v.string_value for v in tags.array_value.values] == ["a", "b"]
    assert stored["inner"].span.parent_span_id == outer.span_id
    assert stored["inner"].scope.name == "import-test"


def _node_run(tmp_path: Path, path: Path, protocol: str) -> dict[str, Any]:
    from tests.viewer.test_interop import SEND_SPANS, node_executable

    node = node_executable()
    done = subprocess.run(
        [node, str(SEND_SPANS), str(path), protocol, "node-import"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    made: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return made


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["file/json", "file/protobuf"])
def test_nodejs_sdk_files(tmp_path: Path, protocol: str) -> None:
    """The JS SDK's serializers wrote two runs' requests to one file (JSON: two lines;
    protobuf: two messages appended, which is one message)."""
    path = tmp_path / "node.out"
    runs = [_node_run(tmp_path, path, protocol) for _ in range(2)]
    store = SpanStore(tmp_path / "t.sqlite3")
    importer = Importer(store)
    with path.open("rb") as stream:
        importer.import_stream(stream, str(path))
    summary = importer.summary
    assert summary.ok, summary.problems
    assert summary.formats[str(path)] == (
        "JSON lines" if protocol == "file/json" else "OTLP protobuf"
    )
    assert (summary.traces, summary.new_spans) == (2, 6)
    for made in runs:
        stored = {s.span.span_id.hex(): s for s in store.get_trace(bytes.fromhex(made["traceId"]))}
        assert set(stored) == set(made["spans"].values())
        root = stored[made["spans"]["root"]].span
        (link,) = root.links
        assert (link.trace_id.hex(), link.span_id.hex()) == (
            made["link"]["traceId"],
            made["link"]["spanId"],
        )
        assert root.start_time_unix_nano == made["startMs"] * 1_000_000
        client = stored[made["spans"]["client"]].span
        assert client.status.code == Status.STATUS_CODE_ERROR
        assert [e.name for e in client.events] == ["retry"]
        assert stored[made["spans"]["root"]].resource.attributes[0].value.string_value == (
            "node-import"
        )


COLLECTOR_FILES = {
    # exporter name: (path, settings, format read without / with the native-compression gate)
    "file/json": ("out.jsonl", {}, ("JSON lines", "JSON lines")),
    "file/proto": ("out.pb", {"format": "proto"}, ("length-prefixed records",) * 2),
    "file/proto_zstd": (
        "out.pb.zst",
        {"format": "proto", "compression": "zstd"},
        ("length-prefixed records", "length-prefixed records, zstd"),
    ),
    "file/json_zstd": (
        "out.json.zst",
        {"compression": "zstd"},
        ("length-prefixed records", "JSON lines, zstd"),
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("native", [False, True], ids=["per-record zstd", "native zstd"])
def test_real_collector_file_exporter(tmp_path: Path, native: bool) -> None:
    """The collector built from deploy/collector (contrib 0.161.0) receives the Python
    SDK's requests over OTLP/HTTP and writes them with its file exporter in every format
    and compression; each file imports to the same spans as the requests themselves."""
    collector = build().collector
    port = free_port()
    exporters = {
        name: {"path": str(tmp_path / path), **settings}
        for name, (path, settings, _) in COLLECTOR_FILES.items()
    }
    config = {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}},
        "exporters": exporters,
        "service": {
            "telemetry": {"metrics": {"level": "none"}},
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": list(exporters)}},
        },
    }
    config_path = tmp_path / "collector.json"  # YAML is a superset of JSON
    config_path.write_text(json.dumps(config))
    gate = ["--feature-gates=exporter.file.nativeCompression"] if native else []
    log = (tmp_path / "collector.log").open("wb")
    process = subprocess.Popen(
        [str(collector), f"--config={config_path}", *gate], stdout=log, stderr=log
    )
    bodies = [encode_spans(_sdk_spans()).SerializeToString() for _ in range(3)]
    try:
        deadline = time.monotonic() + 30
        sent = 0
        while sent < len(bodies):
            assert process.poll() is None, (tmp_path / "collector.log").read_text()
            try:
                response = requests.post(
                    f"http://127.0.0.1:{port}/v1/traces",
                    data=bodies[sent],
                    headers={"Content-Type": "application/x-protobuf"},
                    timeout=10,
                )
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the collector did not start listening"
                time.sleep(0.1)
                continue
            assert response.status_code == 200, response.text
            sent += 1
        process.send_signal(signal.SIGTERM)  # flushes and closes the files
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()
    want_store = SpanStore(tmp_path / "want.sqlite3")
    for body in bodies:
        want_store.write_request(ExportTraceServiceRequest.FromString(body))
    trace_ids = list(want_store.iter_trace_ids())
    assert len(trace_ids) == 3
    want = {t: canonical(want_store.get_trace(t)) for t in trace_ids}
    for name, (path, _, formats) in COLLECTOR_FILES.items():
        summary, store = import_bytes(
            tmp_path, (tmp_path / path).read_bytes(), path, db=f"{name[5:]}.sqlite3"
        )
        assert summary.ok, (name, summary.problems)
        assert summary.formats[path] == formats[native], name
        assert (summary.traces, summary.new_spans) == (3, 6), name
        assert {t: canonical(store.get_trace(t)) for t in trace_ids} == want, name


def _jaeger_form(stored: StoredSpan) -> tuple[Any, ...]:
    """What of a span Jaeger JSON carries (see cvtrace.otlp.jaeger_json)."""
    span = stored.span

    def attrs(kvs: Any) -> dict[str, bytes]:
        return {kv.key: kv.value.SerializeToString(deterministic=True) for kv in kvs}

    return (
        span.trace_id,
        span.parent_span_id,
        span.name,
        span.kind,
        span.status.SerializeToString(deterministic=True),
        span.trace_state,
        span.start_time_unix_nano // 1000,
        # Jaeger keeps the start and the duration, each in whole microseconds
        (span.end_time_unix_nano - span.start_time_unix_nano) // 1000,
        attrs(span.attributes),
        [(e.name, e.time_unix_nano // 1000, attrs(e.attributes)) for e in span.events],
        [(link.trace_id, link.span_id) for link in span.links],
        attrs(stored.resource.attributes),
        (stored.scope.name, stored.scope.version),
    )


@pytest.mark.slow
def test_real_jaeger_download(tmp_path: Path) -> None:
    """Jaeger v2.12.0 (built from deploy/jaeger) stores the Python SDK's spans; the JSON
    its /api/traces/<id> answers (what Jaeger UI downloads) imports to the same spans, as
    far as Jaeger JSON carries them."""
    jaeger = build().jaeger
    ports = {name: free_port() for name in ("HEALTH", "QUERY_HTTP", "QUERY_GRPC", "GRPC", "HTTP")}
    environment = {
        "CVTRACE_JAEGER_HEALTH_ENDPOINT": f"127.0.0.1:{ports['HEALTH']}",
        "CVTRACE_JAEGER_QUERY_HTTP_ENDPOINT": f"127.0.0.1:{ports['QUERY_HTTP']}",
        "CVTRACE_JAEGER_QUERY_GRPC_ENDPOINT": f"127.0.0.1:{ports['QUERY_GRPC']}",
        "CVTRACE_JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{ports['GRPC']}",
        "CVTRACE_JAEGER_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{ports['HTTP']}",
    }
    config = Path(__file__).resolve().parents[2] / "deploy" / "jaeger-local.yaml"
    spans = _sdk_spans()
    body = encode_spans(spans).SerializeToString()
    trace_id = spans[0].context.trace_id.to_bytes(16, "big")
    log = (tmp_path / "jaeger.log").open("wb")
    process = subprocess.Popen(
        [str(jaeger), f"--config={config}"],
        stdout=log,
        stderr=log,
        env={**os.environ, **environment},
    )
    try:
        deadline = time.monotonic() + 30
        base = f"http://127.0.0.1:{ports['QUERY_HTTP']}"
        while True:
            assert process.poll() is None, (tmp_path / "jaeger.log").read_text()
            try:
                posted = requests.post(
                    f"http://127.0.0.1:{ports['HTTP']}/v1/traces",
                    data=body,
                    headers={"Content-Type": "application/x-protobuf"},
                    timeout=10,
                )
                if posted.status_code == 200:
                    answer = requests.get(f"{base}/api/traces/{trace_id.hex()}", timeout=10)
                    if answer.status_code == 200:
                        break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "Jaeger did not store the trace in 30 s"
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    summary, store = import_bytes(tmp_path, answer.content, "jaeger.json")
    assert summary.ok, summary.problems
    assert summary.formats["jaeger.json"] == "Jaeger JSON"
    want_store = SpanStore(tmp_path / "want.sqlite3")
    want_store.write_request(ExportTraceServiceRequest.FromString(body))
    got_spans = store.get_trace(trace_id)
    outer = next(s.span for s in got_spans if s.span.name == "outer")
    tags = next(kv.value for kv in outer.attributes if kv.key == "tags")
    assert json.loads(tags.string_value) == ["a", "b"]  # an array: Jaeger JSON writes text
    want_spans = want_store.get_trace(trace_id)
    for stored in [*got_spans, *want_spans]:
        keep = [kv for kv in stored.span.attributes if kv.key != "tags"]
        del stored.span.attributes[:]
        stored.span.attributes.extend(keep)
    got = {s.span.span_id: _jaeger_form(s) for s in got_spans}
    want = {s.span.span_id: _jaeger_form(s) for s in want_spans}
    assert got == want


# -- the command -----------------------------------------------------------------


def _cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "cvtrace.cli", "import", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
class TestCommand:
    def test_files_and_stdin(self, tmp_path: Path, source: Source) -> None:
        otlp = tmp_path / "trace.otlp.json"
        otlp.write_bytes(source.otlp_json())
        db = str(tmp_path / "cli.sqlite3")
        done = _cli(str(otlp), "-", "--db", db, stdin=gzip.compress(source.jaeger_json()))
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().strip() == (
            "1 trace, 6 spans (3 new, 3 already stored) from 2 records; nothing rejected"
        )
        err = done.stderr.decode()
        assert f"{otlp}: OTLP JSON, 1 record, 3 spans" in err
        assert "-: Jaeger JSON, gzip, 1 record, 3 spans" in err

    def test_rejections_give_exit_1(self, tmp_path: Path, source: Source) -> None:
        path = tmp_path / "bad.jsonl"
        path.write_bytes(_lines(source.otlp_json()) + b"oops\n")
        done = _cli(str(path), str(tmp_path / "missing.json"), "--db", str(tmp_path / "c.db"))
        assert done.returncode == 1
        err = done.stderr.decode()
        assert f"{path}: line 3: not JSON" in err
        assert "missing.json: file: cannot be opened: No such file or directory" in err
        assert done.stdout.decode().strip().endswith("rejected: 2 records, 0 spans")

    def test_a_json_file_that_holds_no_traces_is_said_once(self, tmp_path: Path) -> None:
        """Before: its problem, then "bad.json: OTLP JSON, 0 records, 0 spans"."""
        path = tmp_path / "bad.json"
        path.write_text('{"hello": 1}')
        done = _cli(str(path), "--db", str(tmp_path / "c.db"))
        assert done.returncode == 1
        err = done.stderr.decode().strip().splitlines()
        assert err == [
            f"{path}: document: neither OTLP JSON (resourceSpans) nor Jaeger JSON "
            "(data: [traces]); its keys: hello"
        ]
        assert done.stdout.decode().strip().endswith("rejected: 1 record, 0 spans")

    def test_store_that_cannot_open_gives_exit_2(self, tmp_path: Path) -> None:
        db = tmp_path / "not-a-store"
        db.write_bytes(b"this is no SQLite file" * 100)
        done = _cli("-", "--db", str(db), stdin=b"")
        assert done.returncode == 2
        assert b"--db: cannot open the span store" in done.stderr

    def test_progress_bar_on_a_terminal(self, tmp_path: Path, source: Source) -> None:
        """stderr a real pseudo-terminal, a file over PROGRESS_MIN_BYTES: a bar is drawn."""
        line = _lines(source.otlp_json()).splitlines()[0]
        request = json.loads(line)
        lines = []
        for _ in range(4000):  # new trace ids: every line is new spans
            trace_id = new_trace_id().hex()
            for span in request["resourceSpans"][0]["scopeSpans"][0]["spans"]:
                span["traceId"] = trace_id
            lines.append(json.dumps(request))
        path = tmp_path / "big.jsonl"
        path.write_text("\n".join(lines))
        assert path.stat().st_size > 4 * 1024 * 1024
        leader, follower = pty.openpty()
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "cvtrace.cli",
                    "import",
                    str(path),
                    "--db",
                    str(tmp_path / "p.db"),
                ],
                stdout=subprocess.PIPE,
                stderr=follower,
                timeout=120,
                check=False,
            )
            os.close(follower)
            follower = -1
            err = b""
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                err += chunk
        finally:
            if follower >= 0:
                os.close(follower)
            os.close(leader)
        assert done.returncode == 0, err
        assert b"big.jsonl [" in err
        assert b"100% " in err
        assert b"8,000 spans" in err


# -- the UI's import action ---------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app({"DB_PATH": tmp_path / "ui.sqlite3"})


class TestEndpoint:
    def test_upload_imports_and_answers_the_summary(self, app: Flask, source: Source) -> None:
        client = app.test_client()
        response = client.post(
            "/api/import?name=trace.json.gz",
            data=gzip.compress(source.jaeger_json()),
            content_type="application/octet-stream",
        )
        assert response.status_code == 200
        body = response.get_json()
        assert body["ok"] is True
        assert (body["traces"], body["spans"], body["newSpans"]) == (1, 3, 3)
        assert body["formats"] == {"trace.json.gz": "Jaeger JSON, gzip"}
        page = client.get("/")
        assert source.trace_id.hex().encode() in page.data
        assert b'id="import-form"' in page.data

    def test_problems_in_the_answer(self, app: Flask) -> None:
        response = app.test_client().post(
            "/api/import?name=x.jsonl", data=b"nope\n", content_type="application/octet-stream"
        )
        body = response.get_json()
        assert response.status_code == 400  # nothing at all could be imported
        assert body["ok"] is False
        assert body["files"][0]["name"] == "x.jsonl"
        assert body["problems"] == [
            "x.jsonl: file: not a trace file read here: expected "
            "OTLP JSON, OTLP JSON lines, OTLP protobuf (one message or "
            "length-prefixed) or Jaeger JSON; it starts with b'nope\\n'"
        ]

    def test_multipart_files_as_curl_sends_them(
        self, tmp_path: Path, store: SpanStore, source: Source
    ) -> None:
        with ViewerServer(create_app({"STORE": store})) as server:
            url = server.url + "/api/import"
            # curl -F file=@trace.json.gz: one file
            one = requests.post(
                url, files={"file": ("trace.json.gz", gzip.compress(source.jaeger_json()))}
            )
            assert one.status_code == 200, one.text
            body = one.json()
            assert (body["ok"], body["traces"], body["spans"], body["newSpans"]) == (True, 1, 3, 3)
            assert body["formats"] == {"trace.json.gz": "Jaeger JSON, gzip"}
            # two files, one good and one bad: 200, the result of each
            both = requests.post(
                url,
                files=[
                    ("file", ("t.otlp.json", source.otlp_json())),
                    ("file", ("notes.txt", b"not a trace\n")),
                ],
            )
            assert both.status_code == 200
            body = both.json()
            assert body["ok"] is False
            assert [(f["name"], f["ok"], f["spans"]) for f in body["files"]] == [
                ("t.otlp.json", True, 3),
                ("notes.txt", False, 0),
            ]
            assert body["problems"][0].startswith("notes.txt: file: not a trace file read here")
            # nothing importable at all: 400
            bad = requests.post(url, files={"file": ("notes.txt", b"not a trace\n")})
            assert bad.status_code == 400
            assert bad.json()["rejectedRecords"] == 1
            # a form without a file
            empty = requests.post(url, files={"file": (None, b"text")})
            assert empty.status_code == 400
            assert "no file" in empty.json()["error"]
        assert store.span_count() == 3

    @pytest.mark.parametrize(
        ("headers", "content_type", "status"),
        [
            ({}, "text/plain", 415),  # a simple cross-site request
            ({}, "application/x-www-form-urlencoded", 415),
            ({"Origin": "http://evil.example"}, "multipart/form-data; boundary=x", 403),
            ({"Sec-Fetch-Site": "cross-site"}, "application/octet-stream", 403),
            ({"Origin": "http://evil.example"}, "application/octet-stream", 403),
        ],
    )
    def test_cross_site_and_form_posts_are_refused(
        self, app: Flask, source: Source, headers: dict[str, str], content_type: str, status: int
    ) -> None:
        client = app.test_client()
        response = client.post(
            "/api/import", data=source.otlp_json(), content_type=content_type, headers=headers
        )
        assert response.status_code == status
        assert app.extensions["cvtrace.store"].span_count() == 0

    def test_token_is_required(self, tmp_path: Path, source: Source) -> None:
        app = create_app({"DB_PATH": tmp_path / "t.sqlite3", "TOKEN": "s3cret"})
        client = app.test_client()
        kwargs: dict[str, Any] = {
            "data": source.otlp_json(),
            "content_type": "application/octet-stream",
        }
        assert client.post("/api/import", **kwargs).status_code == 401
        ok = client.post("/api/import", headers={"Authorization": "Bearer s3cret"}, **kwargs)
        assert ok.status_code == 200
        assert ok.get_json()["newSpans"] == 3

    def test_over_the_size_limit(self, tmp_path: Path, source: Source) -> None:
        app = create_app({"DB_PATH": tmp_path / "l.sqlite3", "IMPORT_MAX_BODY_BYTES": 100})
        response = app.test_client().post(
            "/api/import", data=source.otlp_json(), content_type="application/octet-stream"
        )
        assert response.status_code == 413
