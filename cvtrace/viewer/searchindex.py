"""What the trace page's in-trace search looks through besides its rows: attributes.

The waterfall's rows (:func:`cvtrace.viewer.figures.waterfall_data`) carry each span's
name, service, status and times, but no attributes. :func:`search_index` adds them,
once per trace, in the waterfall's row order: every distinct ``key`` / ``value`` pair
once in a table (lowercased, as ``key + "\\0" + value``: a search text cannot hold
``\\0``, so it matches inside the key or inside the value, never across), and per row
the pairs it has. The page tests each distinct pair once per keystroke and then walks
the rows' lists of pair numbers (typed arrays), so a keystroke over 100,000 spans costs
a few milliseconds whatever their attributes (BENCHMARKS.md section 11).

Searched: the span's attributes, its resource's (one list per resource, shared by its
spans), its event names and its status message (as pairs with an empty key). Values
longer than :data:`MAX_VALUE` are searched in their first :data:`MAX_VALUE` characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cvtrace.viewer.figures import typed_array
from cvtrace.viewer.jaeger import any_value_python
from cvtrace.viewer.tracetree import Row

__all__ = ["SEARCH_INDEX_FORMAT", "search_index"]

SEARCH_INDEX_FORMAT = 1
MAX_VALUE = 2000
"""Characters of an attribute value that are searched."""


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def search_index(rows: Sequence[Row]) -> dict[str, Any]:
    """Return the attributes of a trace's rows for the page's in-trace search.

    Args:
        rows: The trace's tree rows, in the waterfall's order.

    Returns:
        ``rowCount``; ``pairs`` (distinct ``key\\0value`` texts, lowercased);
        ``first`` (``rowCount + 1`` offsets, u4) and ``pairIds`` (u4): row ``r``'s
        pairs are ``pairIds[first[r]:first[r + 1]]``; ``resource`` (u4, a row's
        index into ``resources``) and ``resources`` (lists of pair numbers);
        ``status`` (u1, OTLP's code: 0 unset, 1 ok, 2 error).
    """
    pairs: dict[str, int] = {}
    pair_ids: list[int] = []
    first = [0]
    resource: list[int] = []
    status: list[int] = []
    resources: list[list[int]] = []
    resource_of: dict[int, int] = {}

    def pair(key: str, value: str) -> int:
        text = (key + "\0" + value[:MAX_VALUE]).lower()
        found = pairs.get(text)
        if found is None:
            found = pairs[text] = len(pairs)
        return found

    for row in rows:
        stored = row.stored
        at = resource_of.get(id(stored.resource))
        if at is None:
            at = resource_of[id(stored.resource)] = len(resources)
            resources.append(
                [
                    pair(kv.key, _text(any_value_python(kv.value)))
                    for kv in stored.resource.attributes
                ]
            )
        resource.append(at)
        span = stored.span
        status.append(max(0, min(span.status.code, 255)))
        for kv in span.attributes:
            pair_ids.append(pair(kv.key, _text(any_value_python(kv.value))))
        for event in span.events:
            pair_ids.append(pair("", event.name))
        if span.status.message:
            pair_ids.append(pair("", span.status.message))
        first.append(len(pair_ids))
    return {
        "format": SEARCH_INDEX_FORMAT,
        "rowCount": len(rows),
        "pairs": list(pairs),
        "first": typed_array(first, "u4"),
        "pairIds": typed_array(pair_ids, "u4"),
        "resource": typed_array(resource, "u4"),
        "resources": resources,
        "status": typed_array(status, "u1"),
    }
