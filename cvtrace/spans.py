"""Copies of finished spans with some parts replaced (scrubbing, New Relic's limits)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link
from opentelemetry.util.types import AttributeValue


def replace_span(
    span: ReadableSpan,
    *,
    attributes: Mapping[str, AttributeValue] | None = None,
    events: Sequence[Event] | None = None,
    links: Sequence[Link] | None = None,
) -> ReadableSpan:
    """Return a copy of ``span`` with the given parts replaced (``None`` keeps a part).

    The copy keeps the span's count of dropped attributes.
    """
    new_attributes: Mapping[str, AttributeValue] | None = span.attributes
    if attributes is not None:
        bounded = BoundedAttributes(attributes=attributes, immutable=False)
        bounded.dropped = span.dropped_attributes
        new_attributes = bounded
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=new_attributes,
        events=span.events if events is None else events,
        links=span.links if links is None else links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
