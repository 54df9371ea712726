"""Benchmark 3: spans lost at the highest rate one process serves, cvtrace vs vanilla.

Each variant's worker (:mod:`bench.worker`) requests the circuit view in a tight
loop through Flask's test client for a fixed time, with the default batch settings
(queue 2048, batch 512, 5 s delay), then shuts tracing down as at a clean exit.
Created = spans ended during the burst (counted in-process); arrived = spans the
receiver decoded (or rows in the ``local`` store). A fresh worker per variant and
round; variants alternate within a round.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from bench.common import Receiver, Worker, log, spread, table, verdict
from bench.variants import CIRCUIT_ID, private_db_copy, variant_env

VARIANTS = ("cvtrace-otlp", "cvtrace-local", "vanilla")
VIEW = f"/circuits/{CIRCUIT_ID}"


def _local_spans(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'span_count'").fetchone()
    return int(row[0]) if row else 0


def arrived(receiver: Receiver, name: str, local_db: Path) -> int:
    """Spans that reached the destination of variant run ``name``."""
    return _local_spans(local_db) if name.startswith("cvtrace-local") else receiver.spans(name)


def run(quick: bool = False) -> tuple[dict[str, Any], str]:
    """Measure; return the results and their Markdown."""
    rounds, seconds = (1, 1.0) if quick else (3, 8.0)
    samples = _measure(rounds, seconds, "run_for")
    storm = _measure(1 if quick else 2, 1.0 if quick else 5.0, "span_storm")
    result = {"config": {"rounds": rounds, "seconds": seconds}, "samples": samples, "storm": storm}
    return result, markdown(result)


def _measure(rounds: int, seconds: float, command: str) -> dict[str, list[dict[str, Any]]]:
    samples: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-loss-") as tmp, Receiver() as receiver:
        for r in range(rounds):
            order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
            for variant in order:
                local_db = Path(tmp) / f"{variant}-{r}-spans.sqlite3"
                name = f"{variant}-{r}"
                worker = Worker(
                    variant,
                    private_db_copy(Path(tmp), name),
                    variant_env(variant, receiver.endpoint(name), local_db),
                )
                try:
                    worker.wait_ready()
                    before = (
                        _local_spans(local_db)
                        if variant == "cvtrace-local"
                        else receiver.spans(name)
                    )
                    burst = worker.call(cmd=command, path=VIEW, seconds=seconds)
                    totals = worker.stop()
                finally:
                    worker.kill()
                after = (
                    _local_spans(local_db) if variant == "cvtrace-local" else receiver.spans(name)
                )
                created, arrived = burst["spans"], after - before
                samples[variant].append(
                    {
                        "requests": burst["n"],
                        "requests_per_s": burst["n"] / (burst["loop_ns"] / 1e9),
                        "created": created,
                        "arrived": arrived,
                        "lost_fraction": (created - arrived) / created if created else 0.0,
                        "dropped_reported": totals["dropped"],
                        "shutdown_ms": totals["shutdown_ns"] / 1e6,
                    }
                )
                log(f"loss ({command}): {variant} round {r + 1}: {created} made, {arrived} arrived")
    return samples


def _rows(samples: dict[str, list[dict[str, Any]]]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for variant, items in samples.items():
        rows.append(
            (
                variant,
                spread(s["requests_per_s"] for s in items).fmt(0),
                sum(s["created"] for s in items),
                sum(s["arrived"] for s in items),
                spread(100 * s["lost_fraction"] for s in items).fmt(1, "%"),
                sum(s["dropped_reported"] for s in items),
                spread(s["shutdown_ms"] for s in items).fmt(0),
            )
        )
    return rows


def markdown(result: dict[str, Any]) -> str:
    """The tables of BENCHMARKS.md section 3."""
    cfg = result["config"]
    headers = [
        "variant",
        "requests/s",
        "spans created",
        "arrived",
        "lost",
        "drops counted by cvtrace",
        "shutdown flush ms",
    ]
    worst = max(s["lost_fraction"] for s in result["samples"]["cvtrace-otlp"])
    worst_local = max(s["lost_fraction"] for s in result["samples"]["cvtrace-local"])
    return "\n".join(
        [
            f"### 3. Span loss at full in-process rate ({cfg['rounds']} rounds of "
            f"{cfg['seconds']:.0f} s per variant, default batch settings)",
            "",
            "Circuit view in a tight loop (Flask test client), then a clean shutdown (flush). "
            "Lost = created - arrived; per-round median [min..max].",
            "",
            table(headers, _rows(result["samples"])),
            "",
            "Export pipeline capacity: the same, but spans made straight from the tracer in "
            "a tight loop, no app (a server span and three query spans per iteration, with "
            "attributes): the highest rate a process can make spans. Not a target; it shows "
            "where each pipeline starts to drop.",
            "",
            table(["variant", "iterations/s", *headers[2:]], _rows(result["storm"])),
            "",
            table(
                ["target", "measured (worst round)", "verdict"],
                [
                    (
                        "cvtrace spans lost at full in-process rate: 0",
                        f"otlp {100 * worst:.1f}%, local {100 * worst_local:.1f}%",
                        verdict(worst == 0 and worst_local == 0),
                    )
                ],
            ),
        ]
    )
