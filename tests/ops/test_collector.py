"""The real collector judges otel-collector.yaml; the real Jaeger starts.

Both binaries come from deploy/build.sh (`make collector`): cvtrace's collector
distribution (deploy/collector) and Jaeger v2 (deploy/jaeger), built from their Go
modules at the releases compose.yaml runs as images. Here the collector itself
validates the shipped config and every broken copy of tests/ops/broken_configs.py,
resolves its ${env:...} expansions (the New Relic key guard), and runs it on 127.0.0.1
ports: healthy, forwarding to a Jaeger and a viewer stand-in, stopping on SIGTERM.

What the collector accepts but this project forbids (memory_limiter first, the key
guard's place, addresses compose needs, ...) stays with the hand-written checker in
tests/ops/test_collector_policy.py; the table records which copies those are.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from cvtrace.demo.cli import Child, stop_child
from cvtrace.demo.pipeline import CollectorAddresses, clean_environment, start_collector
from cvtrace.demo.ports import free_port
from tests.ops.binaries import Binaries, resolved_config, run_collector, validate
from tests.ops.broken_configs import BROKEN_COLLECTOR_CONFIGS, BrokenConfig
from tests.otlp_receiver import GrpcOtlpReceiver, HttpOtlpReceiver, attributes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR_CONFIG = ROOT / "otel-collector.yaml"
COMPOSE_FILE = ROOT / "compose.yaml"
COLLECTOR_GO_MOD = ROOT / "deploy" / "collector" / "go.mod"
JAEGER_RELEASE = ROOT / "deploy" / "jaeger" / "release.env"
JAEGER_LOCAL_CONFIG = ROOT / "deploy" / "jaeger-local.yaml"

NEW_RELIC_KEY = "NEW_RELIC_LICENSE_KEY"
SAMPLE_LICENSE_KEY = "0123456789abcdef0123456789abcdef0123NRAL"
VIEWER_TOKEN = "test-viewer-token"
# The collector's addresses in otel-collector.yaml (${env:NAME:-compose default}).
ENDPOINT_VARIABLES = (
    "CVTRACE_COLLECTOR_OTLP_GRPC_ENDPOINT",
    "CVTRACE_COLLECTOR_OTLP_HTTP_ENDPOINT",
    "CVTRACE_COLLECTOR_HEALTH_ENDPOINT",
    "CVTRACE_COLLECTOR_PPROF_ENDPOINT",
    "CVTRACE_COLLECTOR_ZPAGES_ENDPOINT",
)
# A warning the collector logs whatever the config: zpages would show the collector's
# own spans, but the collector (0.161) records none unless its internal tracing is set.
WARNED = [case for case in BROKEN_COLLECTOR_CONFIGS if case.collector_warns is not None]
HARMLESS_WARNINGS = ("zPages span processor registration is not available",)


def shipped_resolved(binaries: Binaries, environment: dict[str, str]) -> dict[str, Any]:
    """The shipped config as the collector resolves it: ${env:...} expanded, defaults filled."""
    return resolved_config(binaries, COLLECTOR_CONFIG, environment)


def _image_tag(service: str) -> str:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    image = str(compose["services"][service]["image"])
    return image.split("@", 1)[0].rsplit(":", 1)[1]


class TestDistribution:
    """The binaries are the releases compose runs, with the components the config uses."""

    def test_collector_is_the_release_compose_runs(self, binaries: Binaries) -> None:
        result = run_collector(binaries, "--version")
        assert result.stdout.split() == ["otelcol-cvtrace", "version", "0.161.0"]
        assert _image_tag("otel-collector") == "0.161.0"

    def test_jaeger_is_the_release_compose_runs(self, binaries: Binaries) -> None:
        """Jaeger's module v1.75.0 is release v2.12.0, the image compose runs."""
        result = subprocess.run(
            [str(binaries.jaeger), "version"], capture_output=True, text=True, check=True
        )
        version = json.loads(result.stdout)
        release = dict(
            line.split("=", 1)
            for line in JAEGER_RELEASE.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")
        )
        assert version["gitVersion"] == release["JAEGER_RELEASE"] == "v2.12.0"
        assert version["gitCommit"] == release["JAEGER_COMMIT"]
        assert _image_tag("jaeger") == "2.12.0"

    def test_every_collector_module_is_at_one_release(self) -> None:
        """No collector module drifts: core v0.x and contrib at one version, core v1.x at one.

        A `go get` of one component at another version, or a `go mod tidy` that picks
        the newest of a module the code imports, would move it alone; the collector
        builds only test one combination, the release's.
        """
        requirements = re.findall(
            r"^\s*((?:go\.opentelemetry\.io/collector|github\.com/open-telemetry/"
            r"opentelemetry-collector-contrib)\S*) (v\S+)",
            COLLECTOR_GO_MOD.read_text(encoding="utf-8"),
            flags=re.MULTILINE,
        )
        unstable = {version for _module, version in requirements if version.startswith("v0.")}
        stable = {version for _module, version in requirements if version.startswith("v1.")}
        assert unstable == {"v0.161.0"}
        assert len(stable) == 1, stable
        assert len(requirements) > 50  # the whole graph, not only the direct requirements

    def test_components_are_the_ones_the_config_uses(self, binaries: Binaries) -> None:
        """Exactly what otel-collector.yaml names, plus `file` and `debug`."""
        listed = yaml.safe_load(run_collector(binaries, "components").stdout)
        config = yaml.safe_load(COLLECTOR_CONFIG.read_text(encoding="utf-8"))
        for kind, extra in (
            ("receivers", set()),
            ("processors", set()),
            ("exporters", {"file", "debug"}),
            ("extensions", set()),
        ):
            have = {component["name"] for component in listed[kind]}
            used = {component_id.split("/", 1)[0] for component_id in config[kind]}
            assert have == used | extra, kind
        assert listed["connectors"] == []


class TestValidate:
    """`otelcol-cvtrace validate` on the shipped config and on each broken copy."""

    def test_shipped_config_is_valid_as_compose_runs_it(self, binaries: Binaries) -> None:
        result = validate(binaries, COLLECTOR_CONFIG, {"CVTRACE_VIEWER_TOKEN": VIEWER_TOKEN})
        assert (result.returncode, result.stderr) == (0, "")

    def test_compose_defaults_and_overrides(self, binaries: Binaries) -> None:
        """Every address is the compose network's by default, and 127.0.0.1 when told."""
        compose = shipped_resolved(binaries, {})
        assert compose["exporters"]["otlp_grpc/jaeger"]["endpoint"] == "jaeger:4317"
        assert compose["exporters"]["otlp_http/viewer"]["endpoint"] == "http://viewer:4318"
        protocols = compose["receivers"]["otlp"]["protocols"]
        assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
        assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
        assert compose["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"

        local = {name: f"127.0.0.1:{port}" for port, name in enumerate(ENDPOINT_VARIABLES, 20001)}
        local["CVTRACE_COLLECTOR_JAEGER_ENDPOINT"] = "127.0.0.1:20010"
        local["CVTRACE_COLLECTOR_VIEWER_ENDPOINT"] = "http://127.0.0.1:20011"
        resolved = shipped_resolved(binaries, local)
        assert resolved["exporters"]["otlp_grpc/jaeger"]["endpoint"] == "127.0.0.1:20010"
        assert resolved["exporters"]["otlp_http/viewer"]["endpoint"] == "http://127.0.0.1:20011"
        protocols = resolved["receivers"]["otlp"]["protocols"]
        assert protocols["grpc"]["endpoint"] == "127.0.0.1:20001"
        assert protocols["http"]["endpoint"] == "127.0.0.1:20002"
        assert resolved["extensions"]["health_check"]["endpoint"] == "127.0.0.1:20003"
        assert resolved["extensions"]["pprof"]["endpoint"] == "127.0.0.1:20004"
        assert resolved["extensions"]["zpages"]["endpoint"] == "127.0.0.1:20005"

    @pytest.mark.parametrize(
        "case", BROKEN_COLLECTOR_CONFIGS, ids=[case.mistake for case in BROKEN_COLLECTOR_CONFIGS]
    )
    def test_broken_copy(self, binaries: Binaries, tmp_path: Path, case: BrokenConfig) -> None:
        """Rejected with the recorded error, or accepted: a rule test_collector_policy.py holds."""
        broken = copy.deepcopy(yaml.safe_load(COLLECTOR_CONFIG.read_text(encoding="utf-8")))
        case.mutate(broken)
        path = tmp_path / "otel-collector.yaml"
        path.write_text(yaml.safe_dump(broken, sort_keys=False), encoding="utf-8")
        result = validate(binaries, path)
        if case.collector_says is None:
            assert result.returncode == 0, (
                f"the collector now rejects {case.mistake!r}: record its error in "
                f"tests/ops/broken_configs.py\n{result.stderr}"
            )
        else:
            assert result.returncode != 0
            assert case.collector_says in result.stderr

    @pytest.mark.parametrize("case", WARNED, ids=[case.mistake for case in WARNED])
    def test_broken_copy_draws_a_warning(
        self, binaries: Binaries, tmp_path: Path, case: BrokenConfig
    ) -> None:
        """Accepted, but the collector, once running it, warns about it at every start."""
        broken = copy.deepcopy(yaml.safe_load(COLLECTOR_CONFIG.read_text(encoding="utf-8")))
        case.mutate(broken)
        path = tmp_path / "otel-collector.yaml"
        path.write_text(yaml.safe_dump(broken, sort_keys=False), encoding="utf-8")
        started: list[Child] = []
        try:
            collector = start_collector(
                binaries.collector,
                path,
                CollectorAddresses.on_free_ports(),
                tmp_path / "collector.log",
                started=started,
                jaeger_otlp_grpc=f"127.0.0.1:{free_port()}",
                viewer_otlp_http=f"http://127.0.0.1:{free_port()}",
            )
        finally:
            for child in started:
                stop_child(child)
        assert case.collector_warns is not None
        warnings = [line for line in collector.log_tail(10_000).splitlines() if "\twarn\t" in line]
        assert any(case.collector_warns in line for line in warnings), warnings

    def test_every_copy_has_a_judge(self) -> None:
        """No row of the table is caught by nobody, and none by both judges."""
        judges = [
            (case.mistake, case.checker_says, case.collector_says or case.collector_warns)
            for case in BROKEN_COLLECTOR_CONFIGS
        ]
        assert [
            mistake for mistake, mine, theirs in judges if mine is None and theirs is None
        ] == []
        assert [mistake for mistake, mine, theirs in judges if mine and theirs] == []

    def test_duplicate_key_is_rejected(self, binaries: Binaries, tmp_path: Path) -> None:
        """A pasted block that repeats a component id is an error, not a silent overwrite."""
        text = COLLECTOR_CONFIG.read_text(encoding="utf-8")
        path = tmp_path / "otel-collector.yaml"
        path.write_text(text.replace("processors:\n", "processors:\n  batch: {}\n", 1))
        result = validate(binaries, path)
        assert result.returncode != 0
        assert 'mapping key "batch" already defined' in result.stderr

    @pytest.mark.parametrize(
        ("label", "environment", "key"),
        [
            ("the key unset", {}, ""),
            ("the key set but empty", {NEW_RELIC_KEY: ""}, ""),
            ("a key set", {NEW_RELIC_KEY: SAMPLE_LICENSE_KEY}, SAMPLE_LICENSE_KEY),
        ],
    )
    def test_key_guard_reads_the_key(
        self, binaries: Binaries, label: str, environment: dict[str, str], key: str
    ) -> None:
        """The collector expands the key into the guard: `"" == ""` (drop all) without one.

        An empty key does not take the ${env:...:-} default (only an unset one does),
        which is why the guard compares with "" rather than with a default.
        """
        resolved = shipped_resolved(binaries, environment)
        guard = resolved["processors"]["filter/newrelic_key_guard"]
        assert guard["traces"]["span"] == [f'"{key}" == ""'], label
        headers = resolved["exporters"]["otlp_http/newrelic"]["headers"]
        assert {header["name"]: header["value"] for header in headers} == {"api-key": key}

    @pytest.mark.parametrize("bad_key", ['abc"def', "abc\\"])
    def test_a_key_that_breaks_the_guard_stops_the_collector(
        self, binaries: Binaries, bad_key: str
    ) -> None:
        """Loudly, naming the guard, rather than sending anything anywhere."""
        result = validate(binaries, COLLECTOR_CONFIG, {NEW_RELIC_KEY: bad_key})
        assert result.returncode != 0
        assert "processors::filter/newrelic_key_guard: unable to parse OTTL condition" in (
            result.stderr
        )


def _span(name: str, url_path: str, **extra: str) -> Span:
    span = Span(
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        name=name,
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=time.time_ns() - 1_000_000,
        end_time_unix_nano=time.time_ns(),
    )
    for key, value in {"url.path": url_path, **extra}.items():
        span.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
    return span


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the collector exited during start-up"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if json.load(response).get("status") == "Server available":
                    return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.1)
    pytest.fail(f"no healthy answer from {url} within {timeout_s} s")


@pytest.fixture
def new_relic() -> Iterator[HttpOtlpReceiver]:
    """A New Relic stand-in: a real OTLP/HTTP receiver, for NEW_RELIC_OTLP_ENDPOINT."""
    with HttpOtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def collector(
    binaries: Binaries,
    otlp_grpc: GrpcOtlpReceiver,
    otlp_http: HttpOtlpReceiver,
    new_relic: HttpOtlpReceiver,
    tmp_path: Path,
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str], Path]]:
    """The shipped config, run on 127.0.0.1 ports, in front of Jaeger, viewer and New Relic
    stand-ins, without a New Relic license key.

    Yields the process, its environment and its log file. Stops it if the test did not.
    """
    environment = {name: f"127.0.0.1:{free_port()}" for name in ENDPOINT_VARIABLES}
    environment |= {
        "CVTRACE_COLLECTOR_METRICS_HOST": "127.0.0.1",
        "CVTRACE_COLLECTOR_METRICS_PORT": str(free_port()),
        # Jaeger's OTLP/gRPC port, and the viewer's OTLP/HTTP base URL.
        "CVTRACE_COLLECTOR_JAEGER_ENDPOINT": f"127.0.0.1:{otlp_grpc.port}",
        "CVTRACE_COLLECTOR_VIEWER_ENDPOINT": otlp_http.base_url,
        "CVTRACE_VIEWER_TOKEN": VIEWER_TOKEN,
        "NEW_RELIC_OTLP_ENDPOINT": new_relic.base_url,
    }
    log = tmp_path / "collector.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(binaries.collector), f"--config={COLLECTOR_CONFIG}"],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**clean_environment(), **environment},
        )
    try:
        yield process, environment, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


class TestRun:
    """The shipped config runs on one machine, pointed at 127.0.0.1 by its variables."""

    def test_healthy_forwards_and_stops_on_sigterm(
        self,
        collector: tuple[subprocess.Popen[bytes], dict[str, str], Path],
        otlp_grpc: GrpcOtlpReceiver,
        otlp_http: HttpOtlpReceiver,
        new_relic: HttpOtlpReceiver,
    ) -> None:
        """Without NEW_RELIC_LICENSE_KEY, nothing reaches New Relic, and nothing is logged."""
        process, environment, log = collector
        _wait_healthy(f"http://{environment['CVTRACE_COLLECTOR_HEALTH_ENDPOINT']}/", process)

        # One request span and one health check, as another SDK would send them.
        request = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=Resource(
                        attributes=[
                            KeyValue(key="service.name", value=AnyValue(string_value="probe"))
                        ]
                    ),
                    scope_spans=[
                        ScopeSpans(
                            spans=[
                                _span("GET /circuits", "/circuits", password="canary-hunter2"),
                                _span("GET /up", "/up"),
                            ]
                        )
                    ],
                )
            ]
        )
        post = urllib.request.Request(
            f"http://{environment['CVTRACE_COLLECTOR_OTLP_HTTP_ENDPOINT']}/v1/traces",
            data=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        with urllib.request.urlopen(post, timeout=10) as response:
            assert response.status == 200

        # Both exporters deliver (batch timeout 2 s): the /up span filtered out, the
        # secret-looking attribute masked, the viewer's token and gzip on the way.
        for receiver in (otlp_grpc, otlp_http):
            spans = receiver.wait_for_spans(1, timeout_s=20)
            assert [span.name for span in spans] == ["GET /circuits"]
            assert attributes(spans[0])["password"] != "canary-hunter2"
        headers = otlp_http.received[0].headers
        assert otlp_http.received[0].path == "/v1/traces"
        assert headers["authorization"] == f"Bearer {VIEWER_TOKEN}"
        assert headers["content-encoding"] == "gzip"
        # New Relic's pipeline batches for 2 s as well: give it time to send, if it would.
        time.sleep(3)
        assert new_relic.received == []

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert new_relic.received == []  # not even the flush at shutdown
        text = log.read_text(encoding="utf-8")
        assert "Shutdown complete." in text
        # Nothing in the config draws a warning: no unset variable, no deprecated
        # component type, no OTTL path the collector had to rewrite.
        warnings = [
            line
            for line in text.splitlines()
            if re.search(r"\t(warn|error)\t", line)
            and not any(harmless in line for harmless in HARMLESS_WARNINGS)
        ]
        assert warnings == []
        assert "please rewrite them" not in text


class TestJaeger:
    """Jaeger v2, as built here, on deploy/jaeger-local.yaml's 127.0.0.1 ports."""

    def test_serves_its_query_api_without_the_ui(self, binaries: Binaries, tmp_path: Path) -> None:
        """The query API answers; the UI is the placeholder page of a build without assets."""
        environment = {
            name: f"127.0.0.1:{free_port()}"
            for name in (
                "CVTRACE_JAEGER_HEALTH_ENDPOINT",
                "CVTRACE_JAEGER_QUERY_HTTP_ENDPOINT",
                "CVTRACE_JAEGER_QUERY_GRPC_ENDPOINT",
                "CVTRACE_JAEGER_OTLP_GRPC_ENDPOINT",
                "CVTRACE_JAEGER_OTLP_HTTP_ENDPOINT",
            )
        }
        log = tmp_path / "jaeger.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [str(binaries.jaeger), f"--config={JAEGER_LOCAL_CONFIG}"],
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**clean_environment(), **environment},
            )
        try:
            query = f"http://{environment['CVTRACE_JAEGER_QUERY_HTTP_ENDPOINT']}"
            deadline = time.monotonic() + 30
            services: dict[str, Any] | None = None
            while services is None and time.monotonic() < deadline:
                assert process.poll() is None, log.read_text(encoding="utf-8")
                try:
                    with urllib.request.urlopen(f"{query}/api/services", timeout=2) as response:
                        services = json.load(response)
                except (OSError, urllib.error.URLError):
                    time.sleep(0.1)
            assert services is not None, "Jaeger's query API never answered"
            assert services["errors"] is None
            with urllib.request.urlopen(f"{query}/", timeout=5) as response:
                page = response.read().decode()
            assert "This is not the Jaeger UI you are looking for" in page

            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        text = log.read_text(encoding="utf-8")
        assert "ui assets not embedded in the binary" in text
        assert "Shutdown complete." in text


def test_the_runbook_names_only_metrics_the_collector_has(binaries: Binaries) -> None:
    """Every ``otelcol_*`` name in docs/operations.md is one this collector can serve.

    The names are string constants in the binary, some with dots that the Prometheus
    endpoint turns into underscores (``otelcol_processor_filter_spans.filtered``); a
    name that is in neither form (a metric of another release, ``_total`` added by
    hand) would send an operator's grep nowhere.
    """
    runbook = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    names = set(re.findall(r"\botelcol_[a-z_]+[a-z]", runbook))
    assert len(names) > 5
    binary = binaries.collector.read_bytes()
    # Go packs its string constants end to end: split at each name's start, and a
    # served name is a prefix of one of the pieces.
    constants = {
        "otelcol_" + piece.decode().replace(".", "_")
        for match in re.findall(rb"otelcol_[a-z_.]+", binary)
        for piece in match.split(b"otelcol_")
        if piece
    }

    def served(name: str) -> bool:
        return any(constant.startswith(name) for constant in constants)

    assert sorted(name for name in names if not served(name)) == []
    # The runbook named this one until the real collector was asked: it is not 0.161's.
    assert not served("otelcol_processor_refused_spans")
    assert served("otelcol_processor_memory_limiter_refused_spans")
