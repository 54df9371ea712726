"""Figure functions, called without a server."""

from __future__ import annotations

import base64
import json
from array import array
from typing import Any

import plotly.graph_objects as go
import pytest

from cvtrace.store import SpanStore, StoredSpan, TraceQuery
from cvtrace.viewer.figures import (
    FLAG_COLLAPSED,
    FLAG_ERROR,
    FLAG_ORPHAN,
    FLAG_SKEWED,
    attribute_notes,
    durations_figure,
    format_duration_ns,
    waterfall_data,
    waterfall_figure,
)
from cvtrace.viewer.tracetree import tree_rows
from tests.viewer.support import T0_NS, SpanSpec, make_request, new_trace_id, simple_trace


def stored(store: SpanStore, specs: list[SpanSpec]) -> list[StoredSpan]:
    store.write_request(make_request(specs))
    return store.get_trace(specs[0].trace_id)


def markers(figure: object) -> object:
    (trace,) = [t for t in figure.data if t.meta == "spans"]  # type: ignore[attr-defined]
    return trace


class TestWaterfall:
    def test_rows_in_tree_order_with_indent(self, store: SpanStore) -> None:
        trace_id = new_trace_id()
        root = SpanSpec("root", trace_id, duration_ns=10_000_000, service="a")
        b = SpanSpec("b", trace_id, parent_span_id=root.span_id, start_ns=T0_NS + 5, service="b")
        a = SpanSpec(
            "a",
            trace_id,
            parent_span_id=root.span_id,
            start_ns=T0_NS + 1,
            service="a",
            duration_ns=5_000_000,
        )
        a1 = SpanSpec("a1", trace_id, parent_span_id=a.span_id, start_ns=T0_NS + 2, service="b")
        spans = stored(store, [b, a1, root, a])
        figure = waterfall_figure(spans)
        points = markers(figure)
        assert list(points.customdata) == [s.span_id.hex() for s in (root, a, a1, b)]  # type: ignore[attr-defined]
        labels = list(figure.layout.yaxis.ticktext)
        assert [label.strip("\u2002") for label in labels] == ["root", "a", "a1", "b"]
        # labels are right-aligned: depth shows as less padding on the right
        assert labels[0].endswith("\u2002" * 4)
        assert labels[1].endswith("\u2002" * 2)
        assert not labels[2].endswith("\u2002")
        # one line trace per service plus the markers: not one trace per span
        assert len(figure.data) == 3
        assert {t.name for t in figure.data if t.mode == "lines"} == {"a", "b"}

    def test_bar_spans_start_to_end_in_ms(self, store: SpanStore) -> None:
        specs = simple_trace(children=1)
        figure = waterfall_figure(stored(store, specs))
        lines = figure.data[0]
        assert list(lines.x) == [0.0, 10.0, None, 1.0, 2.0, None]
        assert list(lines.y) == [0, 0, None, 1, 1, None]

    def test_errors_marked(self, store: SpanStore) -> None:
        specs = simple_trace(children=1, error=True)
        figure = waterfall_figure(stored(store, specs))
        assert any(t.name == "error" for t in figure.data)
        assert list(markers(figure).marker.symbol) == ["x", "circle"]  # type: ignore[attr-defined]
        assert "<b>error</b>" in markers(figure).hovertext[0]  # type: ignore[attr-defined]

    def test_hostile_names_are_escaped(self, store: SpanStore) -> None:
        trace_id = new_trace_id()
        hostile = '<script>alert("x")</script><a href="javascript:x">link</a>'
        spans = stored(
            store,
            [SpanSpec(hostile, trace_id, service="<b>svc</b>", attrs={"http.route": "<i>r</i>"})],
        )
        figure = waterfall_figure(spans)
        text = figure.to_json()
        assert "<script>" not in text
        assert "<a href" not in text
        assert "<i>r" not in text
        assert "&lt;script&gt;" in figure.layout.yaxis.ticktext[0]
        assert "&lt;b&gt;svc&lt;/b&gt;" in markers(figure).hovertext[0]  # type: ignore[attr-defined]

    def test_orphans_and_skew_kept_and_marked(self, store: SpanStore) -> None:
        trace_id = new_trace_id()
        root = SpanSpec("root", trace_id, duration_ns=1000)
        spans = stored(
            store,
            [
                root,
                SpanSpec("lost", trace_id, parent_span_id=b"\x07" * 8, start_ns=T0_NS + 1),
                SpanSpec("early", trace_id, parent_span_id=root.span_id, start_ns=T0_NS - 100),
            ],
        )
        figure = waterfall_figure(spans)
        labels = list(figure.layout.yaxis.ticktext)
        assert len(labels) == 3
        assert any("lost" in label and "⚠" in label for label in labels)
        assert any("early" in label and "⏱" in label for label in labels)

    def test_parent_loop_is_shown_not_dropped(self, store: SpanStore) -> None:
        trace_id = new_trace_id()
        a = SpanSpec("a", trace_id)
        b = SpanSpec("b", trace_id, parent_span_id=a.span_id, start_ns=T0_NS + 1)
        a.parent_span_id = b.span_id
        rows = tree_rows(stored(store, [a, b]))
        assert [r.stored.span.name for r in rows] == ["a", "b"]
        assert rows[0].orphan

    def test_collapse_hides_descendants(self, store: SpanStore) -> None:
        specs = simple_trace(children=3)
        spans = stored(store, specs)
        figure = waterfall_figure(spans, collapsed=[specs[0].span_id])
        assert list(markers(figure).customdata) == [specs[0].span_id.hex()]  # type: ignore[attr-defined]
        assert "▸3" in figure.layout.yaxis.ticktext[0]

    def test_focus_scrolls_to_span(self, store: SpanStore) -> None:
        specs = simple_trace(children=200)
        spans = stored(store, specs)
        figure = waterfall_figure(spans, focus_span_id=specs[150].span_id)
        low, high = sorted(figure.layout.yaxis.range)
        assert low <= 149 <= high  # row of the 150th child (row 0 is the root)

    def test_big_trace_stays_a_few_traces(self, store: SpanStore) -> None:
        trace_id = new_trace_id()
        root = SpanSpec("root", trace_id, duration_ns=10**9)
        specs = [root] + [
            SpanSpec(
                f"op {i % 50}",
                trace_id,
                parent_span_id=root.span_id,
                start_ns=T0_NS + i * 1000,
                service=f"s{i % 5}",
            )
            for i in range(20_000)
        ]
        figure = waterfall_figure(stored(store, specs))
        assert len(figure.data) == 7  # six services and the markers
        assert len(markers(figure).customdata) == 20_001  # type: ignore[attr-defined]


def column(data: dict[str, Any], name: str) -> list[float] | list[int]:
    """Decode one of waterfall_data's base64 typed-array columns."""
    spec = data[name]
    code = {"f8": "d", "u1": "B", "u2": "H", "u4": "I"}[spec["dtype"]]
    return array(code, base64.b64decode(spec["bdata"])).tolist()


class TestWaterfallData:
    def test_rows_in_tree_order(self, store: SpanStore) -> None:
        trace_id = new_trace_id()
        root = SpanSpec("root", trace_id, duration_ns=10_000_000, service="a")
        b = SpanSpec("b", trace_id, parent_span_id=root.span_id, start_ns=T0_NS + 5, service="b")
        a = SpanSpec("a", trace_id, parent_span_id=root.span_id, start_ns=T0_NS + 1, service="a")
        a1 = SpanSpec("a1", trace_id, parent_span_id=a.span_id, start_ns=T0_NS + 2, service="b")
        data = waterfall_data(stored(store, [b, a1, root, a]))
        assert data["rowCount"] == 4
        assert data["ids"] == "".join(s.span_id.hex() for s in (root, a, a1, b))
        assert [data["names"][i] for i in column(data, "name")] == ["root", "a", "a1", "b"]
        assert column(data, "depth") == [0, 1, 2, 1]
        assert [data["services"][i] for i in column(data, "service")] == ["a", "a", "b", "b"]
        assert data["colors"] == ["#4C78A8", "#F58518"]
        assert data["focusRow"] is None

    def test_start_and_end_in_ms(self, store: SpanStore) -> None:
        data = waterfall_data(stored(store, simple_trace(children=1)))
        assert column(data, "start") == [0.0, 1.0]
        assert column(data, "end") == [10.0, 2.0]

    def test_flags_children_and_notes(self, store: SpanStore) -> None:
        trace_id = new_trace_id()
        root = SpanSpec("root", trace_id, duration_ns=10**9, error=True)
        kid = SpanSpec("kid", trace_id, parent_span_id=root.span_id, start_ns=T0_NS + 1)
        spans = stored(
            store,
            [
                root,
                kid,
                SpanSpec("grandkid", trace_id, parent_span_id=kid.span_id, start_ns=T0_NS + 2),
                SpanSpec("lost", trace_id, parent_span_id=b"\x07" * 8, start_ns=T0_NS + 1),
                SpanSpec(
                    "early",
                    trace_id,
                    parent_span_id=root.span_id,
                    start_ns=T0_NS - 100,
                    attrs={"http.route": "/x", "other": "not shown"},
                ),
            ],
        )
        data = waterfall_data(spans, collapsed=[kid.span_id], focus_span_id=kid.span_id)
        names = [data["names"][i] for i in column(data, "name")]
        assert names == ["root", "early", "kid", "lost"]  # grandkid hidden
        flags = dict(zip(names, column(data, "flags"), strict=True))
        assert flags == {
            "root": FLAG_ERROR,
            "early": FLAG_SKEWED,
            "kid": FLAG_COLLAPSED,
            "lost": FLAG_ORPHAN,
        }
        assert data["children"] == {2: 1}
        assert data["focusRow"] == 2
        notes = [data["notes"][i] for i in column(data, "note")]
        assert notes[0].startswith("<b>error</b>")
        assert notes[1:] == ["", "", ""]
        # key attributes, for the rows asked for (only those that have any)
        rows = tree_rows(spans, [kid.span_id])
        assert attribute_notes(rows, 0, 4) == {1: "http.route: /x"}
        assert attribute_notes(rows, 2, 100) == {}

    def test_hostile_strings_are_escaped(self, store: SpanStore) -> None:
        trace_id = new_trace_id()
        hostile = '<script>alert("x")</script><a href="javascript:x">link</a>'
        spans = stored(
            store,
            [SpanSpec(hostile, trace_id, service="<b>svc</b>", attrs={"http.route": "<i>r</i>"})],
        )
        text = json.dumps(waterfall_data(spans)) + json.dumps(
            attribute_notes(tree_rows(spans), 0, 1)
        )
        assert "&lt;i&gt;r" in text
        assert "<script>" not in text
        assert "<a href" not in text
        assert "<i>r" not in text
        assert "<b>svc" not in text
        assert "&lt;script&gt;" in text

    def test_big_trace_is_compact(self, store: SpanStore) -> None:
        trace_id = new_trace_id()
        root = SpanSpec("root", trace_id, duration_ns=10**9)
        specs = [root] + [
            SpanSpec(
                f"op {i % 50}",
                trace_id,
                parent_span_id=root.span_id,
                start_ns=T0_NS + i * 1000,
                service=f"s{i % 5}",
                attrs={"db.system.name": "sqlite", "item": i},
            )
            for i in range(20_000)
        ]
        text = json.dumps(waterfall_data(stored(store, specs)))
        # strings once each; numbers as typed arrays: about 55 bytes a span
        assert len(text) < 60 * 20_001

    def test_empty(self) -> None:
        assert waterfall_data([])["rowCount"] == 0


class TestDurations:
    def test_points_link_to_traces(self, store: SpanStore) -> None:
        for i in range(3):
            store.write_request(
                make_request(simple_trace(start_ns=T0_NS + i, root_name=f"<i>{i}</i>"))
            )
        summaries = store.search(TraceQuery())
        figure = durations_figure(summaries)
        (points,) = figure.data
        assert list(points.customdata) == [s.trace_id.hex() for s in summaries]
        assert list(points.y) == [10.0, 10.0, 10.0]
        assert all("&lt;i&gt;" in h for h in points.hovertext)

    def test_empty(self) -> None:
        assert durations_figure([]).data == ()


@pytest.mark.parametrize(
    ("ns", "text"), [(850_000, "850µs"), (12_300_000, "12.3ms"), (4_560_000_000, "4.56s")]
)
def test_format_duration(ns: int, text: str) -> None:
    assert format_duration_ns(ns) == text


def test_waterfall_spec_is_valid_plotly(store: SpanStore) -> None:
    """The figure is built without plotly's validation (for speed); check it here."""
    trace_id = new_trace_id()
    root = SpanSpec("root", trace_id, duration_ns=1000, error=True)
    spans = stored(
        store,
        [root, SpanSpec("lost", trace_id, parent_span_id=b"\x07" * 8, start_ns=T0_NS - 5)],
    )
    figure = waterfall_figure(spans, focus_span_id=root.span_id)
    go.Figure(figure.to_dict())  # raises ValueError on any invalid property
    go.Figure(waterfall_figure([]).to_dict())
