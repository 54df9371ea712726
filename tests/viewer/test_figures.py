"""The pages' data, built by pure functions without a server."""

from __future__ import annotations

import base64
import json
from array import array
from typing import Any

import pytest

from cvtrace.store import SpanStore, StoredSpan, TraceQuery
from cvtrace.viewer.figures import (
    ERROR_COLOR,
    FLAG_ERROR,
    FLAG_ORPHAN,
    FLAG_SKEWED,
    MIN_TIME_PAD_MS,
    attribute_notes,
    contrast_ratio,
    durations_data,
    format_duration_ns,
    service_color,
    service_colors,
    waterfall_data,
)
from cvtrace.viewer.tracetree import tree_rows
from tests.viewer.support import T0_NS, SpanSpec, make_request, new_trace_id, simple_trace

LIGHT_BACKGROUND = "#FFFFFF"
DARK_BACKGROUND = "#15191E"  # --bg of the dark theme (viewer.css)


def stored(store: SpanStore, specs: list[SpanSpec]) -> list[StoredSpan]:
    store.write_request(make_request(specs))
    return store.get_trace(specs[0].trace_id)


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
        # the page finds each subtree from the depths: the rows after a row that are deeper
        assert column(data, "depth") == [0, 1, 2, 1]
        assert [data["services"][i] for i in column(data, "service")] == ["a", "a", "b", "b"]
        assert data["colors"] == [service_color("a"), service_color("b")]

    def test_service_order_comes_first(self, store: SpanStore) -> None:
        data = waterfall_data(stored(store, simple_trace("web")), service_order=["db", "web"])
        assert data["services"] == ["db", "web"]
        assert column(data, "service") == [1, 1, 1]

    def test_start_and_end_in_ms(self, store: SpanStore) -> None:
        data = waterfall_data(stored(store, simple_trace(children=1)))
        assert column(data, "start") == [0.0, 1.0]
        assert column(data, "end") == [10.0, 2.0]

    def test_flags_notes_and_every_span(self, store: SpanStore) -> None:
        trace_id = new_trace_id()
        root = SpanSpec("root", trace_id, duration_ns=10**9, error=True)
        kid = SpanSpec("kid", trace_id, parent_span_id=root.span_id, start_ns=T0_NS + 1)
        spans = stored(
            store,
            [
                root,
                kid,
                SpanSpec("grandkid", trace_id, parent_span_id=kid.span_id, start_ns=T0_NS + 1),
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
        data = waterfall_data(spans)
        names = [data["names"][i] for i in column(data, "name")]
        assert names == ["root", "early", "kid", "grandkid", "lost"]
        flags = dict(zip(names, column(data, "flags"), strict=True))
        assert flags == {
            "root": FLAG_ERROR,
            "early": FLAG_SKEWED,
            "kid": 0,
            "grandkid": 0,
            "lost": FLAG_ORPHAN,
        }
        notes = [data["notes"][i] for i in column(data, "note")]
        assert notes == ["boom", "", "", "", ""]  # the error's status message
        # key attributes, for the rows asked for (only those that have any)
        rows = tree_rows(spans)
        assert attribute_notes(rows, 0, 5) == {1: [["http.route", "/x"]]}
        assert attribute_notes(rows, 2, 100) == {}

    def test_events_as_columns(self, store: SpanStore) -> None:
        trace_id = new_trace_id()
        root = SpanSpec("root", trace_id, duration_ns=10_000_000)
        kid = SpanSpec(
            "kid",
            trace_id,
            parent_span_id=root.span_id,
            start_ns=T0_NS + 1_000_000,
            events=[("exception", T0_NS + 1_500_000, {}), ("retry", T0_NS + 1_800_000, {})],
        )
        root.events = [("retry", T0_NS + 500_000, {})]
        data = waterfall_data(stored(store, [root, kid]))
        assert column(data, "eventRow") == [0, 1, 1]
        assert column(data, "eventTime") == [0.5, 1.5, 1.8]
        assert [data["eventNames"][i] for i in column(data, "eventName")] == [
            "retry",
            "exception",
            "retry",
        ]

    def test_strings_sent_as_they_are(self, store: SpanStore) -> None:
        """The page sets them as text only; escaping here would show entities."""
        trace_id = new_trace_id()
        hostile = '<script>alert("x")</script><a href="javascript:x">link</a>'
        spans = stored(
            store,
            [SpanSpec(hostile, trace_id, service="<b>svc</b>", attrs={"http.route": "<i>r</i>"})],
        )
        data = waterfall_data(spans)
        assert data["names"] == [hostile]
        assert data["services"] == ["<b>svc</b>"]
        assert attribute_notes(tree_rows(spans), 0, 1) == {0: [["http.route", "<i>r</i>"]]}

    def test_long_names_are_cut(self, store: SpanStore) -> None:
        data = waterfall_data(stored(store, [SpanSpec("x" * 5000, new_trace_id())]))
        assert len(data["names"][0]) == 300
        assert data["names"][0].endswith("…")

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
        # strings once each; numbers as typed arrays: about 60 bytes a span
        assert len(text) < 60 * 20_001

    def test_empty(self) -> None:
        assert waterfall_data([])["rowCount"] == 0


class TestServiceColors:
    def test_from_the_name_alone(self) -> None:
        assert service_color("checkout") == service_color("checkout")
        # the same whatever else is on the page (it was the order of appearance)
        assert (
            service_colors(["a", "checkout"])["checkout"]
            == service_colors(["checkout"])["checkout"]
        )
        names = [f"service-{i}" for i in range(200)]
        assert len({service_color(n) for n in names}) >= 25  # hues and tiers spread

    @pytest.mark.parametrize("name", ["", "circuits", "preview", "jobs", "ünïcode", "x" * 500])
    def test_readable_on_light_and_dark(self, name: str) -> None:
        color = service_color(name)
        assert contrast_ratio(color, LIGHT_BACKGROUND) >= 3.0
        assert contrast_ratio(color, DARK_BACKGROUND) >= 3.0

    def test_every_color_readable(self) -> None:
        colors = {service_color(f"s{i}") for i in range(2000)}
        worst = min(
            min(contrast_ratio(c, LIGHT_BACKGROUND), contrast_ratio(c, DARK_BACKGROUND))
            for c in colors
        )
        assert worst >= 3.0
        assert contrast_ratio(ERROR_COLOR, LIGHT_BACKGROUND) >= 3.0
        assert contrast_ratio(ERROR_COLOR, DARK_BACKGROUND) >= 3.0

    def test_no_service_is_red(self) -> None:
        """Red is for errors."""
        for i in range(500):
            r, g, b = (int(service_color(f"s{i}")[k : k + 2], 16) for k in (1, 3, 5))
            assert not (r > 150 and g < 90 and b < 90), service_color(f"s{i}")


class TestDurations:
    def test_points_link_to_traces(self, store: SpanStore) -> None:
        for i in range(3):
            store.write_request(
                make_request(simple_trace(start_ns=T0_NS + i, root_name=f"<i>{i}</i>"))
            )
        summaries = store.search(TraceQuery())
        data = durations_data(summaries)
        assert data["traceId"] == [s.trace_id.hex() for s in summaries]
        assert data["duration"] == [10.0, 10.0, 10.0]
        assert sorted(data["name"]) == ["<i>0</i>", "<i>1</i>", "<i>2</i>"]
        assert data["color"] == [service_color("svc")] * 3
        assert data["log"] is False

    def test_one_result_gets_a_time_axis_of_seconds(self, store: SpanStore) -> None:
        store.write_request(make_request(simple_trace()))
        data = durations_data(store.search(TraceQuery()))
        low, high = data["xRange"]
        start = T0_NS / 1e6
        assert low <= start - MIN_TIME_PAD_MS
        assert high >= start + MIN_TIME_PAD_MS
        assert data["yRange"][0] == 0
        assert data["yRange"][1] > 10.0  # the point is inside the plot, not on its edge

    def test_outliers_default_to_the_log_axis(self, store: SpanStore) -> None:
        for i, duration_ms in enumerate([2, 3, 2, 4, 3, 5000]):
            specs = simple_trace(start_ns=T0_NS + i * 10**9, children=0)
            specs[0].duration_ns = duration_ms * 1_000_000
            store.write_request(make_request(specs))
        data = durations_data(store.search(TraceQuery()))
        assert data["log"] is True
        low, high = data["logRange"]
        assert low < 0.31
        assert high > 3.69

    def test_empty(self) -> None:
        assert durations_data([])["traceId"] == []


@pytest.mark.parametrize(
    ("ns", "text"), [(850_000, "850µs"), (12_300_000, "12.3ms"), (4_560_000_000, "4.56s")]
)
def test_format_duration(ns: int, text: str) -> None:
    assert format_duration_ns(ns) == text
