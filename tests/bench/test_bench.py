"""Smoke test of the benchmarks: each runs in its tiniest configuration and yields numbers.

Not a timed assertion: only that every benchmark runs end to end (workers, receiver,
gunicorn, wrk, the viewer, Chromium) and reports finite, positive measurements.
The big stores are shrunk (``BENCH_STORE_SPANS``, ``BENCH_BIG_TRACE_SIZES``) and kept
in ``tmp_path``.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

import pytest

from bench.common import Spread


@pytest.fixture(autouse=True)
def _small_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path / "bench-data"))
    monkeypatch.setenv("BENCH_STORE_SPANS", "6000")
    monkeypatch.setenv("BENCH_BIG_TRACE_SIZES", "300,1000")
    monkeypatch.setenv("BENCH_WARMUP", "5")


def run_quick(name: str) -> tuple[dict[str, Any], str]:
    module = importlib.import_module(f"bench.{name}")
    result, text = module.run(quick=True)
    assert text.startswith("### ")
    assert "| " in text
    return result, text


def positive(value: float | Spread) -> bool:
    number = value.median if isinstance(value, Spread) else value
    return math.isfinite(number) and number > 0


@pytest.mark.slow
def test_request_measures_every_variant() -> None:
    result, text = run_quick("request")
    for variant, cell in result["view"].items():
        assert positive(cell["cpu_us"]), variant
        assert positive(cell["ratio"]), variant
    assert result["view"]["cvtrace-otlp"]["spans_per_request"] > 0
    assert result["view"]["bare"]["spans_per_request"] == 0
    assert result["up"]["vanilla-excluded"]["roots_per_request"] > 0
    assert "overhead" in text
    # with no exporter, a request runs exactly bare's code: no call more, none of ours
    calls = result["calls"]
    assert calls["default /circuits/2"]["calls"] == calls["bare /circuits/2"]["calls"] > 1000
    assert calls["default /circuits/2"]["tracing_calls"] == 0
    assert 0 < calls["cvtrace-otlp /up"]["tracing_calls"] < 50  # excluded: a check, no span
    # full tracing: the request thread's calls and the export's, counted apart
    for variant in ("cvtrace-otlp", "cvtrace-local", "vanilla"):
        counted = calls[f"{variant} /circuits/2"]
        assert counted["tracing_calls"] > 0, variant
        assert counted["export_tracing_calls"] > 0, variant
    assert (
        calls["cvtrace-otlp /circuits/2"]["exported"] == calls["cvtrace-otlp /circuits/2"]["spans"]
    )


@pytest.mark.slow
def test_loss_counts_created_and_arrived_spans() -> None:
    result, _ = run_quick("loss")
    for variant, samples in result["samples"].items():
        assert samples[0]["created"] > 0, variant
        assert samples[0]["arrived"] > 0, variant
    for variant, samples in result["storm"].items():
        assert samples[0]["created"] > 0, variant


@pytest.mark.slow
def test_server_drives_gunicorn_with_wrk() -> None:
    result, _ = run_quick("server")
    for variant, samples in result["samples"].items():
        assert samples[0]["requests"] > 0, variant
        assert positive(samples[0]["p99_ms"]), variant
    assert result["arrived"]["cvtrace-otlp"] > 0


@pytest.mark.slow
def test_memory_samples_worker_rss_with_and_without_jemalloc() -> None:
    result, _ = run_quick("memory")
    for label, cell in result["cells"].items():
        assert all(mib > 10 for mib in cell["peak_mib"]), label
    assert result["cells"]["cvtrace-otlp + jemalloc"]["jemalloc_mapped"]


@pytest.mark.slow
def test_ingest_reports_spans_per_second() -> None:
    result, _ = run_quick("ingest")
    assert "OTLP/HTTP protobuf, two senders, retention off" in result["cells"]
    for label, cell in result["cells"].items():
        assert cell["spans"] > 0, label
        assert positive(cell["spans_per_s"]), label
        assert positive(cell["cpu_us_per_span"]), label


@pytest.mark.slow
def test_scale_reports_the_curve(tmp_path: Path) -> None:
    result, text = run_quick("scale")
    sizes = result["config"]["sizes"]
    assert len(sizes) == 2
    for size in sizes:
        assert all(positive(c["spans_per_s"]) for c in result["ingest"]["cells"][size])
        assert all(samples for samples in result["search"][size].values())
        assert len(result["fetch_1k_ms"][size]) == 5
        assert result["disk_bytes"][size] > 0
    assert result["retention"]["after"] <= result["retention"]["limit"]
    assert "| 15,000 |" in text
    charts = tmp_path / "bench-data" / "results-quick"
    assert (charts / "scale.html").stat().st_size > 0
    assert (charts / "scale.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_search_times_every_query() -> None:
    result, _ = run_quick("search")
    for name, samples in result["api_ms"].items():
        assert samples, name
        assert all(positive(ms) for ms in samples), name
    assert result["found"]["service"] > 0


@pytest.mark.slow
@pytest.mark.browser
def test_bigtrace_draws_in_chromium() -> None:
    result, _ = run_quick("bigtrace")
    for kind, by_size in result["loads"].items():
        for size, samples in by_size.items():
            assert positive(samples[0]["ready"]), (kind, size)
            # warm: the rows come from the browser's cache, nothing travels
            assert positive(samples[0]["figure_bytes"]) == (kind != "warm"), (kind, size)
    for size, samples in result["interactions"].items():
        sample = samples[0]
        assert all(positive(s["ms"]) for s in sample["scroll"]), size
        assert all(positive(ms) for ms in sample["jump"] + sample["details"]), size
        assert positive(sample["root_collapse"]), size
        assert positive(sample["root_expand"]), size
        assert sample["root_hidden"] == int(size) - 1, size
        assert positive(sample["heap_mb"]), size
    assert all(positive(ms) for ms in result["search_ms"]["cold"])
    assert result["page_errors"] == []


@pytest.mark.slow
@pytest.mark.browser
def test_tracesearch_times_keystrokes_in_chromium() -> None:
    result, _ = run_quick("tracesearch")
    ((size, samples),) = result["samples"].items()
    keys = samples[0]["keys"]
    assert len(keys) == sum(len(q) for q in result["config"]["queries"])
    assert all(positive(k["frame"]) for k in keys)
    # every row has the attribute "item": the last keystroke of that query matches all
    assert [k["matches"] for k in keys if k["query"] == "item"][-1] == int(size)
    assert positive(samples[0]["bytes"])
    assert result["page_errors"] == []


@pytest.mark.slow
def test_analyses_time_trace_and_store_queries() -> None:
    result, text = run_quick("analyses")
    for group in ("wall_ms", "cpu_ms"):
        for name, samples in result["pure_ms"][group].items():
            assert samples, name
            assert all(positive(ms) for ms in samples), name
    for group in ("warm_ms", "cold_ms"):
        for name, samples in result["trace"][group].items():
            assert all(positive(ms) for ms in samples), name
    for name, samples in result["store"]["ms"].items():
        assert all(positive(ms) for ms in samples), name
    # the demo-like spans call preview: the map has its edge, the metrics their series
    assert result["store"]["series"]["dependencies, whole store"] == 1
    assert result["store"]["series"]["latencies p95, whole store, by operation"] > 1
    assert "critical path" in text


def test_tracing_calls_are_classified_by_package_not_by_path() -> None:
    """A checkout in a folder named ``cvtrace`` holds the demo too: its calls are the app's."""
    import opentelemetry.trace

    import cvtrace.api
    import cvtrace.demo.app
    import cvtrace.viewer.ui
    from bench.worker import is_tracing_code

    assert is_tracing_code(cvtrace.api.__file__)
    assert is_tracing_code(str(opentelemetry.trace.__file__))
    assert not is_tracing_code(cvtrace.demo.app.__file__)
    assert not is_tracing_code(cvtrace.viewer.ui.__file__)
    assert not is_tracing_code("/home/me/cvtrace/bench/worker.py")
    assert not is_tracing_code("/usr/lib/python3/flask/app.py")


@pytest.mark.slow
def test_importing_measures_every_format() -> None:
    result, text = run_quick("importing")
    assert set(result["formats"]) == {
        "OTLP JSON lines",
        "Jaeger JSON",
        "OTLP protobuf, length-prefixed",
    }
    for label, cell in result["formats"].items():
        assert positive(cell["spans_per_s"]), label
        assert positive(cell["cpu_us_per_span"]), label
        assert cell["bytes"] > 0, label
    assert result["spans"] >= 5_000
    assert "cvtrace import" in text


@pytest.mark.slow
def test_collector_measures_both_variants_and_the_burst() -> None:
    result, text = run_quick("collector")
    for variant, cell in result["variants"].items():
        assert positive(cell["spans_per_cpu_s"]), variant
        assert positive(cell["peak_rss_mib"]), variant
    assert result["delivered"]["off-newrelic"] == 0
    assert result["delivered"]["on-newrelic"] == result["variants"]["New Relic on"]["sent"]
    limited, unlimited = result["burst"]
    assert limited["refused"] > 0
    assert unlimited["refused"] == 0
    assert "spans per CPU-second" in text


@pytest.mark.slow
@pytest.mark.browser
def test_export_times_the_command_the_file_and_its_opening() -> None:
    result, text = run_quick("export")
    assert result["page_errors"] == []  # no request besides the file, nothing missing
    for variant in ("lean", "rich"):
        samples = result["samples"][variant]
        assert len(samples) == result["config"]["rounds"]
        for sample in samples:
            for key in ("command_s", "command_cpu_s", "in_process_s", "open_ms", "details_ms"):
                assert positive(sample[key]), (variant, key)
            assert 0 < sample["gzip_bytes"] < sample["bytes"]
            assert sample["requests"] == 1  # the file itself
    assert "file://" in text
