"""One trace's spans as columns, with the tree they form: what every analysis reads.

:func:`trace_spans` reads the fields the analyses use out of the stored spans once
(reading protobuf fields is the costly part: about 1.5 µs per span) into plain lists,
where index ``i`` is one span, and links each span to its parent by index. The
columns hold only numbers, strings and bytes (children as tuples of indexes), so a
cached trace costs the garbage collector nothing to walk, unlike the span objects
it was read from (which it does not keep).

The tree follows the waterfall's rules, the orphans found by
:func:`cvtrace.viewer.tracetree.tree_marks` (``tests/viewer/analyses/test_spans.py``
checks the tree against :func:`~cvtrace.viewer.tracetree.tree_rows`):

- a span without a parent is a **root**; a trace may have several;
- a span whose parent is not in the trace (or is itself) is an **orphan**: it is
  placed as a root, flagged;
- of two spans with the same id, the first one listed is the one children attach to;
- spans in a parent loop, never reached from a root, become orphans too: in start
  order, each such span not yet reached is cut from its parent and starts a subtree.

Only the parent (``CHILD_OF``) relation makes the tree: links (Jaeger's
``FOLLOWS_FROM``) do not.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from cvtrace.store import StoredSpan
from cvtrace.viewer.tracetree import tree_marks

__all__ = ["ROOT", "TraceSpans", "trace_spans"]

ROOT = -1
"""The parent index of a root (or orphan)."""
_ZERO_SPAN_ID = bytes(8)
_ERROR = Status.STATUS_CODE_ERROR
_ENTRY_KINDS = frozenset({Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CONSUMER})


class TraceSpans:
    """A trace's spans as columns; index ``i`` of every list is one span.

    Times are nanoseconds since the epoch; an end before its start is taken as the
    start (a zero-length span), as the waterfall and the Jaeger JSON show it.
    """

    __slots__ = (
        "_children",
        "ends",
        "errors",
        "kinds",
        "named_parents",
        "names",
        "orphans",
        "parents",
        "services",
        "span_ids",
        "starts",
        "statuses",
        "trace_id",
    )

    def __init__(self, trace_id: bytes = b"") -> None:
        self.trace_id = trace_id
        self.span_ids: list[bytes] = []
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.names: list[str] = []
        self.services: list[str] = []
        self.errors: list[bool] = []
        self.statuses: list[int] = []
        """OTLP status codes (0 unset, 1 ok, 2 error)."""
        self.kinds: list[int] = []
        self.parents: list[int] = []
        """The index of each span's parent in the tree, or :data:`ROOT` for roots and
        orphans."""
        self.named_parents: list[int] = []
        """The index of the span each span names as its parent, or :data:`ROOT` when it
        names none in the trace; unlike :attr:`parents`, parent loops are not cut."""
        self.orphans: list[bool] = []
        """The span names a parent that is not in the trace (or its parents loop)."""
        self._children: list[tuple[int, ...]] | None = None

    def __len__(self) -> int:
        return len(self.span_ids)

    @property
    def children(self) -> list[tuple[int, ...]]:
        """Return the indexes of each span's children, in the order the spans are listed."""
        if self._children is None:
            lists: dict[int, list[int]] = {}
            for i, parent in enumerate(self.parents):
                if parent != ROOT:
                    kids = lists.get(parent)
                    if kids is None:
                        lists[parent] = [i]
                    else:
                        kids.append(i)
            none: tuple[int, ...] = ()
            self._children = [none] * len(self.span_ids)
            for parent, kids in lists.items():
                self._children[parent] = tuple(kids)  # of ints: untracked by the GC
        return self._children

    def roots(self) -> list[int]:
        """Return the roots (no parent), then the orphans, each in start order."""
        order = sorted(
            (i for i, p in enumerate(self.parents) if p == ROOT),
            key=lambda i: (self.orphans[i], self.starts[i], self.span_ids[i]),
        )
        return order

    def main_root(self) -> int | None:
        """Return the span the trace is about: its earliest root, the longest on a tie.

        A trace without a root span (its root has not arrived) is about its earliest
        orphan. None for an empty trace.
        """
        best: tuple[bool, int, int, bytes] | None = None
        found: int | None = None
        for i, parent in enumerate(self.parents):
            if parent != ROOT:
                continue
            key = (self.orphans[i], self.starts[i], self.starts[i] - self.ends[i], self.span_ids[i])
            if best is None or key < best:
                best, found = key, i
        return found

    def duration(self, i: int) -> int:
        """Return span ``i``'s duration in nanoseconds."""
        return self.ends[i] - self.starts[i]

    def is_entry(self, i: int) -> bool:
        """Return whether span ``i`` is where a request enters a service.

        Server and consumer spans, and roots of any kind (a trace's first span is
        its entry, whatever its instrumentation called it).
        """
        return self.kinds[i] in _ENTRY_KINDS or (self.parents[i] == ROOT and not self.orphans[i])


def trace_spans(stored: Sequence[StoredSpan]) -> TraceSpans:
    """Return the columns and the tree of one trace's spans (see the module docstring)."""
    trace = TraceSpans(stored[0].span.trace_id if stored else b"")
    span_ids = trace.span_ids
    starts = trace.starts
    ends = trace.ends
    names = trace.names
    services = trace.services
    errors = trace.errors
    statuses = trace.statuses
    kinds = trace.kinds
    parent_ids: list[bytes] = []
    for s in stored:
        span = s.span
        start = span.start_time_unix_nano
        end = span.end_time_unix_nano
        span_ids.append(span.span_id)
        parent_ids.append(span.parent_span_id)
        starts.append(start)
        ends.append(end if end > start else start)
        names.append(span.name)
        services.append(s.service)
        status = span.status.code
        statuses.append(status)
        errors.append(status == _ERROR)
        kinds.append(span.kind)
    # which spans are orphans (parent missing, or in a loop): the waterfall's own rules
    orphan_set, _ = tree_marks(span_ids, parent_ids, starts, ends)
    by_id: dict[bytes, int] = {}
    for i, span_id in enumerate(span_ids):
        by_id.setdefault(span_id, i)
    parents = [ROOT] * len(span_ids)
    named = [ROOT] * len(span_ids)
    orphans = [False] * len(span_ids)
    for i, parent_id in enumerate(parent_ids):
        if not parent_id or parent_id == _ZERO_SPAN_ID:
            continue
        parent = by_id.get(parent_id)
        if parent is not None and parent != i:
            named[i] = parent
        if i in orphan_set:
            orphans[i] = True
        elif parent is not None:
            parents[i] = parent
    trace.parents = parents
    trace.named_parents = named
    trace.orphans = orphans
    return trace
