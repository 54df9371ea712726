"""One long-lived process per variant, driven round by round by a coordinator.

``python -m bench.worker VARIANT DATABASE`` (the variant's environment set by the
caller) builds the demo app as ``VARIANT``, then reads JSON commands on stdin and
answers one JSON line each on the stdout it started with (the app's own output goes
to /dev/null):

- ``{"cmd": "run", "path": "/circuits/2", "n": 500}``: ``n`` requests through Flask's
  test client, timed; then a flush of what was queued, timed separately. Answers
  ``loop_ns``, ``flush_ns``, ``cpu_ns`` (CPU time of all the process's threads over
  both), and the ``spans`` and ``roots`` these requests made.
- ``{"cmd": "run_for", "path": ..., "seconds": 10}``: as many requests as fit, no flush.
- ``{"cmd": "calls", "path": ..., "n": 20}``: ``n`` requests under ``cProfile``:
  Python function calls per request, in all and in cvtrace's and OpenTelemetry's
  code (a count, not a time: the same on a busy machine as on a quiet one); then the
  export of the spans they queued, run on the same thread and counted apart
  (``export_calls``, ``export_tracing_calls``; for cvtrace ``exported`` says how many
  spans that export took, to check that the export thread took none of them).
- ``{"cmd": "span_storm", "seconds": 5}``: request-shaped spans from the tracer in a
  tight loop, no app: the most spans the process can make.
- ``{"cmd": "stop"}``: flush and shut tracing down as at exit, answer the totals, exit.

Only one worker runs at a time, so the variants do not compete for the CPU.
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import opentelemetry

import cvtrace
from bench.variants import Setup, build

_CVTRACE = Path(cvtrace.__file__).parent
_TRACING_DIRS = (str(_CVTRACE), *opentelemetry.__path__)
_NOT_TRACING_DIRS = (str(_CVTRACE / "demo"), str(_CVTRACE / "viewer"))


def is_tracing_code(filename: str) -> bool:
    """Tell whether ``filename`` is a module of cvtrace's tracing or OpenTelemetry's.

    Decided by the directories the packages were imported from, not by a substring of
    the path: a checkout in a folder named ``cvtrace`` holds the demo app too.
    """

    def under(directories: tuple[str, ...]) -> bool:
        return any(filename.startswith(directory + os.sep) for directory in directories)

    return under(_TRACING_DIRS) and not under(_NOT_TRACING_DIRS)


def _redirect_stdout() -> TextIO:
    """Keep the original stdout for answers; send everything else to /dev/null."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    return answers


def _counts(setup: Setup) -> tuple[int, int]:
    counter = setup.counter
    return (counter.spans, counter.roots) if counter is not None else (0, 0)


def _run(setup: Setup, client: Any, path: str, n: int) -> dict[str, Any]:
    spans0, roots0 = _counts(setup)
    get = client.get
    c0 = time.process_time_ns()
    t0 = time.perf_counter_ns()
    for _ in range(n):
        response = get(path)
        if response.status_code != 200:
            msg = f"{setup.variant}: GET {path} answered {response.status_code}"
            raise RuntimeError(msg)
    t1 = time.perf_counter_ns()
    setup.flush()
    t2 = time.perf_counter_ns()
    c2 = time.process_time_ns()
    spans1, roots1 = _counts(setup)
    return {
        "loop_ns": t1 - t0,
        "cpu_ns": c2 - c0,
        "flush_ns": t2 - t1,
        "n": n,
        "spans": spans1 - spans0,
        "roots": roots1 - roots0,
    }


def _count(profile: cProfile.Profile) -> tuple[int, int]:
    """All calls a profile saw, and those in cvtrace's tracing or OpenTelemetry."""
    # Stats.stats is the profile's table, which typeshed's pstats stubs do not declare.
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    tracing = sum(
        calls
        for (filename, _line, _name), (_prim, calls, *_rest) in stats.items()
        if is_tracing_code(filename)
    )
    return sum(calls for (_prim, calls, *_rest) in stats.values()), tracing


def _export_here(setup: Setup) -> int:
    """Export what is queued on this thread (as the export thread would).

    Returns the spans cvtrace's processor exported (0 for vanilla's).

    cvtrace's export thread is asked for nothing: its processor's batch loop runs
    here, under the context that thread runs in. The SDK's ``BatchSpanProcessor``
    exports on the caller's thread in ``force_flush`` already.
    """
    from opentelemetry import context

    from cvtrace.noise import SUPPRESSED

    exported = 0
    handle = cvtrace.get_handle()
    processor = handle.processor if handle is not None else None
    if handle is not None and processor is not None and not handle.is_shut_down:
        before = processor.stats().spans_exported
        token = context.attach(SUPPRESSED)
        try:
            processor._export_queued()
        finally:
            context.detach(token)
        exported += processor.stats().spans_exported - before
    if setup.provider is not None:
        setup.provider.force_flush(30_000)  # (not counted: the SDK keeps no such count)
    return exported


def _calls(setup: Setup, client: Any, path: str, n: int) -> dict[str, Any]:
    setup.flush()
    _export_here(setup)
    spans0, _ = _counts(setup)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(n):
        client.get(path)
    profile.disable()
    export_profile = cProfile.Profile()
    export_profile.enable()
    exported = _export_here(setup)
    export_profile.disable()
    spans1, _ = _counts(setup)
    setup.flush()
    total, tracing = _count(profile)
    export_total, export_tracing = _count(export_profile)
    return {
        "calls": total / n,
        "tracing_calls": tracing / n,
        "export_calls": export_total / n,
        "export_tracing_calls": export_tracing / n,
        "spans": spans1 - spans0,
        "exported": exported,
        "n": n,
    }


def _run_for(setup: Setup, client: Any, path: str, seconds: float) -> dict[str, Any]:
    spans0, _ = _counts(setup)
    get = client.get
    n = 0
    t0 = time.perf_counter_ns()
    deadline = t0 + int(seconds * 1e9)
    while time.perf_counter_ns() < deadline:
        for _ in range(20):
            get(path)
        n += 20
    t1 = time.perf_counter_ns()
    spans1, _ = _counts(setup)
    return {"loop_ns": t1 - t0, "n": n, "spans": spans1 - spans0}


def _span_storm(setup: Setup, seconds: float) -> dict[str, Any]:
    """Make request-shaped spans (a server span, three query spans) as fast as possible."""
    from opentelemetry import trace
    from opentelemetry.util.types import AttributeValue

    tracer = trace.get_tracer("bench.storm")
    server = trace.SpanKind.SERVER
    client = trace.SpanKind.CLIENT
    request_attributes: dict[str, AttributeValue] = {
        "http.request.method": "GET",
        "http.route": "/circuits/<int:circuit_id>",
        "url.path": "/circuits/2",
        "http.response.status_code": 200,
    }
    query_attributes = {"db.system.name": "sqlite", "db.query.text": "SELECT 1"}
    spans0, _ = _counts(setup)
    n = 0
    t0 = time.perf_counter_ns()
    deadline = t0 + int(seconds * 1e9)
    while time.perf_counter_ns() < deadline:
        for _ in range(50):
            with tracer.start_as_current_span("GET /circuits", kind=server) as span:
                span.set_attributes(request_attributes)
                for _ in range(3):
                    with tracer.start_as_current_span("SELECT", kind=client) as query:
                        query.set_attributes(query_attributes)
        n += 50
    t1 = time.perf_counter_ns()
    spans1, _ = _counts(setup)
    return {"loop_ns": t1 - t0, "n": n, "spans": spans1 - spans0}


def main() -> int:
    """Serve commands until ``stop``."""
    variant, database = sys.argv[1], Path(sys.argv[2])
    answers = _redirect_stdout()
    setup = build(variant, database)
    client = setup.app.test_client()
    warm = int(os.environ.get("BENCH_WARMUP", "50"))
    for path in ("/circuits/2", "/up"):
        for _ in range(warm):
            client.get(path)
    setup.flush()
    gc.collect()
    answers.write(json.dumps({"ready": variant, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "run":
            result = _run(setup, client, command["path"], int(command["n"]))
        elif command["cmd"] == "calls":
            result = _calls(setup, client, command["path"], int(command["n"]))
        elif command["cmd"] == "span_storm":
            result = _span_storm(setup, float(command["seconds"]))
        elif command["cmd"] == "run_for":
            result = _run_for(setup, client, command["path"], float(command["seconds"]))
        elif command["cmd"] == "stop":
            t0 = time.perf_counter_ns()
            setup.shutdown()
            spans, roots = _counts(setup)
            result = {
                "shutdown_ns": time.perf_counter_ns() - t0,
                "spans": spans,
                "roots": roots,
                "dropped": setup.dropped(),
            }
            answers.write(json.dumps(result) + "\n")
            return 0
        else:
            result = {"error": f"unknown command {command!r}"}
        answers.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
