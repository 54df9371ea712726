"""Entry spans and cross-service calls, and the service map made of them."""

from __future__ import annotations

from cvtrace.viewer.analyses.calls import trace_calls
from cvtrace.viewer.analyses.dependencies import Link, dependency_links
from tests.viewer.analyses.build import CLIENT, SERVER, TraceBuilder, ns, sid


def demo_like() -> TraceBuilder:
    """web -> api (twice, one fails) -> db; an internal web span; an orphan in api."""
    t = TraceBuilder()
    root = t.add("GET /", 0, 100, service="web", kind=SERVER)
    t.add("render", 1, 2, root, service="web")
    for i in range(2):
        call = t.add("GET /api", 10 + 20 * i, 20 + 20 * i, root, service="web", kind=CLIENT)
        api = t.add(
            "GET /api", 11 + 20 * i, 19 + 20 * i, call, service="api", kind=SERVER, error=i == 1
        )
        t.add("SELECT", 12 + 20 * i, 13 + 20 * i, api, service="db", kind=CLIENT)
    t.add("lost", 50, 60, sid(99), service="api", kind=SERVER)
    return t


def test_calls_are_entry_spans_and_cross_service_children() -> None:
    calls = trace_calls(demo_like().trace())
    assert [(c.service, c.operation, c.entry, c.parent_service) for c in calls] == [
        ("web", "GET /", True, None),
        ("api", "GET /api", True, "web"),
        ("db", "SELECT", False, "api"),  # not an entry, but called across services
        ("api", "GET /api", True, "web"),
        ("db", "SELECT", False, "api"),
        ("api", "lost", True, None),  # an orphan: entry, but no known caller
    ]
    assert calls[3].error
    assert not calls[1].error


def test_links_count_calls_and_errors() -> None:
    links = dependency_links(trace_calls(demo_like().trace()))
    assert links == [Link("api", "db", 2, 0), Link("web", "api", 2, 1)]


def test_the_window_is_on_the_calls_start() -> None:
    calls = trace_calls(demo_like().trace())
    assert dependency_links(calls, ns(20), ns(40)) == [
        Link("api", "db", 1, 0),
        Link("web", "api", 1, 1),
    ]
    assert dependency_links(calls, ns(0), ns(11)) == []  # the first call starts at 11


def test_a_link_is_not_a_call() -> None:
    t = TraceBuilder()
    root = t.add("job", 0, 10, service="worker")
    t.add("linked", 2, 3, service="web", links=[root])
    assert dependency_links(trace_calls(t.trace())) == []


def test_same_service_children_are_not_calls() -> None:
    t = TraceBuilder()
    root = t.add("GET /", 0, 10, service="web", kind=SERVER)
    t.add("nested server", 1, 2, root, service="web", kind=SERVER)  # an entry, not a call
    calls = trace_calls(t.trace())
    assert [c.parent_service for c in calls] == [None, None]
    assert dependency_links(calls) == []
