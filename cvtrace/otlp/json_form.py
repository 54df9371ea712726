"""OTLP JSON: the JSON encoding of OTLP trace messages, both ways.

OTLP JSON is protobuf's canonical JSON mapping with the differences that
opentelemetry-proto's ``docs/specification.md`` lists: trace and span ids are
hex strings (not base64), field names are lowerCamelCase (the original names are
accepted too), enums are integers (names are accepted), 64-bit integers may be
strings or numbers, and unknown fields are ignored.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

__all__ = [
    "OtlpJsonError",
    "message_to_otlp_dict",
    "otlp_json_bytes",
    "parse_otlp_dict",
    "parse_otlp_json",
]

M = TypeVar("M", bound=Message)

_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


class OtlpJsonError(ValueError):
    """A body is not valid OTLP JSON; the message says where."""


def _hex_to_b64(value: object, where: str) -> object:
    if not isinstance(value, str):
        msg = f"{where}: expected a hex string, got {type(value).__name__}"
        raise OtlpJsonError(msg)
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        msg = f"{where}: {value[:64]!r} is not hex"
        raise OtlpJsonError(msg) from None
    return base64.b64encode(raw).decode("ascii")


def _b64_to_hex(value: object) -> object:
    if not isinstance(value, str):
        return value
    return base64.b64decode(value).hex()


def _list(obj: dict[str, Any], camel: str, snake: str) -> list[Any]:
    value = obj.get(camel, obj.get(snake))
    return value if isinstance(value, list) else []


def _convert_ids(data: object, convert: Callable[[object], object], *, parsing: bool) -> None:
    """Rewrite the id fields of every span and link in place."""
    if not isinstance(data, dict):
        return
    for r_i, rs in enumerate(_list(data, "resourceSpans", "resource_spans")):
        if not isinstance(rs, dict):
            continue
        for s_i, ss in enumerate(_list(rs, "scopeSpans", "scope_spans")):
            if not isinstance(ss, dict):
                continue
            for p_i, span in enumerate(_list(ss, "spans", "spans")):
                if not isinstance(span, dict):
                    continue
                where = f"resourceSpans[{r_i}].scopeSpans[{s_i}].spans[{p_i}]"
                objects = [(where, span)] + [
                    (f"{where}.links[{l_i}]", link)
                    for l_i, link in enumerate(_list(span, "links", "links"))
                    if isinstance(link, dict)
                ]
                for path, obj in objects:
                    for key in _ID_KEYS:
                        if key in obj:
                            if parsing:
                                obj[key] = _hex_to_b64(obj[key], f"{path}.{key}")
                            else:
                                obj[key] = convert(obj[key])


def parse_otlp_json(body: bytes | str, message: M) -> M:
    """Parse an OTLP JSON body into ``message`` (e.g. an ExportTraceServiceRequest).

    Raises:
        OtlpJsonError: The body is not JSON, or not OTLP JSON of that message.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        msg = f"body is not JSON: {exc}"
        raise OtlpJsonError(msg) from None
    if not isinstance(data, dict):
        msg = "body is not a JSON object"
        raise OtlpJsonError(msg)
    return parse_otlp_dict(data, message)


def parse_otlp_dict(data: dict[str, Any], message: M) -> M:
    """Parse OTLP JSON already read by ``json.loads`` into ``message``.

    ``data`` is changed in place (its ids are rewritten for protobuf's parser).

    Raises:
        OtlpJsonError: ``data`` is not OTLP JSON of that message.
    """
    _convert_ids(data, _b64_to_hex, parsing=True)
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        msg = f"not OTLP JSON: {exc}"
        raise OtlpJsonError(msg) from None
    return message


def message_to_otlp_dict(message: Message) -> dict[str, Any]:
    """Return a message as an OTLP JSON object (hex ids, integer enums)."""
    data: dict[str, Any] = json_format.MessageToDict(
        message, use_integers_for_enums=True, preserving_proto_field_name=False
    )
    _convert_ids(data, _b64_to_hex, parsing=False)
    return data


def otlp_json_bytes(message: Message) -> bytes:
    """Return a message as compact OTLP JSON bytes."""
    return json.dumps(message_to_otlp_dict(message), separators=(",", ":")).encode()
