"""The search planner: a pure function of a query, its lookups and table sizes (no SQLite)."""

from __future__ import annotations

import pytest

from cvtrace.store.batches import duration_bucket
from cvtrace.store.search import (
    MAX_BUCKET,
    MAX_LIMIT,
    Driver,
    DurationRange,
    Index,
    Lookups,
    SearchPlan,
    TraceQuery,
    plan_search,
)

SERVICE = Index("trace_services", "service_id", 7)
OPERATION = Index("trace_operations", "operation_id", 11)
TAG = Index("trace_tags", "tag_id", 13)


def not_counted(driver: Driver) -> int:
    raise AssertionError(f"the planner counted {driver} with nothing to choose between")


def placeholders(plan: SearchPlan) -> int:
    """The parameters the plan's SQL takes (a bucket walk adds the bucket)."""
    return len(plan.params) + isinstance(plan.driver, DurationRange)


def test_no_filter_walks_every_trace_newest_first() -> None:
    plan = plan_search(TraceQuery(), Lookups(), not_counted)
    assert plan.driver is None
    assert plan.sql.endswith("FROM traces t ORDER BY t.key DESC LIMIT ?")
    assert plan.params == (20,)


@pytest.mark.parametrize(
    ("lookups", "driver"),
    [
        (Lookups(service_id=7), SERVICE),
        (Lookups(tag_ids=(13,)), TAG),
    ],
)
def test_a_single_index_drives_without_counting(lookups: Lookups, driver: Index) -> None:
    plan = plan_search(TraceQuery(errors_only=True), lookups, not_counted)
    assert plan.driver == driver
    assert f"FROM {driver.table} d CROSS JOIN traces t" in plan.sql
    assert "t.error_count > 0" in plan.sql
    assert plan.params == (driver.ident, 20)
    assert plan.sql.count("?") == placeholders(plan)


def test_a_minimum_duration_alone_walks_its_buckets_without_counting() -> None:
    plan = plan_search(TraceQuery(min_duration_ns=30_000_000), Lookups(), not_counted)
    assert plan.driver == DurationRange(duration_bucket(30_000_000), MAX_BUCKET)
    assert "INDEXED BY traces_by_duration WHERE t.duration_bucket = ?" in plan.sql
    assert plan.params == (30_000_000, 20)  # after the bucket: the exact minimum, the limit
    assert plan.sql.count("?") == placeholders(plan)


def test_a_maximum_duration_bounds_the_buckets() -> None:
    query = TraceQuery(min_duration_ns=1_000, max_duration_ns=2_000_000)
    plan = plan_search(query, Lookups(), not_counted)
    assert plan.driver == DurationRange(duration_bucket(1_000), duration_bucket(2_000_000))


@pytest.mark.parametrize(
    ("sizes", "driver"),
    [
        ({SERVICE: 5_000, TAG: 40}, TAG),
        ({SERVICE: 40, TAG: 5_000}, SERVICE),
        ({SERVICE: 40, TAG: 40}, SERVICE),  # a tie: the first one asked for
    ],
)
def test_the_smallest_index_drives_the_others_filter(
    sizes: dict[Driver, int], driver: Index
) -> None:
    asked: list[Driver] = []

    def count(candidate: Driver) -> int:
        asked.append(candidate)
        return sizes[candidate]

    plan = plan_search(TraceQuery(limit=5), Lookups(service_id=7, tag_ids=(13,)), count)
    assert sorted(asked) == sorted(sizes)
    assert plan.driver == driver
    (other,) = set(sizes) - {driver}
    assert isinstance(other, Index)
    assert f"EXISTS (SELECT 1 FROM {other.table} WHERE {other.column} = ?" in plan.sql
    assert plan.params == (driver.ident, other.ident, 5)
    assert plan.sql.count("?") == placeholders(plan)


@pytest.mark.parametrize(
    ("duration_size", "walks_buckets"),
    [(10, True), (1_000, False), (100, False)],  # a tie goes to the index
)
def test_durations_drive_only_when_strictly_smaller(
    duration_size: int, walks_buckets: bool
) -> None:
    query = TraceQuery(min_duration_ns=30_000_000)

    def count(candidate: Driver) -> int:
        return duration_size if isinstance(candidate, DurationRange) else 100

    plan = plan_search(query, Lookups(service_id=7), count)
    if walks_buckets:
        assert isinstance(plan.driver, DurationRange)
        assert "EXISTS (SELECT 1 FROM trace_services WHERE service_id = ?" in plan.sql
        assert plan.params == (30_000_000, 7, 20)
    else:
        assert plan.driver == SERVICE
        assert "INDEXED BY" not in plan.sql
        assert plan.params == (7, 30_000_000, 20)
    assert plan.sql.count("?") == placeholders(plan)


def test_an_operation_in_several_services_is_filtered_by_name() -> None:
    plan = plan_search(TraceQuery(operation="GET /"), Lookups(), not_counted)
    assert plan.driver is None
    assert "o.name = ?" in plan.sql
    assert plan.params == ("GET /", 20)


def test_an_operation_of_one_service_drives_by_its_id() -> None:
    lookups = Lookups(service_id=7, operation_id=11)

    def ident_as_size(driver: Driver) -> int:
        assert isinstance(driver, Index)  # no duration in the query: only indexes are asked
        return driver.ident

    plan = plan_search(TraceQuery(service="a", operation="GET /"), lookups, ident_as_size)
    assert plan.driver == SERVICE  # the smaller count here
    assert "o.name" not in plan.sql
    assert "EXISTS (SELECT 1 FROM trace_operations WHERE operation_id = ?" in plan.sql


def test_unindexed_tags_leave_the_limit_to_the_span_check() -> None:
    lookups = Lookups(service_id=7, unindexed_tags={"user.id": "42"})
    plan = plan_search(TraceQuery(limit=3), lookups, not_counted)
    assert "LIMIT" not in plan.sql
    assert plan.params == (7,)
    assert plan.limit == 3
    assert plan.unindexed_tags == {"user.id": "42"}


def test_time_window_and_durations_are_filters_on_the_trace() -> None:
    query = TraceQuery(
        max_duration_ns=9, start_min_ns=100, start_max_ns=200, errors_only=True, limit=1
    )
    plan = plan_search(query, Lookups(), not_counted)
    assert plan.driver is None  # a maximum alone bounds no bucket walk
    assert plan.params == (9, 100, 200, 1)
    for condition in ("t.end_ns - t.start_ns <= ?", "t.start_ns >= ?", "t.start_ns <= ?"):
        assert condition in plan.sql


@pytest.mark.parametrize(("asked", "limit"), [(0, 1), (-5, 1), (7, 7), (10**9, MAX_LIMIT)])
def test_limit_is_clamped(asked: int, limit: int) -> None:
    assert plan_search(TraceQuery(limit=asked), Lookups(), not_counted).limit == limit
