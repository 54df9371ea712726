"""HyperLogLog: accuracy, storage and merging."""

from __future__ import annotations

import zlib

import pytest

from cvtrace.demo.hyperloglog import HyperLogLog


def test_estimate_within_two_percent_at_100k_distinct_visitors() -> None:
    sketch = HyperLogLog()
    sketch.update(f"visitor:{i}" for i in range(100_000))
    assert sketch.estimate() == pytest.approx(100_000, rel=0.02)


def test_repeat_visits_do_not_count() -> None:
    sketch = HyperLogLog()
    for _ in range(5):
        sketch.update(f"visitor:{i}" for i in range(1000))
    assert sketch.estimate() == pytest.approx(1000, rel=0.02)
    assert sketch.add("visitor:1") is False


def test_small_counts_are_nearly_exact() -> None:
    sketch = HyperLogLog()
    assert len(sketch) == 0
    sketch.update(["alice", "bob", "carol"])
    assert len(sketch) == 3


def test_registers_survive_storage_compactly() -> None:
    sketch = HyperLogLog()
    sketch.update(f"v{i}" for i in range(50))
    data = sketch.to_bytes()
    assert len(data) < 1000  # mostly-zero registers compress well
    loaded = HyperLogLog.from_bytes(data)
    assert loaded.registers == sketch.registers
    assert HyperLogLog.from_bytes(None).estimate() == 0


def test_merge_counts_the_union() -> None:
    left, right = HyperLogLog(), HyperLogLog()
    left.update(f"v{i}" for i in range(0, 6000))
    right.update(f"v{i}" for i in range(4000, 10000))
    left.merge(right)
    assert left.estimate() == pytest.approx(10_000, rel=0.03)
    with pytest.raises(ValueError, match="cannot merge precision 10 into precision 14"):
        left.merge(HyperLogLog(10))


def test_bad_precision_and_corrupt_data_are_refused() -> None:
    with pytest.raises(ValueError, match="between 4 and 18"):
        HyperLogLog(20)
    with pytest.raises(ValueError, match="expected 16384"):
        HyperLogLog.from_bytes(bytes([14]) + zlib.compress(b"\0" * 10))
