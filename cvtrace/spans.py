"""Copies of finished spans with some parts replaced (scrubbing, New Relic's limits)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, Status
from opentelemetry.util.types import AttributeValue


class _ReplacedSpan(ReadableSpan):
    """A finished span rebuilt with new parts, keeping the original's dropped counts.

    The new parts are plain containers: their values were validated when the original
    span was made, so they are not wrapped (and re-validated) again.
    """

    def __init__(
        self,
        original: ReadableSpan,
        attributes: Mapping[str, AttributeValue] | None,
        events: Sequence[Event],
        links: Sequence[Link],
        status: Status,
    ) -> None:
        super().__init__(
            name=original.name,
            context=original.context,
            parent=original.parent,
            resource=original.resource,
            attributes=attributes,
            events=events,
            links=links,
            kind=original.kind,
            status=status,
            start_time=original.start_time,
            end_time=original.end_time,
            instrumentation_scope=original.instrumentation_scope,
        )
        self._dropped = (
            original.dropped_attributes,
            original.dropped_events,
            original.dropped_links,
        )

    @property
    def dropped_attributes(self) -> int:
        """Attributes the original span dropped."""
        return self._dropped[0]

    @property
    def dropped_events(self) -> int:
        """Events the original span dropped."""
        return self._dropped[1]

    @property
    def dropped_links(self) -> int:
        """Links the original span dropped."""
        return self._dropped[2]


def replace_span(
    span: ReadableSpan,
    *,
    attributes: Mapping[str, AttributeValue] | None = None,
    events: Sequence[Event] | None = None,
    links: Sequence[Link] | None = None,
    status: Status | None = None,
) -> ReadableSpan:
    """Return a copy of ``span`` with the given parts replaced (``None`` keeps a part).

    The copy reports the original's counts of dropped attributes, events and links.
    """
    return _ReplacedSpan(
        span,
        span.attributes if attributes is None else attributes,
        span.events if events is None else events,
        span.links if links is None else links,
        span.status if status is None else status,
    )
