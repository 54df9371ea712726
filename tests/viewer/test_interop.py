"""Another language's OpenTelemetry SDK sends to ``cvtrace view`` unmodified.

``cvtrace view`` runs as a real subprocess; the OpenTelemetry JS SDK
(``tests/node``, pinned by its ``package-lock.json``) runs as a real ``node``
subprocess per export, with the stock OTLP exporters over HTTP/protobuf,
HTTP/JSON and gRPC. The trace it makes (see ``tests/node/send_spans.mjs``) is
then checked in the store, through the Jaeger API, in search and on the trace
page. Install the SDK with ``npm ci --prefix tests/node``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from cvtrace.store import SpanStore, StoredSpan

pytestmark = pytest.mark.slow

NODE_DIR = Path(__file__).parents[1] / "node"
SEND_SPANS = NODE_DIR / "send_spans.mjs"
INSTALL_COMMAND = "npm ci --prefix tests/node"
PROTOCOLS = ["http/protobuf", "http/json", "grpc"]
TOKEN = "interop-secret"
NODE_TIMEOUT_S = 30.0
ROOT, CLIENT, INTERNAL = "GET /orders/{id}", "SELECT orders", "decode rows"


@dataclass(frozen=True)
class View:
    """A running ``cvtrace view``: its URLs, its store file and its token."""

    ui_url: str
    otlp_http_url: str
    otlp_grpc_url: str
    db_path: Path
    token: str | None

    def endpoint(self, protocol: str) -> str:
        """Return the ENDPOINT argument of ``send_spans.mjs`` for a protocol."""
        return self.otlp_grpc_url if protocol == "grpc" else self.otlp_http_url

    def get(self, path: str, **params: str) -> requests.Response:
        """GET a UI or API path (with the token, if the viewer has one)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return requests.get(f"{self.ui_url}{path}", params=params, headers=headers, timeout=10)


@dataclass(frozen=True)
class Sent:
    """What one run of ``send_spans.mjs`` did."""

    returncode: int
    stderr: str
    trace_id: str
    span_ids: dict[str, str]
    link: dict[str, str]
    start_ms: int


def node_executable() -> str:
    """Return ``node``, failing (not skipping) the test when it or the JS SDK is missing."""
    executable = shutil.which("node")
    if executable is None:
        pytest.fail("node is not on PATH: install Node.js 20.6 or later (Debian: nodejs)")
    if not (NODE_DIR / "node_modules" / "@opentelemetry" / "sdk-trace-base").is_dir():
        pytest.fail(
            f"the OpenTelemetry JS SDK is not installed in {NODE_DIR}/node_modules: "
            f"run `{INSTALL_COMMAND}` from the repository root"
        )
    return executable


def _start_view(db_path: Path, token: str | None) -> tuple[subprocess.Popen[str], View]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CVTRACE_", "OTEL_"))}
    command = [sys.executable, "-m", "cvtrace.cli", "view", "--db", str(db_path)]
    command += ["--port", "0", "--otlp-port", "0", "--otlp-grpc-port", "0"]
    if token is not None:
        command += ["--token", token]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    banner = ""
    while "OTLP/gRPC" not in banner:
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=10)
            stderr = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"cvtrace view exited early:\n{banner}{stderr}")
        banner += line
    ui = re.search(r"cvtrace viewer on (http://\S+?)/(\?|\s|$)", banner)
    otlp_http = re.search(r"OTLP/HTTP: (http://\S+)/v1/traces", banner)
    otlp_grpc = re.search(r"OTLP/gRPC: (\S+)", banner)
    assert ui is not None, banner
    assert otlp_http is not None, banner
    assert otlp_grpc is not None, banner
    view = View(
        ui_url=ui.group(1),
        otlp_http_url=otlp_http.group(1),
        otlp_grpc_url=f"http://{otlp_grpc.group(1)}",
        db_path=db_path,
        token=token,
    )
    return proc, view


def _stop_view(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> Iterator[View]:
    """``cvtrace view`` without a token, on free ports."""
    proc, running = _start_view(tmp_path_factory.mktemp("interop") / "view.sqlite3", None)
    try:
        yield running
    finally:
        _stop_view(proc)


@pytest.fixture(scope="module")
def token_view(tmp_path_factory: pytest.TempPathFactory) -> Iterator[View]:
    """``cvtrace view --token``, on free ports."""
    proc, running = _start_view(tmp_path_factory.mktemp("interop") / "token.sqlite3", TOKEN)
    try:
        yield running
    finally:
        _stop_view(proc)


def send_spans(
    node: str,
    view: View,
    protocol: str,
    service: str,
    token: str | None = None,
    *,
    compression: str | None = None,
) -> Sent:
    """Run ``send_spans.mjs`` as an application would run the SDK; return what it did.

    ``compression`` goes in ``OTEL_EXPORTER_OTLP_COMPRESSION``, the standard way
    to configure an exporter from outside.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if compression is not None:
        env["OTEL_EXPORTER_OTLP_COMPRESSION"] = compression
    args = [node, str(SEND_SPANS), view.endpoint(protocol), protocol, service]
    if token is not None:
        args.append(token)
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=NODE_TIMEOUT_S, env=env, check=False
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"send_spans.mjs printed nothing (exit {done.returncode}):\n{done.stderr}"
    made = json.loads(lines[-1])
    return Sent(
        returncode=done.returncode,
        stderr=done.stderr,
        trace_id=made["traceId"],
        span_ids=made["spans"],
        link=made["link"],
        start_ms=int(made["startMs"]),
    )


def read_trace(view: View, trace_id: str) -> list[StoredSpan]:
    """Return a trace from the viewer's store file (opened beside the running viewer)."""
    store = SpanStore(view.db_path, max_spans=0)
    try:
        return store.get_trace(bytes.fromhex(trace_id))
    finally:
        store.close()


def typed(value: AnyValue) -> tuple[str, Any]:
    """Return the AnyValue's kind and its Python value (arrays element by element)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return "empty", None
    if kind == "array_value":
        return kind, [typed(v) for v in value.array_value.values]
    return kind, getattr(value, kind)


def attributes(kvs: Any) -> dict[str, tuple[str, Any]]:
    """Return OTLP attributes as ``{key: (kind, value)}``."""
    return {kv.key: typed(kv.value) for kv in kvs}


def jaeger_tags(tags: list[dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    """Return Jaeger tags as ``{key: (type, value)}``."""
    return {t["key"]: (t["type"], t["value"]) for t in tags}


def assert_stored_whole(view: View, sent: Sent, service: str) -> None:
    """The trace is in the store exactly as the JS SDK made it."""
    spans = read_trace(view, sent.trace_id)
    by_name = {s.span.name: s for s in spans}
    assert sorted(by_name) == sorted([ROOT, CLIENT, INTERNAL]), [s.span.name for s in spans]
    root, client, internal = by_name[ROOT].span, by_name[CLIENT].span, by_name[INTERNAL].span
    ids = sent.span_ids
    assert {s.span.trace_id.hex() for s in spans} == {sent.trace_id}
    assert (root.span_id.hex(), root.parent_span_id) == (ids["root"], b"")
    assert (client.span_id.hex(), client.parent_span_id.hex()) == (ids["client"], ids["root"])
    assert (internal.span_id.hex(), internal.parent_span_id.hex()) == (
        ids["internal"],
        ids["client"],
    )
    assert (root.kind, client.kind, internal.kind) == (
        Span.SPAN_KIND_SERVER,
        Span.SPAN_KIND_CLIENT,
        Span.SPAN_KIND_INTERNAL,
    )
    # explicit times in ms, converted to ns by the SDK
    t0_ns = sent.start_ms * 1_000_000
    assert (root.start_time_unix_nano, root.end_time_unix_nano) == (t0_ns, t0_ns + 25_000_000)
    assert client.start_time_unix_nano == t0_ns + 5_000_000
    assert internal.end_time_unix_nano == t0_ns + 12_000_000

    assert attributes(root.attributes) == {
        "http.request.method": ("string_value", "GET"),
        "http.route": ("string_value", "/orders/{id}"),
        "http.response.status_code": ("int_value", 200),
        "app.cache_hit": ("bool_value", True),
        "app.load_ratio": ("double_value", 0.75),
        "app.big_count": ("int_value", 2**53 - 1),
        "app.tags": (
            "array_value",
            [("string_value", "red"), ("string_value", "green"), ("string_value", "blue")],
        ),
        "app.ports": ("array_value", [("int_value", 8080), ("int_value", 8443)]),
    }
    assert [(link.trace_id.hex(), link.span_id.hex()) for link in root.links] == [
        (sent.link["traceId"], sent.link["spanId"])
    ]
    assert attributes(root.links[0].attributes) == {
        "messaging.message.id": ("string_value", "msg-42")
    }
    assert root.status.code == Status.STATUS_CODE_UNSET

    assert [(e.name, e.time_unix_nano) for e in client.events] == [("retry", t0_ns + 7_000_000)]
    assert attributes(client.events[0].attributes) == {
        "retry.attempt": ("int_value", 2),
        "retry.reason": ("string_value", "connection reset"),
    }
    assert (client.status.code, client.status.message) == (
        Status.STATUS_CODE_ERROR,
        "connection reset by peer",
    )
    assert attributes(internal.attributes) == {"rows.count": ("int_value", 3)}

    for stored in spans:
        assert stored.service == service
        resource = attributes(stored.resource.attributes)
        assert resource["service.name"] == ("string_value", service)
        assert resource["service.version"] == ("string_value", "1.2.3")
        assert resource["telemetry.sdk.language"] == ("string_value", "nodejs")
        assert (stored.scope.name, stored.scope.version) == ("cvtrace-interop", "0.1.0")


def assert_in_jaeger_api(view: View, sent: Sent, service: str) -> None:
    """The Jaeger API serves the trace whole, with typed tags, refs, logs and process."""
    response = view.get(f"/api/traces/{sent.trace_id}")
    assert response.status_code == 200, response.text
    [trace] = response.json()["data"]
    assert trace["traceID"] == sent.trace_id
    [process] = trace["processes"].values()
    assert process["serviceName"] == service
    assert jaeger_tags(process["tags"])["telemetry.sdk.language"] == ("string", "nodejs")
    spans = {s["operationName"]: s for s in trace["spans"]}
    assert sorted(spans) == sorted([ROOT, CLIENT, INTERNAL])
    root, client, internal = spans[ROOT], spans[CLIENT], spans[INTERNAL]
    ids = sent.span_ids
    assert [root["spanID"], client["spanID"], internal["spanID"]] == [
        ids["root"],
        ids["client"],
        ids["internal"],
    ]
    assert root["references"] == [
        {"refType": "FOLLOWS_FROM", "traceID": sent.link["traceId"], "spanID": sent.link["spanId"]}
    ]
    assert client["references"] == [
        {"refType": "CHILD_OF", "traceID": sent.trace_id, "spanID": ids["root"]}
    ]
    assert internal["references"] == [
        {"refType": "CHILD_OF", "traceID": sent.trace_id, "spanID": ids["client"]}
    ]
    assert (root["startTime"], root["duration"]) == (sent.start_ms * 1000, 25_000)
    assert (client["duration"], internal["duration"]) == (10_000, 2_000)

    root_tags = jaeger_tags(root["tags"])
    assert root_tags["span.kind"] == ("string", "server")
    assert root_tags["http.response.status_code"] == ("int64", 200)
    assert root_tags["app.cache_hit"] == ("bool", True)
    assert root_tags["app.load_ratio"] == ("float64", 0.75)
    assert root_tags["app.big_count"] == ("int64", 2**53 - 1)
    # Jaeger has no array type: arrays are JSON text, as Jaeger's own OTLP translator does
    assert root_tags["app.tags"][0] == "string"
    assert json.loads(root_tags["app.tags"][1]) == ["red", "green", "blue"]
    assert json.loads(root_tags["app.ports"][1]) == [8080, 8443]
    assert "error" not in root_tags

    client_tags = jaeger_tags(client["tags"])
    assert client_tags["span.kind"] == ("string", "client")
    assert client_tags["otel.status_code"] == ("string", "ERROR")
    assert client_tags["error"] == ("bool", True)
    assert jaeger_tags(internal["tags"])["span.kind"] == ("string", "internal")
    [log] = client["logs"]
    assert log["timestamp"] == (sent.start_ms + 7) * 1000
    assert jaeger_tags(log["fields"]) == {
        "event": ("string", "retry"),
        "retry.attempt": ("int64", 2),
        "retry.reason": ("string", "connection reset"),
    }


def strings_in(data: object) -> Iterator[str]:
    """Yield every string in a decoded JSON document."""
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from strings_in(value)
    elif isinstance(data, list):
        for value in data:
            yield from strings_in(value)


def assert_found_and_rendered(view: View, sent: Sent, service: str) -> None:
    """Search by service finds the trace (API and UI); its trace page and waterfall render."""
    assert service in view.get("/api/services").json()["data"]
    operations = view.get(f"/api/services/{service}/operations").json()["data"]
    assert sorted(operations) == sorted([ROOT, CLIENT, INTERNAL])
    found = view.get("/api/traces", service=service, limit="20").json()["data"]
    assert [t["traceID"] for t in found] == [sent.trace_id]
    errors_only = view.get("/api/traces", service=service, tags='{"error":"true"}').json()
    assert [t["traceID"] for t in errors_only["data"]] == [sent.trace_id]

    search_page = view.get("/", service=service)
    assert search_page.status_code == 200
    assert f'href="/trace/{sent.trace_id}"' in search_page.text

    page = view.get(f"/trace/{sent.trace_id}")
    assert page.status_code == 200
    assert ROOT in page.text
    assert service in page.text
    # the page's waterfall data (its layout is the UI's own business: only check that
    # every span is in it, by name and id, with the client's error message)
    figure = view.get(f"/trace/{sent.trace_id}/waterfall.json")
    assert figure.status_code == 200
    texts = " ".join(strings_in(figure.json()))
    ids = sent.span_ids
    for text in (ROOT, CLIENT, INTERNAL, ids["root"], ids["client"], ids["internal"]):
        assert text in texts
    assert "connection reset by peer" in texts
    details = view.get(f"/trace/{sent.trace_id}/spans/{ids['root']}.json").json()
    assert details["links"] == [
        {
            "traceId": sent.link["traceId"],
            "spanId": sent.link["spanId"],
            "stored": "none",  # the linked trace was never sent here: "not stored"
            "url": "",
            "name": "",
            "service": "",
            "attributes": [["messaging.message.id", "msg-42"]],
        }
    ]
    assert ["app.tags", ["red", "green", "blue"]] in details["attributes"]


def _service(prefix: str, protocol: str, compression: str | None = None) -> str:
    return f"{prefix}-{protocol.replace('/', '-')}" + (f"-{compression}" if compression else "")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_js_sdk_trace_arrives_whole(view: View, protocol: str) -> None:
    node = node_executable()
    service = _service("node", protocol)
    sent = send_spans(node, view, protocol, service)
    assert sent.returncode == 0, sent.stderr
    assert "export failed" not in sent.stderr
    assert_stored_whole(view, sent, service)
    assert_in_jaeger_api(view, sent, service)
    assert_found_and_rendered(view, sent, service)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_js_sdk_gzip_from_standard_env_variable(view: View, protocol: str) -> None:
    node = node_executable()
    service = _service("node", protocol, "gzip")
    sent = send_spans(node, view, protocol, service, compression="gzip")
    assert sent.returncode == 0, sent.stderr
    assert_stored_whole(view, sent, service)


# what the JS SDK reports when the receiver refuses the token: the HTTP status
# (OTLPExporterError code 401; the reason phrase's case is the server's choice) or the
# gRPC status (16, UNAUTHENTICATED); compared case-insensitively
REFUSED = {
    "http/protobuf": "export failed: otlpexportererror code=401 unauthorized",
    "http/json": "export failed: otlpexportererror code=401 unauthorized",
    "grpc": "code=16 16 unauthenticated: missing or wrong bearer token",
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_js_sdk_with_and_without_token(token_view: View, protocol: str) -> None:
    node = node_executable()
    refused_service = _service("refused", protocol)
    refused = send_spans(node, token_view, protocol, refused_service)
    assert refused.returncode == 1, refused.stderr
    assert REFUSED[protocol] in refused.stderr.lower()
    wrong = send_spans(node, token_view, protocol, refused_service, "not-the-token")
    assert wrong.returncode == 1, wrong.stderr
    assert REFUSED[protocol] in wrong.stderr.lower()
    assert read_trace(token_view, refused.trace_id) == []
    assert read_trace(token_view, wrong.trace_id) == []

    service = _service("token", protocol)
    sent = send_spans(node, token_view, protocol, service, TOKEN)
    assert sent.returncode == 0, sent.stderr
    assert_stored_whole(token_view, sent, service)
    assert_found_and_rendered(token_view, sent, service)
    services = token_view.get("/api/services").json()["data"]
    assert refused_service not in services
    assert service in services
