"""Nothing is lost on a clean exit, on SIGTERM, or in forked gunicorn workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from cvtrace.demo.ports import free_port
from tests.otlp_receiver import GrpcOtlpReceiver, HttpOtlpReceiver, attributes

ROOT = Path(__file__).resolve().parents[2]


def _env(receiver: HttpOtlpReceiver, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CVTRACE_"))}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.base_url,
        OTEL_BSP_SCHEDULE_DELAY="60000",  # only an exit flush can deliver in time
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    import cvtrace
    handle = cvtrace.init(service_name="script")
    tracer = handle.provider.get_tracer("script")
    for index in range(5):
        tracer.start_span(f"work-{index}").end()
    if sys.argv[1] == "sigterm":
        print("ready", flush=True)
        time.sleep(30)
    """
)


class TestExit:
    def test_spans_are_flushed_at_interpreter_exit(self, otlp_http: HttpOtlpReceiver) -> None:
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT, "exit"],
            env=_env(otlp_http),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert sorted(s.name for s in otlp_http.spans()) == [f"work-{i}" for i in range(5)]

    def test_sigterm_flushes_then_ends_the_process_as_default(
        self, otlp_http: HttpOtlpReceiver
    ) -> None:
        with subprocess.Popen(
            [sys.executable, "-c", SCRIPT, "sigterm"],
            env=_env(otlp_http),
            stdout=subprocess.PIPE,
            text=True,
        ) as process:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == -signal.SIGTERM
        assert len(otlp_http.spans()) == 5

    def test_sigterm_chains_to_the_previous_handler(self, otlp_http: HttpOtlpReceiver) -> None:
        script = textwrap.dedent(
            """
            import signal, sys, time
            def handler(signum, frame):
                print("previous handler ran", flush=True)
                sys.exit(3)
            signal.signal(signal.SIGTERM, handler)
            import cvtrace
            handle = cvtrace.init(service_name="script")
            handle.provider.get_tracer("s").start_span("before-term").end()
            print("ready", flush=True)
            time.sleep(30)
            """
        )
        with subprocess.Popen(
            [sys.executable, "-c", script], env=_env(otlp_http), stdout=subprocess.PIPE, text=True
        ) as process:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 3
            assert process.stdout.read().strip() == "previous handler ran"
        assert [s.name for s in otlp_http.spans()] == ["before-term"]


FORKING_SCRIPT = textwrap.dedent(
    """
    import os
    import cvtrace
    tracer = cvtrace.init(service_name="forking").provider.get_tracer("script")
    child = os.fork()
    if child == 0:
        tracer.start_span("in the child").end()
        cvtrace.shutdown()
        os._exit(0)
    os.waitpid(child, 0)
    tracer.start_span("in the parent").end()
    print(os.getpid(), child)
    """
)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_forked_child_exports_with_its_own_pid(
    otlp_http: HttpOtlpReceiver, otlp_grpc: GrpcOtlpReceiver, protocol: str
) -> None:
    """Initialised before a fork, the child exports on its own connection, as itself."""
    receiver = otlp_grpc if protocol == "grpc" else otlp_http
    env = _env(otlp_http, OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = (
        otlp_grpc.endpoint if protocol == "grpc" else otlp_http.base_url
    )
    result = subprocess.run(
        [sys.executable, "-c", FORKING_SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    parent, child = result.stdout.split()
    exported = {
        span.name: str(resource["process.pid"])
        for item in receiver.received
        for resource_spans in item.request.resource_spans
        for resource in [{kv.key: kv.value.int_value for kv in resource_spans.resource.attributes}]
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    }
    assert exported == {"in the child": child, "in the parent": parent}


GUNICORN_APP = textwrap.dedent(
    """
    import os
    import flask
    import cvtrace

    def create_app():
        app = flask.Flask("forked")

        @app.get("/pid")
        def pid():
            return str(os.getpid())

        cvtrace.init(app=app)
        return app
    """
)


@pytest.mark.slow
def test_gunicorn_preload_workers_all_export(otlp_http: HttpOtlpReceiver, tmp_path: Path) -> None:
    """Initialised in the master (--preload), every worker exports with its own pid."""
    (tmp_path / "forked_app.py").write_text(GUNICORN_APP)
    port = free_port()
    env = _env(otlp_http)
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{ROOT}"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [
            str(gunicorn),
            "--preload",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "forked_app:create_app()",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pids: set[str] = set()
        deadline = time.monotonic() + 30
        while len(pids) < 2 and time.monotonic() < deadline:
            try:
                with requests.Session() as session:  # a new connection each round
                    pids.add(session.get(f"http://127.0.0.1:{port}/pid", timeout=2).text)
            except requests.ConnectionError:
                time.sleep(0.1)
        assert len(pids) == 2, "both workers should have served"
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
    exported_pids = {str(resource["process.pid"]) for resource in otlp_http.resources()}
    assert pids <= exported_pids, (pids, exported_pids)
    spans = otlp_http.spans()
    assert {attributes(s)["http.route"] for s in spans} == {"/pid"}
