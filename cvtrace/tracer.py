"""The tracer of cvtrace's own server and query spans: the SDK's spans, fewer steps.

The SDK's ``Tracer.start_span`` plus ``Span.end`` make about 45 Python calls a span more
than this module does (counted: 359 -> 173 tracing calls for the demo's circuit view and
its 4 spans), before any exporter sees it: a sampling result object, a
``BoundedAttributes`` that re-validates every attribute (a lock, a type walk per value),
empty bounded lists for events and links, a lock per span, and on ``end`` a second
object, the ``ReadableSpan`` copy handed to the processors. cvtrace's instrumentation
already knows its attributes are clean strings and numbers, so :class:`LeanTracer` makes
a :class:`LeanSpan`: a ``ReadableSpan`` that is also the live span, holding a plain
dict, with events and links made only when a span gets one, and handed to the processors
as it is when it ends.

What stays the SDK's: the provider's processors (``on_start``, ``on_end``), its
resource and id generator, the default sampler's decision (parent-based, always on:
an unsampled caller makes no span), and the attribute count limit. Anything else --
another sampler, attribute length limits, the SDK's own metrics, span limits it is not
told -- and :func:`tracer_for` returns the SDK's tracer itself, whose spans behave the
same. (``OTEL_SDK_DISABLED`` gives a no-op tracer, returned as it is.) It reads only the
SDK tracer's public attributes (``sampler``, ``resource``, ``span_processor``,
``id_generator``); the one private name it touches, a processor's ``_on_ending`` hook of
the newer SDK releases, it calls only where it exists, as the SDK's span does.
``tests/library/test_tracer.py`` compares the two span by span. Measured in
BENCHMARKS.md (section 1 and "Design changes").
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from time import time_ns
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import Attributes, AttributeValue

logger = logging.getLogger(__name__)

_DEFAULT_SAMPLER = ParentBased(ALWAYS_ON).get_description()  # type: ignore[no-untyped-call]
_SDK_METRICS_VAR = "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"
_RANDOM_FLAG = int(getattr(TraceFlags, "RANDOM_TRACE_ID", 0))
"""W3C level 2's random-trace-id flag, in the SDK releases that set it."""
_UNSET = Status(StatusCode.UNSET)
_PLAIN_TYPES = (str, bool, int, float)


def tracer_for(
    provider: TracerProvider, name: str, version: str, limits: SpanLimits | None
) -> trace.Tracer:
    """A tracer for cvtrace's instrumentation: lean when the provider allows it.

    Args:
        provider: the SDK's tracer provider.
        name: the instrumentation scope's name.
        version: its version.
        limits: the span limits the provider was given; ``None`` (not known): the
            SDK's tracer.

    Returns the SDK's own tracer when the provider is configured beyond what
    :class:`LeanSpan` reproduces (see the module docstring).
    """
    sdk_tracer = provider.get_tracer(name, version)
    sampler = getattr(sdk_tracer, "sampler", None)
    if (
        limits is None
        or limits.max_span_attribute_length is not None
        or limits.max_attribute_length is not None
        or sampler is None
        or sampler.get_description() != _DEFAULT_SAMPLER
        or not hasattr(sdk_tracer, "span_processor")
        or os.environ.get(_SDK_METRICS_VAR, "").strip().lower() == "true"
    ):
        return sdk_tracer
    return LeanTracer(sdk_tracer, name, version, limits)


class LeanTracer(trace.Tracer):
    """Make :class:`LeanSpan` objects for an SDK tracer's provider.

    Args:
        sdk_tracer: the provider's tracer of the same name (its processors, resource,
            id generator).
        name: the instrumentation scope's name.
        version: its version.
        limits: the provider's span limits (no length limits: see :func:`tracer_for`).
    """

    def __init__(self, sdk_tracer: Any, name: str, version: str, limits: SpanLimits) -> None:
        self._processor: SpanProcessor = sdk_tracer.span_processor
        self._resource = sdk_tracer.resource
        self._ids = sdk_tracer.id_generator
        self._limits = limits
        self._scope = InstrumentationScope(name, version)
        is_random = getattr(self._ids, "is_trace_id_random", None)
        random_ids = _RANDOM_FLAG if callable(is_random) and is_random() else 0
        self._root_flags = TraceFlags(TraceFlags.SAMPLED | random_ids)

    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        """Start a span; ``attributes`` must hold valid attribute values (a dict is kept)."""
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        ids = self._ids
        if parent is not None and parent.is_valid:
            if not parent.trace_flags.sampled:  # the default sampler follows the caller
                return trace.NonRecordingSpan(
                    SpanContext(
                        parent.trace_id,
                        ids.generate_span_id(),
                        is_remote=False,
                        trace_flags=TraceFlags(parent.trace_flags & _RANDOM_FLAG),
                        trace_state=parent.trace_state,
                    )
                )
            span_context = SpanContext(
                parent.trace_id,
                ids.generate_span_id(),
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.SAMPLED | (parent.trace_flags & _RANDOM_FLAG)),
                trace_state=parent.trace_state,
            )
        else:
            parent = None
            span_context = SpanContext(
                ids.generate_trace_id(),
                ids.generate_span_id(),
                is_remote=False,
                trace_flags=self._root_flags,
            )
        span = LeanSpan(
            name,
            span_context,
            parent,
            self._resource,
            attributes if isinstance(attributes, dict) else dict(attributes or {}),
            kind,
            self._scope,
            start_time if start_time is not None else time_ns(),
            self._processor,
            self._limits,
        )
        for link in links or ():
            span.add_link(link.context, link.attributes)
        self._processor.on_start(span, parent_context=context)  # type: ignore[arg-type]
        return span

    @contextlib.contextmanager  # (the API's own decorator for this is private)
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        """Start a span and make it the current one for the ``with`` block."""
        span = self.start_span(name, context, kind, dict(attributes or {}), links, start_time)
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class LeanSpan(ReadableSpan, trace.Span):
    """A recording span that is its own finished ``ReadableSpan``.

    Attributes live in a plain dict (count-limited like the SDK's); events and links in
    the SDK's bounded lists, made on the first one. The API's methods behave as the
    SDK span's; after ``end`` the span refuses changes, with the SDK's warnings.
    """

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        resource: Any,
        attributes: dict[str, Any],
        kind: SpanKind,
        scope: InstrumentationScope,
        start_time: int,
        processor: SpanProcessor,
        limits: SpanLimits,
    ) -> None:
        super().__init__(
            name=name,
            context=context,
            parent=parent,
            resource=resource,
            attributes=attributes,
            kind=kind,
            status=_UNSET,
            start_time=start_time,
            instrumentation_scope=scope,
        )
        self._processor = processor
        self._limits = limits
        self._dropped_attributes = 0
        limit = limits.max_span_attributes
        if limit is not None and len(attributes) > limit:  # kept as the SDK keeps them
            items = list(attributes.items())
            attributes.clear()
            for key, value in items:
                self._set(key, value)

    # reading

    @property
    def dropped_attributes(self) -> int:
        """Attributes dropped over the count limit."""
        return self._dropped_attributes

    def get_span_context(self) -> SpanContext:
        """The span's context (never ``None``)."""
        context = self._context
        assert context is not None  # made with one
        return context

    def is_recording(self) -> bool:
        """Whether the span still takes changes (not ended)."""
        return self._end_time is None

    # changing

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute, validated as the SDK does."""
        if self._end_time is not None:
            logger.warning("Setting attribute on ended span.")
            return
        if type(value) not in _PLAIN_TYPES or not key or type(key) is not str:
            self._set_checked({key: value})
            return
        self._set(key, value)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Set several attributes, validated as the SDK does."""
        if self._end_time is not None:
            logger.warning("Setting attribute on ended span.")
            return
        self._set_checked(attributes)

    def update_name(self, name: str) -> None:
        """Rename the span (while it records)."""
        if self._end_time is not None:
            logger.warning("Tried calling update_name on an ended span.")
            return
        self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Set the status; OK is final and UNSET changes nothing (the API's rules)."""
        if self._end_time is not None:
            logger.warning("Tried calling set_status on an ended span.")
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        elif description is not None:
            logger.warning(
                "Description %s ignored. Use either `Status` or `(StatusCode, Description)`",
                description,
            )
        if self._status.status_code is StatusCode.OK or status.status_code is StatusCode.UNSET:
            return
        self._status = status

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        """Add an event, its attributes limited as the SDK limits them."""
        if self._end_time is not None:
            logger.warning("Tried calling add_event on an ended span.")
            return
        limits = self._limits
        if not isinstance(self._events, BoundedList):
            self._events = BoundedList(limits.max_events)
        bounded = BoundedAttributes(
            limits.max_event_attributes,
            attributes,
            immutable=True,
            max_value_len=limits.max_attribute_length,
        )
        self._events.append(Event(name, bounded, timestamp))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        """Add a link to another span (a valid one, or one with attributes or state)."""
        if self._end_time is not None:
            logger.warning("Tried calling add_link on an ended span.")
            return
        if not (context and (context.is_valid or attributes or context.trace_state)):
            return
        limits = self._limits
        if not isinstance(self._links, BoundedList):
            self._links = BoundedList(limits.max_links)
        bounded = BoundedAttributes(
            limits.max_link_attributes,
            attributes,
            immutable=True,
            max_value_len=limits.max_attribute_length,
        )
        self._links.append(Link(context, bounded))

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """Record an exception as an ``exception`` event, as the SDK's span does."""
        SdkSpan.record_exception(self, exception, attributes, timestamp, escaped)  # type: ignore[arg-type]

    def end(self, end_time: int | None = None) -> None:
        """End the span and hand it to the processors as it is."""
        if self._end_time is not None:
            logger.warning("Calling end() on an ended span.")
            return
        self._end_time = end_time if end_time is not None else time_ns()
        processor = self._processor
        on_ending = getattr(processor, "_on_ending", None)  # SDK releases that have it
        if on_ending is not None:
            on_ending(self)
        processor.on_end(self)

    # the attribute dict, under the SDK's count limit

    def _set(self, key: str, value: AttributeValue) -> None:
        attributes: dict[str, Any] = self._attributes  # type: ignore[assignment]
        limit = self._limits.max_span_attributes  # None: no limit
        if key in attributes:
            del attributes[key]  # the SDK moves a key it sets again to the end
        elif limit is not None and len(attributes) >= limit:
            self._dropped_attributes += 1
            if not limit:
                return
            del attributes[next(iter(attributes))]  # the oldest goes, as in the SDK
        attributes[key] = value

    def _set_checked(self, attributes: Mapping[str, Any]) -> None:
        # BoundedAttributes applies the SDK's checks: invalid keys and values are
        # dropped with its warning, sequences become tuples.
        checked = BoundedAttributes(None, attributes, immutable=True)
        self._dropped_attributes += checked.dropped
        for key in checked:
            self._set(key, checked[key])
