"""cvtrace view's OTLP/HTTP port over real sockets: framing, keep-alive, backlog, slots.

The framing table runs against the UI port (waitress) as well: it serves the
same receiver as a Flask route.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from cvtrace.store import SpanStore
from cvtrace.viewer import create_app
from cvtrace.viewer.otlp_http import OtlpHttpServer, content_length
from cvtrace.viewer.receiver import DecodeSlots
from tests.viewer.support import (
    OtlpServer,
    ServedInThread,
    ViewerServer,
    make_request,
    raw_http,
    simple_trace,
)

PB = {"Content-Type": "application/x-protobuf"}
HEAD = b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
BODY = make_request(simple_trace()).SerializeToString()
LENGTH = str(len(BODY)).encode()


def chunked(*chunks: bytes) -> bytes:
    """A chunked body of ``chunks``, well formed."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    return out + b"0\r\n\r\n"


TE = b"Transfer-Encoding: chunked\r\n\r\n"
BAD_FRAMING = [
    ("length-plus", b"Content-Length: +" + LENGTH + b"\r\n\r\n" + BODY, 400),
    ("length-underscore", b"Content-Length: 1_" + LENGTH + b"\r\n\r\n" + BODY, 400),
    ("length-hex", b"Content-Length: 0x10\r\n\r\n" + BODY[:16], 400),
    (
        "two-lengths",
        b"Content-Length: " + LENGTH + b"\r\nContent-Length: 5\r\n\r\n" + BODY,
        400,
    ),
    ("length-list", b"Content-Length: " + LENGTH + b", 5\r\n\r\n" + BODY, 400),
    ("negative-chunk", TE + b"-5\r\nabcde\r\n0\r\n\r\n", 400),
    ("chunk-not-hex", TE + b"zz\r\nabcde\r\n0\r\n\r\n", 400),
    ("chunk-without-crlf", TE + b"%x\r\n%sXX0\r\n\r\n" % (len(BODY), BODY), 400),
    ("coding-not-chunked", b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
]


@pytest.fixture(params=["otlp-http-server", "ui-port"])
def port(request: pytest.FixtureRequest, store: SpanStore) -> Iterator[int]:
    """The OTLP port, or the UI port (waitress) whose app has the same receiver route."""
    server: ServedInThread
    if request.param == "otlp-http-server":
        server = OtlpServer(store)
    else:
        server = ViewerServer(create_app({"STORE": store}))
    with server:
        yield server.port


class TestFraming:
    """Issue 11, 5 and 10: malformed framing is a 4xx, never a 500 or a guess."""

    @pytest.mark.parametrize(
        ("framing", "status"),
        [(f, s) for _, f, s in BAD_FRAMING],
        ids=[name for name, _, _ in BAD_FRAMING],
    )
    def test_bad_framing_is_refused(
        self, port: int, store: SpanStore, framing: bytes, status: int
    ) -> None:
        answer, _ = raw_http(port, HEAD + framing)
        assert answer == status
        assert store.span_count() == 0

    def test_well_formed_framing_is_stored(self, port: int, store: SpanStore) -> None:
        assert raw_http(port, HEAD + b"Content-Length: " + LENGTH + b"\r\n\r\n" + BODY)[0] == 200
        other = make_request(simple_trace()).SerializeToString()
        assert raw_http(port, HEAD + TE + chunked(other[:7], other[7:]))[0] == 200
        assert store.span_count() == 6

    @pytest.mark.parametrize(
        "framing",
        [
            TE + b"1" * 17 + b"\r\nabcde\r\n0\r\n\r\n",
            TE + b"5;" + b"x" * 5000 + b"\r\nabcde\r\n0\r\n\r\n",
            TE + b"5\r\nabcde\r\n0\r\n" + b"X-T: 1\r\n" * 100 + b"\r\n",
        ],
        ids=["size-17-digits", "line-too-long", "too-many-trailers"],
    )
    def test_outsized_chunk_framing_is_refused(self, store: SpanStore, framing: bytes) -> None:
        """The OTLP port's own limits (waitress on the UI port waits for such a chunk's data
        until its body limit or the client's end)."""
        with OtlpServer(store) as srv:
            assert raw_http(srv.port, HEAD + framing)[0] == 400

    def test_chunk_extensions_and_trailers(self, store: SpanStore) -> None:
        with OtlpServer(store) as srv:
            body = b"%x;ext=1\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (len(BODY), BODY)
            assert raw_http(srv.port, HEAD + TE + body)[0] == 200
        assert store.span_count() == 3

    def test_body_cut_short_is_not_stored(self, store: SpanStore, tmp_path: Path) -> None:
        """A body that ends early is not decoded, even if its first part would decode."""
        first = make_request(simple_trace())
        second = make_request(simple_trace())
        whole = ExportTraceServiceRequest(
            resource_spans=[*first.resource_spans, *second.resource_spans]
        ).SerializeToString()
        prefix = first.SerializeToString()  # a valid request on its own
        assert whole.startswith(prefix)
        with OtlpServer(store) as srv:
            head = HEAD + b"Content-Length: %d\r\n\r\n" % len(whole)
            status, _ = raw_http(srv.port, head + prefix, half_close=True)
            assert status == 400
            cut = HEAD + TE + b"%x\r\n%s\r\n" % (len(prefix), prefix)  # no last chunk
            status, _ = raw_http(srv.port, cut, half_close=True)
            assert status == 400
        assert store.span_count() == 0

    @pytest.mark.parametrize(
        ("values", "length"),
        [([], None), (["0"], 0), (["42"], 42), (["42", "42"], 42), (["42, 42"], 42)],
    )
    def test_content_length_values(self, values: list[str], length: int | None) -> None:
        assert content_length(values) == length


class TestOtlpHttpServer:
    """What only cvtrace view's own OTLP/HTTP server has to get right."""

    def test_backlog_takes_a_burst_of_connections(self, store: SpanStore) -> None:
        """Issue 11, 9: with socketserver's backlog of 5, the 7th connect waited for a SYN
        retransmit. Nothing accepts here: every connect must complete in the backlog."""
        server = OtlpHttpServer(("127.0.0.1", 0), store)
        conns: list[socket.socket] = []
        try:
            for _ in range(100):
                conns.append(socket.create_connection(("127.0.0.1", server.server_port), 0.5))
        except TimeoutError:
            pass
        finally:
            for conn in conns:
                conn.close()
            server.server_close()
        assert len(conns) == 100

    def test_busy_slots_answer_503_with_retry_after(self, store: SpanStore) -> None:
        """Issue 11, 8: no slot free in time: 503 and Retry-After; the request is not lost
        for good, the exporter retries."""
        slots = DecodeSlots(1, wait_s=0.2)
        with OtlpServer(store, slots=slots) as srv, slots.hold() as had:
            assert had
            r = requests.post(f"{srv.url}/v1/traces", data=BODY, headers=PB, timeout=10)
            assert r.status_code == 503
            assert r.headers["Retry-After"] == "1"
        assert store.span_count() == 0
        with OtlpServer(store, slots=slots) as srv:
            r = requests.post(f"{srv.url}/v1/traces", data=BODY, headers=PB, timeout=10)
            assert r.status_code == 200
        assert store.span_count() == 3

    def test_token_and_host(self, store: SpanStore) -> None:
        body = make_request(simple_trace()).SerializeToString()
        with OtlpServer(store, token="s3cret", allowed_hosts=["127.0.0.1"]) as srv:
            url = f"{srv.url}/v1/traces"
            refused = requests.post(url, data=body, headers=PB, timeout=10)
            assert (refused.status_code, refused.reason) == (401, "UNAUTHORIZED")  # as werkzeug
            evil = {**PB, "Authorization": "Bearer s3cret", "Host": "evil.example"}
            assert requests.post(url, data=body, headers=evil, timeout=10).status_code == 421
            assert store.span_count() == 0
            ok = {**PB, "Authorization": "Bearer s3cret"}
            assert requests.post(url, data=body, headers=ok, timeout=10).status_code == 200
            assert store.span_count() == 3

    def test_keep_alive_chunked_and_unknown_paths(self, store: SpanStore) -> None:
        with OtlpServer(store) as srv, requests.Session() as session:
            for _ in range(3):  # one connection, several requests
                body = make_request(simple_trace()).SerializeToString()
                r = session.post(f"{srv.url}/v1/traces", data=body, headers=PB, timeout=10)
                assert r.status_code == 200
            chunks = iter([body[:10], body[10:]])  # a generator body is sent chunked
            r = session.post(f"{srv.url}/v1/traces", data=chunks, headers=PB, timeout=10)
            assert r.status_code == 200
            assert session.post(f"{srv.url}/v1/logs", data=b"x", timeout=10).status_code == 404
            assert session.get(f"{srv.url}/v1/traces", timeout=10).status_code == 405
        assert store.span_count() == 3 * 3

    def test_refused_body_too_large_to_drain_closes_the_connection(self, store: SpanStore) -> None:
        with OtlpServer(store, limit=100) as srv:
            host, port = srv.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=10) as conn:
                conn.sendall(
                    b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/x-protobuf\r\nContent-Length: 100000\r\n\r\n"
                )
                answer = conn.recv(65536)
                assert answer.startswith(b"HTTP/1.1 413")
                assert b"Connection: close" in answer
