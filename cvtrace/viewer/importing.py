"""``cvtrace import``: trace files into the span store, whatever wrote them.

``cvtrace import PATH... [--db PATH]`` (``-`` reads standard input) stores the traces
of each file as the OTLP receiver would, and ``POST /api/import`` (the search page's
import action) does the same with an uploaded file. The format is told from the
content, not the name:

- **OTLP JSON**: one ``ExportTraceServiceRequest`` (or ``TracesData``: the same JSON),
  as the viewer's ``/trace/<id>/otlp.json`` download;
- **OTLP JSON lines**: one request per line, the OpenTelemetry Collector ``file``
  exporter's default output;
- **OTLP protobuf**: one serialized request, or the collector ``file`` exporter's
  ``format: proto`` output: each request preceded by its length, 4 bytes big-endian
  (``exportMessageAsBuffer`` in its ``file_writer.go``);
- **Jaeger JSON**: ``{"data": [trace, ...]}`` as Jaeger UI and the viewer's
  ``/api/traces/<id>`` give (:mod:`cvtrace.otlp.jaeger_json`), each trace a record;

each plain, gzip- or zstd-compressed (zstd needs the ``zstandard`` package, in the
``viewer`` extra). The collector's ``compression: zstd`` compresses each record on its
own and frames it with the length prefix, JSON too (or, with its
``exporter.file.nativeCompression`` feature gate, the whole file, as ``zstd`` would):
both are read. (Every one of these outputs of the collector 0.161.0 built from
``deploy/collector`` was imported and gave the same stored spans.)

Every record (a line, a length-prefixed message, a Jaeger trace, the whole file for a
single request) is decoded in full before anything of it is written, then written in
one transaction with others (the store's group of about ``BATCH_SPANS`` spans): a
record is stored whole or not at all. A malformed record is reported with the file
name, its line or record number and the reason, and the next one is read; spans with
invalid ids are refused by the store, as the receiver refuses them. Spans stored before
are recognized and not stored again, so importing a file twice adds nothing.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from cvtrace.otlp.decoding import PROTOBUF, BadBody, BodyTooLarge, decode_request, gunzip
from cvtrace.otlp.jaeger_json import (
    JaegerJsonError,
    is_jaeger_json,
    jaeger_traces,
    trace_to_request,
)
from cvtrace.otlp.json_form import OtlpJsonError, parse_otlp_dict
from cvtrace.store import SpanStore
from cvtrace.store.batches import prepare_request

__all__ = [
    "MAX_RECORD_BYTES",
    "ImportSummary",
    "Importer",
    "Problem",
    "register",
]

MAX_RECORD_BYTES = 512 * 1024 * 1024
"""The largest record (line, message, document) the command reads, decompressed."""
BATCH_SPANS = 2048
"""Spans written per transaction: records of a few spans each (a Jaeger trace, an SDK's
small batch) cost a commit each otherwise."""
PROGRESS_MIN_BYTES = 4 * 1024 * 1024
"""Files smaller than this import without a progress bar."""
PROBLEMS_SHOWN = 20
"""Problems printed per file; the summary counts them all."""
_CHUNK = 1024 * 1024
_ZSTD_STEP = 4096
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_WHITESPACE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Problem:
    """A record that was not imported, or spans of it that were refused."""

    source: str
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.where}: {self.reason}"


@dataclass
class ImportSummary:
    """What an import did."""

    records: int = 0
    """Records read and decoded (some of their spans may have been refused)."""
    spans: int = 0
    """Spans accepted (new or stored before)."""
    new_spans: int = 0
    """Accepted spans that were not stored before."""
    rejected_records: int = 0
    rejected_spans: int = 0
    """Spans refused by the store (invalid ids), in records that were read."""
    problems: list[Problem] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    """The format read from each source."""
    trace_ids: set[bytes] = field(default_factory=set, repr=False)

    @property
    def traces(self) -> int:
        """Distinct traces among the spans accepted."""
        return len(self.trace_ids)

    @property
    def ok(self) -> bool:
        """Whether everything read was imported."""
        return not self.rejected_records and not self.rejected_spans

    def as_json(self, max_problems: int = 100) -> dict[str, Any]:
        """Return the summary as a JSON object (the import endpoint's answer)."""
        return {
            "traces": self.traces,
            "records": self.records,
            "spans": self.spans,
            "newSpans": self.new_spans,
            "rejectedRecords": self.rejected_records,
            "rejectedSpans": self.rejected_spans,
            "formats": self.formats,
            "problems": [str(p) for p in self.problems[:max_problems]],
            "moreProblems": max(0, len(self.problems) - max_problems),
        }

    def text(self) -> str:
        """Return the closing line of ``cvtrace import``."""
        old = self.spans - self.new_spans
        line = (
            f"{counted(self.traces, 'trace')}, {counted(self.spans, 'span')} "
            f"({self.new_spans:,} new, {old:,} already stored) "
            f"from {counted(self.records, 'record')}"
        )
        if self.ok:
            return line + "; nothing rejected"
        rejected = (
            f"{counted(self.rejected_records, 'record')}, {counted(self.rejected_spans, 'span')}"
        )
        return f"{line}; rejected: {rejected}"


def counted(number: int, noun: str) -> str:
    """``1 span``, ``2,048 spans``: a count and its noun, in the singular for one."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


class _BadRecord(Exception):
    """A record cannot be decoded; the message says why."""


class UnreadableInput(Exception):
    """A source cannot be read at all (its framing or compression is broken)."""


# -- reading bytes -------------------------------------------------------------


class _Raw(io.RawIOBase):
    """Any object with ``read(n)`` as a raw stream, counting the bytes it gives."""

    def __init__(self, source: Any, prefix: bytes = b"", *, owned: bool = False) -> None:
        self._source = source
        self._prefix = prefix
        self._owned = owned
        self.count = 0

    def close(self) -> None:
        if self._owned and not self.closed:
            self._source.close()
        super().close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._source.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n


def _buffered(source: Any, prefix: bytes = b"") -> io.BufferedReader:
    return io.BufferedReader(_Raw(source, prefix), _CHUNK)


def _read_head(stream: IO[bytes], size: int) -> bytes:
    """Read up to ``size`` bytes, more than one read if the stream gives less (pipes)."""
    head = b""
    while len(head) < size:
        chunk = stream.read(size - len(head))
        if not chunk:
            break
        head += chunk
    return head


def _decompressed(stream: IO[bytes]) -> tuple[IO[bytes], str]:
    """Return the stream decompressed if it is gzip or zstd, and the compression's name.

    Raises:
        UnreadableInput: It is zstd and ``zstandard`` is not installed.
    """
    head = _read_head(stream, 4)
    whole = _buffered(stream, head)
    if head[:2] == _GZIP_MAGIC:
        return _buffered(gzip.GzipFile(fileobj=whole, mode="rb")), "gzip"
    if head == _ZSTD_MAGIC:
        return _buffered(_Zstd(whole)), "zstd"
    return whole, ""


class _Zstd(io.RawIOBase):
    """A zstd stream decompressed: one frame after another, a cut-off frame an error.

    (``zstandard``'s ``stream_reader`` ends quietly where the input does.)

    Raises:
        UnreadableInput: ``zstandard`` is not installed, or the stream is not valid zstd.
    """

    def __init__(self, source: Any) -> None:
        try:
            import zstandard
        except ImportError:
            msg = (
                "zstd-compressed, and the zstandard package is missing: "
                "pip install 'cvtrace[viewer]' (or decompress it with zstd -d)"
            )
            raise UnreadableInput(msg) from None
        self._source = source
        self._error: type[Exception] = zstandard.ZstdError
        self._context = zstandard.ZstdDecompressor()
        self._frame = self._context.decompressobj()
        self._in_frame = False
        self._out = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._pos >= len(self._out):
            # small input steps bound the output of each (zstd packs up to ~32,000:1)
            chunk = self._source.read(_ZSTD_STEP)
            if not chunk:
                if self._in_frame:
                    msg = "not valid zstd: the input ends inside a frame"
                    raise UnreadableInput(msg)
                return 0
            self._out, self._pos = self._decompress(chunk), 0
        n = min(len(buffer), len(self._out) - self._pos)
        buffer[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n

    def _decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            if self._frame.eof:  # frames laid end to end are one stream
                self._frame = self._context.decompressobj()
            self._in_frame = True
            try:
                out.append(self._frame.decompress(data))
            except self._error as exc:
                msg = f"not valid zstd: {exc}"
                raise UnreadableInput(msg) from None
            data = self._frame.unused_data if self._frame.eof else b""
            self._in_frame = not self._frame.eof
        return b"".join(out)


def _decompress_record(payload: bytes, limit: int) -> bytes:
    """Decompress one record compressed on its own (the collector's zstd), if it is."""
    if payload[:4] == _ZSTD_MAGIC:
        try:
            data = _buffered(_Zstd(io.BytesIO(payload))).read(limit + 1)
        except UnreadableInput as exc:
            raise _BadRecord(str(exc)) from None
    elif payload[:2] == _GZIP_MAGIC:
        try:
            data = gunzip(payload, limit)
        except BadBody as exc:
            raise _BadRecord(str(exc)) from None
        except BodyTooLarge:
            msg = f"over {limit:,} bytes decompressed"
            raise _BadRecord(msg) from None
    else:
        return payload
    if len(data) > limit:
        msg = f"over {limit:,} bytes decompressed"
        raise _BadRecord(msg)
    return data


# -- decoding records ----------------------------------------------------------

Decoded = tuple[str, "ExportTraceServiceRequest | _BadRecord", "bytes | None"]
"""(where, the request or why not, the protobuf bytes it was decoded from)."""


def _from_json_object(data: object, where: str) -> Iterator[Decoded]:
    """Yield the requests of one JSON object: OTLP JSON, or each trace of Jaeger JSON."""
    if not isinstance(data, dict):
        yield where, _BadRecord(f"expected a JSON object, got {type(data).__name__}"), None
        return
    if "resourceSpans" in data or "resource_spans" in data:
        try:
            yield where, parse_otlp_dict(data, ExportTraceServiceRequest()), None
        except OtlpJsonError as exc:
            yield where, _BadRecord(str(exc)), None
        return
    if is_jaeger_json(data):
        prefix = "" if where == "document" else f"{where}, "
        try:
            for trace_where, trace in jaeger_traces(data):
                label = prefix + trace_where
                try:
                    yield label, trace_to_request(trace, trace_where), None
                except JaegerJsonError as exc:
                    yield label, _BadRecord(f"Jaeger JSON: {exc}"), None
        except JaegerJsonError as exc:
            yield where, _BadRecord(str(exc)), None
        return
    keys = ", ".join(sorted(data)[:5]) or "none"
    reason = f"neither OTLP JSON (resourceSpans) nor Jaeger JSON (data: [traces]); its keys: {keys}"
    yield where, _BadRecord(reason), None


def _from_protobuf(payload: bytes, where: str) -> Decoded:
    try:
        return where, decode_request(payload, PROTOBUF), payload
    except BadBody as exc:
        return where, _BadRecord(str(exc)), None


def _from_payload(payload: bytes, where: str, limit: int) -> Iterator[Decoded]:
    """Yield the requests of a length-prefixed record: protobuf or JSON, maybe compressed."""
    try:
        payload = _decompress_record(payload, limit)
    except _BadRecord as exc:
        yield where, exc, None
        return
    if payload.lstrip(_WHITESPACE)[:1] == b"{":
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            yield where, _BadRecord(f"not JSON: {exc}"), None
            return
        yield from _from_json_object(data, where)
        return
    yield _from_protobuf(payload, where)


def _json_lines(stream: IO[bytes], limit: int, first: int = 1) -> Iterator[Decoded]:
    """Yield the records of a JSON lines stream, numbered from line ``first``."""
    number = first - 1
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        number += 1
        where = f"line {number}"
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):  # skip the rest of it
                line = stream.readline(_CHUNK)
            yield where, _BadRecord(f"longer than {limit:,} bytes"), None
            continue
        if not line.strip(_WHITESPACE):
            continue
        try:
            data = json.loads(line)
        except (ValueError, RecursionError) as exc:
            yield where, _BadRecord(f"not JSON: {exc}"), None
            continue
        yield from _from_json_object(data, where)


def _json(stream: IO[bytes], limit: int) -> tuple[str, Iterator[Decoded]]:
    """Return the format and the records of JSON: one document, or JSON lines.

    The first line decides: a complete JSON object there makes it JSON lines (a
    one-line document is a file of one line). Otherwise it is one document, unless
    that does not parse and some of its lines do: JSON lines with bad lines.
    """
    first = stream.readline(limit + 1)
    try:
        data = json.loads(first)
    except (ValueError, RecursionError):
        pass
    else:
        blank = b""
        while True:  # a one-line document, or the first of several lines?
            line = stream.readline(limit + 1)
            if not line:
                return _document(data)
            if line.strip(_WHITESPACE):
                break
            blank += line
        return "JSON lines", _json_lines(_buffered(stream, first + blank + line), limit)
    text = first + stream.read(limit + 1 - len(first))
    if len(text) > limit:
        msg = f"a JSON document over {limit:,} bytes, and not JSON lines"
        raise UnreadableInput(msg)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        lines = text.splitlines(keepends=True)
        if len(lines) > 1 and any(_is_json_object(line) for line in lines):
            return "JSON lines", _json_lines(io.BytesIO(text), limit)
        error = _BadRecord(f"not JSON: {exc}")
        return "JSON", iter([("document", error, None)])
    return _document(data)


def _document(data: object) -> tuple[str, Iterator[Decoded]]:
    kind = "Jaeger JSON" if isinstance(data, dict) and is_jaeger_json(data) else "OTLP JSON"
    return kind, _from_json_object(data, "document")


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


def _length_prefixed(stream: IO[bytes], limit: int) -> Iterator[Decoded]:
    """Yield the records of the collector file exporter's framing: length, then message.

    Raises:
        UnreadableInput: The framing breaks (a truncated file); the records before are
            yielded first.
    """
    number = 0
    offset = 0
    while True:
        prefix = _read_head(stream, 4)
        if not prefix:
            return
        number += 1
        where = f"record {number} (byte {offset:,})"
        if len(prefix) < 4:
            msg = f"{where}: the file ends inside a 4-byte length prefix"
            raise UnreadableInput(msg)
        size = int.from_bytes(prefix, "big")
        offset += 4 + size
        if size > limit:
            skipped = 0
            while skipped < size:
                chunk = stream.read(min(_CHUNK, size - skipped))
                if not chunk:
                    break
                skipped += len(chunk)
            if skipped < size:
                msg = f"{where}: the file ends inside the record ({size:,} bytes announced)"
                raise UnreadableInput(msg)
            yield where, _BadRecord(f"{size:,} bytes, over the limit of {limit:,}"), None
            continue
        payload = _read_head(stream, size)
        if len(payload) < size:
            msg = (
                f"{where}: the file ends inside the record ({size:,} bytes announced, "
                f"{len(payload):,} there)"
            )
            raise UnreadableInput(msg)
        yield from _from_payload(payload, where, limit)


def read_records(stream: IO[bytes], limit: int = MAX_RECORD_BYTES) -> tuple[str, Iterator[Decoded]]:
    """Return the format of a stream and an iterator over its records.

    Raises:
        UnreadableInput: The stream is in no format read here. The iterator may raise
            it too, for a length-prefixed file that breaks off.
    """
    stream, compression = _decompressed(stream)
    head = b""
    while True:  # up to the first byte that is not white space (or a BOM)
        chunk = stream.read(1)
        head += chunk
        if not chunk or chunk not in (b" ", b"\t", b"\r", b"\n", b"\xef", b"\xbb", b"\xbf"):
            break
    stream = _buffered(stream, head)
    start = head.lstrip(_WHITESPACE).removeprefix(_BOM).lstrip(_WHITESPACE)[:1]
    suffix = f", {compression}" if compression else ""
    if not head:
        return f"empty{suffix}", iter(())
    if start == b"{":
        kind, records = _json(stream, limit)
        return kind + suffix, records
    if head[:1] == b"\x0a":  # field 1 (resource_spans), length-delimited
        data = stream.read(limit + 1)
        if len(data) > limit:
            msg = f"a protobuf message over {limit:,} bytes"
            raise UnreadableInput(msg)
        return "OTLP protobuf" + suffix, iter([_from_protobuf(data, "message")])
    if head[:1] < b"\x0a":  # a length prefix under 160 MiB starts with 0x00..0x09
        return "length-prefixed records" + suffix, _length_prefixed(stream, limit)
    head = stream.read(16)  # the stream gives the head again
    msg = (
        "not a trace file read here: expected OTLP JSON, OTLP JSON lines, OTLP protobuf "
        f"(one message or length-prefixed) or Jaeger JSON; it starts with {head[:16]!r}"
    )
    raise UnreadableInput(msg)


# -- writing -------------------------------------------------------------------


def _span_count(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


class Importer:
    """Imports sources into a store, adding to one :class:`ImportSummary`.

    Args:
        store: Where the spans go.
        limit: The largest record, decompressed.
        on_problem: Called with each problem as it is found (the command prints it).
        on_progress: Called with the spans accepted so far, after each write.
    """

    def __init__(
        self,
        store: SpanStore,
        *,
        limit: int = MAX_RECORD_BYTES,
        on_problem: Callable[[Problem], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.limit = limit
        self.summary = ImportSummary()
        self._on_problem = on_problem
        self._on_progress = on_progress
        self._pending: list[tuple[str, ExportTraceServiceRequest, bytes | None]] = []
        self._pending_spans = 0
        self._source = ""

    def _problem(self, where: str, reason: str) -> None:
        problem = Problem(self._source, where, reason)
        self.summary.problems.append(problem)
        if self._on_problem is not None:
            self._on_problem(problem)

    def import_stream(self, stream: IO[bytes], source: str) -> None:
        """Import every record of ``stream``, named ``source`` in problems."""
        self._source = source
        try:
            kind, records = read_records(stream, self.limit)
            self.summary.formats[source] = kind
            for where, decoded, encoded in records:
                if isinstance(decoded, _BadRecord):
                    self.summary.rejected_records += 1
                    self._problem(where, str(decoded))
                    continue
                self._add(where, decoded, encoded)
        except UnreadableInput as exc:
            self.summary.rejected_records += 1
            self._problem("file", str(exc))
        except (OSError, EOFError, zlib.error) as exc:  # a corrupt gzip stream, say
            self.summary.rejected_records += 1
            self._problem("file", f"cannot be read: {exc}")
        finally:
            self.flush()

    def import_path(self, path: str) -> None:
        """Import one file (``-``: standard input)."""
        if path == "-":
            self.import_stream(sys.stdin.buffer, "<stdin>")
            return
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed below, after the import
        except OSError as exc:
            self._source = path
            self.summary.rejected_records += 1
            self._problem("file", f"cannot be opened: {exc.strerror or exc}")
            return
        with stream:
            self.import_stream(stream, path)

    def reject(self, source: str, where: str, reason: str) -> None:
        """Count a record that could not be read at all, and report it."""
        self._source = source
        self.summary.rejected_records += 1
        self._problem(where, reason)

    def import_request(self, request: ExportTraceServiceRequest, source: str) -> None:
        """Import one OTLP request read elsewhere (a remote Jaeger's trace), named ``source``."""
        self._source = source
        self.summary.formats[source] = "Jaeger query API"
        self._add("trace", request, None)
        self.flush()

    def _add(self, where: str, request: ExportTraceServiceRequest, encoded: bytes | None) -> None:
        self.summary.records += 1
        self._pending.append((where, request, encoded))
        self._pending_spans += _span_count(request)
        if self._pending_spans >= BATCH_SPANS:
            self.flush()

    def flush(self) -> None:
        """Write the records read so far (each record whole, or none of it)."""
        pending, self._pending, self._pending_spans = self._pending, [], 0
        if not pending:
            return
        if len(pending) == 1:
            merged, encoded = pending[0][1], pending[0][2]
        else:
            merged = ExportTraceServiceRequest()
            for _, request, _ in pending:
                merged.resource_spans.extend(request.resource_spans)
            # serialized messages laid end to end are the message of all their fields
            parts = [e for _, _, e in pending]
            encoded = b"".join(p for p in parts if p is not None)
            if any(p is None for p in parts):
                encoded = None
        try:
            result = self.store.write_request(merged, encoded)
        except Exception as exc:  # the store is busy past its timeout, the disk is full
            self.summary.records -= len(pending)
            self.summary.rejected_records += len(pending)
            for where, _, _ in pending:
                self._problem(where, f"not stored: {exc}")
            return
        summary = self.summary
        summary.spans += result.accepted_spans
        summary.new_spans += result.new_spans
        summary.rejected_spans += result.rejected_spans
        trace_ids = summary.trace_ids
        for rs in merged.resource_spans:
            for ss in rs.scope_spans:
                trace_ids.update(s.trace_id for s in ss.spans)
        if result.rejected_spans:
            trace_ids.difference_update({t for t in trace_ids if len(t) != 16 or not any(t)})
            # which records had them: each is checked as the store checks (rarely run)
            for where, request, _ in pending:
                prepared = prepare_request(request, None, self.store.tag_keys)
                if prepared.rejected:
                    reasons = "; ".join(f"{n} with {why}" for why, n in prepared.reasons.items())
                    self._problem(where, f"{prepared.rejected} span(s) refused: {reasons}")
        if self._on_progress is not None:
            self._on_progress(summary.spans)


# -- the command ---------------------------------------------------------------


class _ProgressBar:
    """A one-line progress bar on standard error: bytes read of a file, spans stored."""

    def __init__(self, name: str, total_bytes: int, stream: IO[str]) -> None:
        self._name = name if len(name) <= 30 else "..." + name[-27:]
        self._total = total_bytes
        self._stream = stream
        self._started = time.monotonic()
        self._shown = 0.0
        self.read_bytes: Callable[[], int] = lambda: 0

    def update(self, spans: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._shown < 0.1:
            return
        self._shown = now
        done = min(self.read_bytes(), self._total)
        fraction = done / self._total if self._total else 1.0
        filled = int(fraction * 24)
        elapsed = max(now - self._started, 1e-6)
        self._stream.write(
            f"\r{self._name} [{'#' * filled}{'.' * (24 - filled)}] {fraction:4.0%} "
            f"{done / 2**20:,.0f}/{self._total / 2**20:,.0f} MiB, {spans:,} spans "
            f"({spans / elapsed:,.0f}/s)\x1b[K"
        )
        self._stream.flush()

    def clear(self) -> None:
        self._stream.write("\r\x1b[K")
        self._stream.flush()


def register(subparsers: Any) -> None:
    """Add the ``import`` subcommand (see :mod:`cvtrace.cli`)."""
    parser = subparsers.add_parser(
        "import",
        help="import trace files (OTLP JSON/JSON lines/protobuf, Jaeger JSON) into the store",
        description=(
            "Store the traces of files written by the viewer's downloads, Jaeger UI, an "
            "OpenTelemetry SDK or the collector's file exporter (OTLP JSON, OTLP JSON "
            "lines, OTLP protobuf, length-prefixed or not, Jaeger JSON; plain, gzip or "
            "zstd), told apart by their content. Spans already stored are not stored "
            "again. The exit status is 1 if anything was rejected."
        ),
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="files to import; - for stdin (with --jaeger-url: trace ids)",
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="the store file (default: $CVTRACE_LOCAL_DB, else "
        "$XDG_DATA_HOME/cvtrace/traces.sqlite3, the file cvtrace view opens)",
    )
    parser.add_argument(
        "--jaeger-url",
        default=None,
        metavar="URL",
        help="save traces of this Jaeger query service instead (the arguments are their "
        "ids): what the trace page's 'Save to local store' does",
    )
    parser.add_argument(
        "--jaeger-header",
        action="append",
        default=None,
        metavar="'NAME: VALUE'",
        help="a header sent to the Jaeger, e.g. 'Authorization: Bearer TOKEN'; repeatable "
        "(default: $CVTRACE_VIEWER_JAEGER_HEADERS)",
    )
    parser.add_argument(
        "--jaeger-timeout",
        default=None,
        metavar="SECONDS",
        help="how long one answer of the Jaeger may take (default 10)",
    )
    parser.set_defaults(func=run)


def _import_from_jaeger(args: argparse.Namespace, importer: Importer) -> None:
    """Fetch each trace id of ``args.paths`` from the Jaeger and import it.

    Raises:
        CvtraceConfigError: A ``--jaeger-*`` option is malformed.
    """
    from cvtrace.viewer import remote_options
    from cvtrace.viewer.jaeger_api import BadParameter, parse_trace_id
    from cvtrace.viewer.remote import JaegerSource, RemoteError

    options = remote_options(
        {
            "JAEGER_URL": args.jaeger_url,
            "JAEGER_HEADERS": args.jaeger_header
            if args.jaeger_header is not None
            else os.environ.get("CVTRACE_VIEWER_JAEGER_HEADERS"),
            "JAEGER_TIMEOUT_S": args.jaeger_timeout
            if args.jaeger_timeout is not None
            else os.environ.get("CVTRACE_VIEWER_JAEGER_TIMEOUT_S"),
        }
    )
    assert options is not None
    source = JaegerSource(options)
    for text in args.paths:
        where = f"trace {text}"
        try:
            trace_id = parse_trace_id(text)
            found = source.trace(trace_id)
        except (BadParameter, RemoteError) as exc:
            importer.reject(where, "fetch", str(exc))
            continue
        if found is None:
            importer.reject(where, "fetch", f"the Jaeger at {options.url} does not have it")
            continue
        importer.import_request(found.request, where)
        print(f"{where}: {found.summary.span_count:,} spans", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Import the files; return 0, 1 if anything was rejected, 2 if the store won't open."""
    from cvtrace.exceptions import CvtraceConfigError
    from cvtrace.exporters.local import default_db_path
    from cvtrace.store.connections import StoreRefused
    from cvtrace.viewer import store_options

    db_path = args.db or default_db_path()
    try:  # the viewer's store, with its retention (CVTRACE_VIEWER_MAX_SPANS ...)
        store = SpanStore(db_path, **store_options({}))
    except StoreRefused as exc:
        message = exc.worded_for("--db") if args.db else str(exc)
        print(f"cvtrace import: {message}", file=sys.stderr)
        return 2
    except CvtraceConfigError as exc:
        print(f"cvtrace import: {exc}", file=sys.stderr)
        return 2
    shown: dict[str, int] = {}
    bar: _ProgressBar | None = None

    def problem(p: Problem) -> None:
        count = shown[p.source] = shown.get(p.source, 0) + 1
        if count > PROBLEMS_SHOWN:
            return
        if bar is not None:
            bar.clear()
        suffix = " (more are counted, not shown)" if count == PROBLEMS_SHOWN else ""
        print(f"{p}{suffix}", file=sys.stderr)

    def progress(spans: int) -> None:
        if bar is not None:
            bar.update(spans)

    importer = Importer(store, on_problem=problem, on_progress=progress)
    if getattr(args, "jaeger_url", None):
        try:
            _import_from_jaeger(args, importer)
        except CvtraceConfigError as exc:
            print(f"cvtrace import: {exc}", file=sys.stderr)
            return 2
        finally:
            store.close()
        print(importer.summary.text())
        return 0 if importer.summary.ok else 1
    try:
        for path in args.paths:
            bar = None
            before = (
                importer.summary.spans,
                importer.summary.records,
                importer.summary.rejected_records,
            )
            stream = _open_for_progress(path)
            if isinstance(stream, tuple):
                raw, size = stream
                bar = _ProgressBar(path, size, sys.stderr)
                bar.read_bytes = lambda raw=raw: raw.count  # type: ignore[misc]
                with io.BufferedReader(raw, _CHUNK) as buffered:
                    importer.import_stream(buffered, path)
                bar.update(importer.summary.spans, force=True)
                bar.clear()
            else:
                importer.import_path(path)
            spans = importer.summary.spans - before[0]
            records = importer.summary.records - before[1]
            rejected = importer.summary.rejected_records - before[2]
            kind = importer.summary.formats.get("<stdin>" if path == "-" else path)
            if kind is not None and (records or not rejected):  # else its problems said it
                print(
                    f"{path}: {kind}, {counted(records, 'record')}, {counted(spans, 'span')}",
                    file=sys.stderr,
                )
    finally:
        store.close()
    print(importer.summary.text())
    return 0 if importer.summary.ok else 1


def _open_for_progress(path: str) -> tuple[_Raw, int] | None:
    """Open a file worth a progress bar (big, stderr a terminal), counting its bytes."""
    if path == "-" or not sys.stderr.isatty():
        return None
    try:
        size = os.stat(path).st_size
        if size < PROGRESS_MIN_BYTES:
            return None
        return _Raw(open(path, "rb", buffering=0), owned=True), size
    except OSError:
        return None  # import_path reports it
