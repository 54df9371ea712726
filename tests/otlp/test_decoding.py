"""Request bodies decoded from the wire: limits, gzip members, protobuf and OTLP JSON."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest

from cvtrace.otlp.decoding import (
    JSON,
    MAX_GZIP_MEMBERS,
    PROTOBUF,
    BadBody,
    BodyTooLarge,
    decode_request,
    gunzip,
    read_body,
)
from tests.viewer.support import make_request, simple_trace


class TestGunzip:
    def test_one_member(self) -> None:
        data = b"spans " * 100_000
        assert gunzip(gzip.compress(data), len(data)) == data

    def test_concatenated_members_are_one_body(self) -> None:
        parts = [b"a" * 300_000, b"", b"b" * 10, b"c" * 700_000]
        body = b"".join(gzip.compress(p) for p in parts)
        assert gunzip(body, 10**7) == b"".join(parts)

    def test_members_up_to_the_cap(self) -> None:
        body = gzip.compress(b"x") * MAX_GZIP_MEMBERS
        assert gunzip(body, 10**6) == b"x" * MAX_GZIP_MEMBERS

    def test_more_members_than_the_cap_is_bad(self) -> None:
        """Issue 11, 1: 200,000 empty members (4 MB) held a core for 15 s; now refused."""
        body = gzip.compress(b"") * 200_000
        with pytest.raises(BadBody, match=f"more than {MAX_GZIP_MEMBERS} members"):
            gunzip(body, 64 * 1024 * 1024)

    def test_output_over_the_limit_stops_early(self) -> None:
        bomb = gzip.compress(b"\0" * (50 * 1024 * 1024), compresslevel=9)
        with pytest.raises(BodyTooLarge):
            gunzip(bomb, 1024 * 1024)

    def test_exactly_the_limit_is_accepted(self) -> None:
        assert len(gunzip(gzip.compress(b"z" * 1000), 1000)) == 1000

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"", "ends early"),
            (gzip.compress(b"x" * 100)[:-8], "ends early"),
            (b"\x1f\x8b\x08\x00garbage" * 3, "not valid gzip"),
            (gzip.compress(b"x") + b"trailing junk", "not valid gzip"),
            (zlib.compress(b"zlib, not gzip"), "not valid gzip"),
        ],
        ids=["empty", "truncated", "garbage", "junk-after-member", "zlib-stream"],
    )
    def test_broken_gzip_is_bad(self, body: bytes, message: str) -> None:
        with pytest.raises(BadBody, match=message):
            gunzip(body, 10**6)


class TestReadBody:
    def test_plain_body_over_the_limit(self) -> None:
        with pytest.raises(BodyTooLarge):
            read_body(io.BytesIO(b"x" * 1001), "identity", 1000)

    def test_plain_and_gzip(self) -> None:
        assert read_body(io.BytesIO(b"abc"), "identity", 100) == b"abc"
        assert read_body(io.BytesIO(gzip.compress(b"abc")), "gzip", 100) == b"abc"

    def test_compressed_size_is_limited_too(self) -> None:
        noise = gzip.compress(bytes(range(256)) * 100, compresslevel=0)
        with pytest.raises(BodyTooLarge):
            read_body(io.BytesIO(noise), "gzip", len(noise) - 1)


class TestDecodeRequest:
    def test_protobuf_and_json(self) -> None:
        request = make_request(simple_trace())
        assert decode_request(request.SerializeToString(), PROTOBUF) == request
        assert decode_request(b'{"resourceSpans": []}', JSON).resource_spans == []

    @pytest.mark.parametrize(
        ("body", "content_type"),
        [(b"\xff\xff\xff not protobuf", PROTOBUF), (b"[1]", JSON), (b"{", JSON)],
    )
    def test_undecodable_is_bad(self, body: bytes, content_type: str) -> None:
        with pytest.raises(BadBody):
            decode_request(body, content_type)
