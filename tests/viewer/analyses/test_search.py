"""In-trace search: name, service, attribute keys and values, status, duration."""

from __future__ import annotations

from cvtrace.viewer.analyses.search import SpanFilter, find_spans, span_texts
from tests.viewer.analyses.build import MS, TraceBuilder


def names(t: TraceBuilder, what: SpanFilter) -> list[str]:
    trace = t.trace()
    return [trace.names[i] for i in find_spans(trace, span_texts(trace, t.spans), what)]


def sample() -> TraceBuilder:
    t = TraceBuilder()
    root = t.add("GET /circuits", 0, 100, service="web", attrs={"http.route": "/circuits"})
    t.add("SELECT circuits", 5, 6, root, service="db", attrs={"db.query.text": "SELECT * FROM x"})
    t.add("SELECT users", 1, 40, root, service="db", error=True, attrs={"user.id": 42})
    t.add("render", 50, 51, root, service="preview")
    return t


def test_text_matches_names_services_keys_and_values_in_start_order() -> None:
    t = sample()
    assert names(t, SpanFilter(text="select")) == ["SELECT users", "SELECT circuits"]
    assert names(t, SpanFilter(text="PREVIEW")) == ["render"]
    assert names(t, SpanFilter(text="db.query")) == ["SELECT circuits"]
    assert names(t, SpanFilter(text="42")) == ["SELECT users"]
    assert names(t, SpanFilter(text="host.name")) == [
        "GET /circuits",
        "SELECT users",
        "SELECT circuits",
        "render",
    ]  # resource attributes too
    assert names(t, SpanFilter(text="nothing like it")) == []


def test_filters_combine() -> None:
    t = sample()
    assert names(t, SpanFilter(service="db", status="error")) == ["SELECT users"]
    assert names(t, SpanFilter(text="select", min_duration_ns=10 * MS)) == ["SELECT users"]
    assert names(t, SpanFilter(status="unset", service="preview")) == ["render"]
