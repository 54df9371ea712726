"""The service map: calls between services, counted over a time window.

An edge ``parent -> child`` counts the spans of service ``child`` whose parent span
is in service ``parent`` (see :mod:`.calls`), and how many of them ended in error
(the callee's status: the call failed as the called service saw it). Jaeger's
``/api/dependencies`` answers the same ``parent``, ``child``, ``callCount``;
``errorCount`` is cvtrace's addition.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from cvtrace.viewer.analyses.calls import Call

__all__ = ["Link", "dependency_links"]


class Link(NamedTuple):
    """Calls from one service to another."""

    parent: str
    child: str
    call_count: int
    error_count: int


def dependency_links(
    calls: Iterable[Call], start_ns: int | None = None, end_ns: int | None = None
) -> list[Link]:
    """Return the calls between services among ``calls``, most called first.

    Only calls that start in ``[start_ns, end_ns)`` count, when given.
    """
    counts: dict[tuple[str, str], list[int]] = {}
    for call in calls:
        if call.parent_service is None:
            continue
        if start_ns is not None and call.start_ns < start_ns:
            continue
        if end_ns is not None and call.start_ns >= end_ns:
            continue
        pair = counts.setdefault((call.parent_service, call.service), [0, 0])
        pair[0] += 1
        if call.error:
            pair[1] += 1
    links = [Link(p, c, n, e) for (p, c), (n, e) in counts.items()]
    links.sort(key=lambda link: (-link.call_count, link.parent, link.child))
    return links
