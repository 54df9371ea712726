"""``newrelic``: OTLP/HTTP protobuf to New Relic, within New Relic's limits.

The endpoint comes from ``NEW_RELIC_REGION`` (``us``, ``eu``, ``fedramp``) or, when
set, ``NEW_RELIC_OTLP_ENDPOINT`` (a base URL; ``/v1/traces`` is appended). The license
key ``NEW_RELIC_LICENSE_KEY`` goes in the ``api-key`` header; bodies are gzipped.
New Relic rejects or truncates what exceeds its limits, so they are applied here:
attribute values are cut to 4095 characters, a span keeps at most 64 attributes, and
a batch is split so that every request stays under 1 MB.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.util.types import AttributeValue

from ..exceptions import CvtraceConfigError
from ..spans import replace_span
from ._otlp_http import OtlpHttpSpanExporter

REGION_ENDPOINTS = {
    "us": "https://otlp.nr-data.net",
    "eu": "https://otlp.eu01.nr-data.net",
    "fedramp": "https://gov-otlp.nr-data.net",
}
MAX_VALUE_CHARS = 4095
MAX_ATTRIBUTES = 64
MAX_REQUEST_BYTES = 1_000_000


class NewRelicSpanExporter(OtlpHttpSpanExporter):
    """Send spans to New Relic's OTLP endpoint, trimmed to its limits.

    Args:
        license_key: the ingest license key (``api-key`` header).
        base_url: New Relic's OTLP base URL, without ``/v1/traces``.
        timeout_s: the time budget of one export, retries included.
    """

    def __init__(self, license_key: str, base_url: str, timeout_s: float = 10.0) -> None:
        super().__init__(
            base_url.rstrip("/") + "/v1/traces",
            {"api-key": license_key},
            compression="gzip",
            timeout_s=timeout_s,
            max_request_bytes=MAX_REQUEST_BYTES,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Apply New Relic's limits, then send."""
        return super().export([limit_span(span) for span in spans])


def create_newrelic_exporter(
    environ: Mapping[str, str] | None = None, timeout_s: float = 10.0
) -> NewRelicSpanExporter:
    """Build the exporter from ``NEW_RELIC_*`` variables.

    Raises:
        CvtraceConfigError: no license key, or an unknown region.
    """
    env = os.environ if environ is None else environ
    license_key = env.get("NEW_RELIC_LICENSE_KEY", "").strip()
    if not license_key:
        msg = (
            "NEW_RELIC_LICENSE_KEY: not set; the newrelic exporter needs your ingest "
            "license key (New Relic > API keys), or remove newrelic from the exporters"
        )
        raise CvtraceConfigError(msg)
    base_url = env.get("NEW_RELIC_OTLP_ENDPOINT", "").strip()
    if not base_url:
        region = env.get("NEW_RELIC_REGION", "us").strip().lower() or "us"
        if region not in REGION_ENDPOINTS:
            msg = (
                f"NEW_RELIC_REGION: unknown region {region!r}; "
                f"expected one of {', '.join(REGION_ENDPOINTS)}"
            )
            raise CvtraceConfigError(msg)
        base_url = REGION_ENDPOINTS[region]
    elif not base_url.startswith(("http://", "https://")):
        msg = (
            f"NEW_RELIC_OTLP_ENDPOINT: {base_url!r} is not an http(s) URL; "
            "use a base URL such as https://otlp.nr-data.net"
        )
        raise CvtraceConfigError(msg)
    return NewRelicSpanExporter(license_key, base_url, timeout_s=timeout_s)


def limit_attributes(
    attributes: Mapping[str, AttributeValue] | None,
) -> dict[str, AttributeValue] | None:
    """Return attributes within New Relic's limits, or ``None`` if already within."""
    if not attributes:
        return None
    too_many = len(attributes) > MAX_ATTRIBUTES
    too_long = any(_too_long(value) for value in attributes.values())
    if not too_many and not too_long:
        return None
    limited: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        if len(limited) == MAX_ATTRIBUTES:
            break
        limited[key] = _cut(value)
    return limited


def limit_span(span: ReadableSpan) -> ReadableSpan:
    """Return ``span`` itself when within New Relic's limits, else a trimmed copy."""
    attributes = limit_attributes(span.attributes)
    events: list[Event] | None = None
    for index, event in enumerate(span.events):
        event_attributes = limit_attributes(event.attributes)
        if event_attributes is not None:
            events = events or list(span.events)
            events[index] = Event(event.name, event_attributes, event.timestamp)
    if attributes is None and events is None:
        return span
    return replace_span(span, attributes=attributes, events=events)


def _too_long(value: AttributeValue) -> bool:
    if isinstance(value, str):
        return len(value) > MAX_VALUE_CHARS
    if isinstance(value, (list, tuple)):
        return any(isinstance(item, str) and len(item) > MAX_VALUE_CHARS for item in value)
    return False


def _cut(value: AttributeValue) -> AttributeValue:
    if isinstance(value, str):
        return value[:MAX_VALUE_CHARS]
    if isinstance(value, (list, tuple)) and any(isinstance(item, str) for item in value):
        return [item[:MAX_VALUE_CHARS] if isinstance(item, str) else item for item in value]
    return value
