"""This project's rules for otel-collector.yaml: what the collector accepts but we forbid.

The collector judges all it can (tests/ops/test_collector.py: ``validate`` on the file
and on every broken copy, ``print-config``, runs on 127.0.0.1). What it accepts either
way is checked here:

- environment references only as ``${env:NAME}`` or ``${env:NAME:-default}`` (a bare
  ``$NAME`` stays literal text in 0.161: New Relic would get ``$NEW_RELIC_LICENSE_KEY``
  as the key);
- ``memory_limiter`` first and ``batch`` last in every pipeline; every traces pipeline
  masks secrets (redaction) and drops ``/up`` spans by ``url.path`` and ``http.target``,
  its filters with ``error_mode: ignore``;
- the New Relic pipeline starts, after ``memory_limiter``, with the key guard: one
  span condition reading ``NEW_RELIC_LICENSE_KEY`` and nothing else, true (drop every
  span) while the key is unset or empty and false once it is set; no other pipeline
  has it;
- every component defined is used, every extension enabled;
- addresses: each one a ``CVTRACE_COLLECTOR_*`` variable, whose default is what compose
  needs (receivers, health check and metrics on 0.0.0.0, metrics on 8888, pprof and
  zpages on loopback, Jaeger at a compose service's 4317 in plaintext);
- New Relic's exporter: OTLP/HTTP, its origin from ``NEW_RELIC_OTLP_ENDPOINT`` with a
  New Relic host by default (no ``/v1/traces``), the key as ``api-key``, gzip,
  retries, a queue, and values cut to 4095 characters on the way.

The checker reads the file as written, for the rules about its text, and as the
collector itself resolves it (``print-config``), for what the rules are about once
expanded: the addresses compose gets (no variable set) and the key guard with the key
unset, empty and set. The broken copies it must catch are the rows of
tests/ops/broken_configs.py that the collector accepts.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.binaries import Binaries, resolved_config
from tests.ops.broken_configs import BROKEN_COLLECTOR_CONFIGS, NR_PROCESSORS, BrokenConfig
from tests.ops.files import (
    COLLECTOR_CONFIG,
    COMPOSE_FILE,
    ENV_REFERENCE,
    NEW_RELIC_KEY,
    SAMPLE_LICENSE_KEY,
    host_port,
    load_compose_file,
    load_yaml,
    strings,
)

pytestmark = pytest.mark.slow  # the collector resolves every copy

HAND_CHECKED = [case for case in BROKEN_COLLECTOR_CONFIGS if case.checker_says is not None]
NEW_RELIC_HOSTS = {"otlp.nr-data.net", "otlp.eu01.nr-data.net", "gov-otlp.nr-data.net"}
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]"}
ADDRESS_VARIABLE = re.compile(r"\$\{env:CVTRACE_COLLECTOR_[A-Z_]+:-[^}]+\}")
# (what the environment is, the environment, must the key guard drop every span?)
KEY_STATES: dict[str, tuple[dict[str, str], bool]] = {
    "the key unset": ({}, True),
    "the key set but empty": ({NEW_RELIC_KEY: ""}, True),
    "a key set": ({NEW_RELIC_KEY: SAMPLE_LICENSE_KEY}, False),
}
# The guard once the collector has put the key in: two string literals compared. Keys
# are letters and digits (New Relic's are); one with a quote or backslash makes the
# collector refuse the whole config (tests/ops/test_collector.py checks that).
LITERAL_COMPARISON = re.compile(r'(not\s+)?"([A-Za-z0-9]*)"\s*(==|!=)\s*"([A-Za-z0-9]*)"')


def evaluate_guard(condition: str) -> bool | None:
    """The value of an expanded key guard (``"KEY" == ""`` and its variants); None: other."""
    match = LITERAL_COMPARISON.fullmatch(condition.strip())
    if match is None:
        return None
    negation, left, operator, right = match.groups()
    result = (left == right) == (operator == "==")
    return not result if negation else result


def env_syntax_problems(config: Any) -> list[str]:
    """List strings that use ``$`` other than as ``${env:NAME}``/``${env:NAME:-default}``."""
    problems = []
    for path, text in strings(config):
        rest = ENV_REFERENCE.sub("", text).replace("$$", "")
        if "$" in rest:
            problems.append(
                f"{path}: {text!r} uses $ outside ${{env:NAME}} or ${{env:NAME:-default}} "
                "(the collector leaves a bare $NAME as it is, and reads ${NAME} only by "
                "default; write ${env:NAME}, or $$ for a literal $)"
            )
    return problems


def _type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def _reads_key(settings: Any) -> bool:
    return any(
        match.group(1) == NEW_RELIC_KEY
        for _path, text in strings(settings)
        for match in ENV_REFERENCE.finditer(text)
    )


def key_guard_problems(
    pipeline_id: str,
    processors: list[str],
    config: dict[str, Any],
    resolved: Mapping[str, dict[str, Any]],
) -> list[str]:
    """Check the key guard of a pipeline that exports to New Relic.

    Without it, a stack with no key sends every batch to New Relic and logs a 401 for
    each; inverted, a stack with a key sends nothing.
    """
    guard_id = processors[1] if len(processors) > 1 else ""
    settings = (config.get("processors") or {}).get(guard_id) or {}
    if _type(guard_id) != "filter" or not _reads_key(settings):
        return [
            f"pipeline {pipeline_id} sends to New Relic, so it must start with the key "
            f"guard: a filter right after memory_limiter that reads {NEW_RELIC_KEY} and "
            f"drops every span while it is empty; got {processors}"
        ]
    traces = settings.get("traces") or {}
    conditions = [str(c) for c in (traces.get("span") or [])]
    others = sorted({*traces} - {"span"})
    if len(conditions) != 1 or others:
        return [
            f"processors.{guard_id}: the key guard must be one traces.span condition "
            f"and nothing else, got {conditions} and {others}"
        ]
    names = sorted({m.group(1) for m in ENV_REFERENCE.finditer(conditions[0])})
    if names != [NEW_RELIC_KEY]:
        return [
            f"processors.{guard_id}: the key guard must read ${{env:{NEW_RELIC_KEY}:-}}, "
            f"and only it; it reads {names}"
        ]
    problems = []
    for label, (_environment, must_drop) in KEY_STATES.items():
        [expanded] = resolved[label]["processors"][guard_id]["traces"]["span"]
        drops = evaluate_guard(expanded)
        if drops is None:
            return [
                f"processors.{guard_id}: cannot check the key guard {conditions[0]!r}; write "
                f'it as \'"${{env:{NEW_RELIC_KEY}:-}}" == ""\''
            ]
        if must_drop and not drops:
            problems.append(
                f"processors.{guard_id}: with {label} the key guard lets spans through, "
                "and New Relic answers 401 to every batch"
            )
        elif drops and not must_drop:
            problems.append(
                f"processors.{guard_id}: with {label} the key guard drops every span, "
                "so New Relic gets nothing"
            )
    return problems


def _drops_health_checks(settings: dict[str, Any]) -> bool:
    conditions = [str(c) for c in ((settings.get("traces") or {}).get("span") or [])]
    by_url_path = any("url.path" in c and "/up" in c for c in conditions)
    by_http_target = any("http.target" in c and "/up" in c for c in conditions)
    return by_url_path and by_http_target


def _truncated_contexts(settings: dict[str, Any], limit: int) -> set[str]:
    """The OTTL contexts in which a transform cuts every attribute to ``limit``."""
    contexts = set()
    for group in settings.get("trace_statements") or []:
        context = str(group.get("context"))
        for statement in group.get("statements") or []:
            pattern = rf"truncate_all\(({re.escape(context)}\.)?attributes,\s*{limit}\)"
            if re.fullmatch(pattern, str(statement).strip()):
                contexts.add(context)
    return contexts


def pipeline_problems(config: dict[str, Any], resolved: Mapping[str, dict[str, Any]]) -> list[str]:
    """Processor order, scrubbing, health-check filtering and the key guard, per pipeline."""
    problems: list[str] = []
    processors_defined = config.get("processors") or {}
    for pipeline_id, pipeline in ((config.get("service") or {}).get("pipelines") or {}).items():
        processors = list((pipeline or {}).get("processors") or [])
        types = [_type(p) for p in processors]
        if not types or types[0] != "memory_limiter":
            problems.append(
                f"pipeline {pipeline_id}: memory_limiter must be the first processor, "
                f"got {processors}"
            )
        if not types or types[-1] != "batch":
            problems.append(
                f"pipeline {pipeline_id}: batch must be the last processor, got {processors}"
            )
        if _type(pipeline_id) != "traces":
            continue
        if "redaction" not in types:
            problems.append(f"pipeline {pipeline_id}: no redaction processor masks secrets")
        filters = [processors_defined.get(p) or {} for p in processors if _type(p) == "filter"]
        if not any(_drops_health_checks(f) for f in filters):
            problems.append(
                f"pipeline {pipeline_id}: no filter drops /up health-check spans by both "
                "url.path and http.target"
            )
        for settings in filters:
            if settings.get("error_mode") != "ignore":
                problems.append(
                    f"pipeline {pipeline_id}: a filter without error_mode: ignore drops "
                    "the whole batch when one condition fails to evaluate"
                )
        if any("newrelic" in e for e in (pipeline or {}).get("exporters") or []):
            problems += key_guard_problems(pipeline_id, processors, config, resolved)
        else:
            for name in processors:
                if _reads_key(processors_defined.get(name)):
                    problems.append(
                        f"pipeline {pipeline_id} does not send to New Relic but its "
                        f"{name} reads {NEW_RELIC_KEY}: the key guard belongs in the New "
                        "Relic pipeline only (here it would drop everything without a key)"
                    )
    return problems


def unused_problems(config: dict[str, Any]) -> list[str]:
    """Components that no pipeline uses, extensions that are not enabled."""
    service = config.get("service") or {}
    used = {
        name
        for pipeline in (service.get("pipelines") or {}).values()
        for role in ("receivers", "processors", "exporters")
        for name in (pipeline or {}).get(role) or []
    }
    problems = [
        f"{kind}.{name} is defined but no pipeline uses it"
        for kind in ("receivers", "processors", "exporters", "connectors")
        for name in sorted(set(config.get(kind) or {}) - used)
    ]
    enabled = set(service.get("extensions") or [])
    problems += [
        f"extensions.{name} is defined but not enabled in service.extensions"
        for name in sorted(set(config.get("extensions") or {}) - enabled)
    ]
    if "health_check" not in {_type(e) for e in enabled}:
        problems.append("no health_check extension is enabled")
    return problems


def address_problems(config: dict[str, Any], compose: dict[str, Any]) -> list[str]:
    """Every address a variable, whose default (what compose gets) suits the compose network.

    Args:
        config: the file as written.
        compose: the collector's resolution of it with no variable set.
    """
    problems: list[str] = []
    raw: list[tuple[str, Any]] = []
    for receiver_id, settings in (config.get("receivers") or {}).items():
        protocols = (settings or {}).get("protocols") or {}
        for protocol, proto_settings in protocols.items():
            raw.append(
                (
                    f"receivers.{receiver_id}.protocols.{protocol}.endpoint",
                    (proto_settings or {}).get("endpoint"),
                )
            )
    for extension_id, settings in (config.get("extensions") or {}).items():
        raw.append((f"extensions.{extension_id}.endpoint", (settings or {}).get("endpoint")))
    for exporter_id, settings in (config.get("exporters") or {}).items():
        if "newrelic" not in exporter_id:  # New Relic's has a variable of its own
            raw.append((f"exporters.{exporter_id}.endpoint", (settings or {}).get("endpoint")))
    readers = (((config.get("service") or {}).get("telemetry") or {}).get("metrics") or {}).get(
        "readers"
    ) or []
    for index, reader in enumerate(readers):
        prometheus = ((reader.get("pull") or {}).get("exporter") or {}).get("prometheus") or {}
        for key in ("host", "port"):
            raw.append(
                (
                    f"service.telemetry.metrics.readers[{index}]...prometheus.{key}",
                    prometheus.get(key),
                )
            )
    for path, value in raw:
        if not ADDRESS_VARIABLE.fullmatch(str(value)):
            problems.append(
                f"{path} is {value!r}, not a ${{env:CVTRACE_COLLECTOR_...:-default}}: one "
                "machine cannot move it without editing the file"
            )

    for receiver_id, settings in (compose.get("receivers") or {}).items():
        for protocol, proto_settings in ((settings or {}).get("protocols") or {}).items():
            endpoint = str((proto_settings or {}).get("endpoint", ""))
            if host_port(endpoint)[0] != "0.0.0.0":
                problems.append(
                    f"receivers.{receiver_id}.protocols.{protocol}.endpoint is {endpoint} in "
                    "compose: other containers cannot reach it; bind 0.0.0.0"
                )
    for extension_id, settings in (compose.get("extensions") or {}).items():
        endpoint = str((settings or {}).get("endpoint", ""))
        host = host_port(endpoint)[0]
        if _type(extension_id) == "health_check" and host != "0.0.0.0":
            problems.append(
                f"extensions.{extension_id}.endpoint is {endpoint} in compose: the published "
                "health-check port needs 0.0.0.0"
            )
        if _type(extension_id) in {"pprof", "zpages"} and host not in LOOPBACK_HOSTS:
            problems.append(
                f"extensions.{extension_id}.endpoint is {endpoint} in compose: debugging "
                "endpoints must stay on loopback"
            )
    readers = compose["service"]["telemetry"]["metrics"].get("readers") or []
    prometheus = [
        ((r.get("pull") or {}).get("exporter") or {}).get("prometheus") or {} for r in readers
    ]
    if not any(
        str(p.get("host")) == "0.0.0.0" and str(p.get("port")) == "8888" for p in prometheus
    ):
        problems.append(
            "service.telemetry.metrics must serve Prometheus on 0.0.0.0:8888 in compose, "
            "where the runbook reads dropped-span counts"
        )
    return problems


def exporter_problems(
    config: dict[str, Any], compose: dict[str, Any], compose_services: set[str]
) -> list[str]:
    """Jaeger's and New Relic's exporters, as written and as compose resolves them."""
    problems: list[str] = []
    exporters = config.get("exporters") or {}
    jaeger = [e for e in exporters if "jaeger" in e]
    if not jaeger:
        problems.append("no exporter sends to Jaeger")
    for exporter_id in jaeger:
        settings = compose["exporters"][exporter_id]
        host, port = host_port(str(settings.get("endpoint", "")))
        if _type(exporter_id) != "otlp_grpc" or port != "4317":
            problems.append(f"exporters.{exporter_id}: send OTLP/gRPC to Jaeger on port 4317")
        if host not in compose_services:
            problems.append(
                f"exporters.{exporter_id}.endpoint host {host!r} is not a compose service "
                f"({sorted(compose_services)})"
            )
        if ((settings.get("tls") or {}).get("insecure")) is not True:
            problems.append(
                f"exporters.{exporter_id}: Jaeger in compose speaks plaintext; set tls.insecure"
            )
    pipelines = (config.get("service") or {}).get("pipelines") or {}
    for exporter_id, settings in exporters.items():
        if "newrelic" not in exporter_id:
            continue
        settings = settings or {}
        resolved = compose["exporters"][exporter_id]
        endpoint = str(settings.get("endpoint", ""))
        default = re.fullmatch(r"\$\{env:NEW_RELIC_OTLP_ENDPOINT:-(https://[^}]+)\}", endpoint)
        if _type(exporter_id) != "otlp_http":
            problems.append(f"exporters.{exporter_id}: New Relic recommends OTLP/HTTP")
        if default is None:
            problems.append(
                f"exporters.{exporter_id}.endpoint must be "
                "${env:NEW_RELIC_OTLP_ENDPOINT:-https://otlp.nr-data.net}"
            )
        elif default.group(1).rstrip("/").endswith("/v1/traces"):
            problems.append(
                f"exporters.{exporter_id}.endpoint ends in /v1/traces: the exporter appends "
                "it, so New Relic would get /v1/traces/v1/traces"
            )
        elif host_port(default.group(1))[0] not in NEW_RELIC_HOSTS:
            problems.append(f"exporters.{exporter_id}.endpoint is not a New Relic OTLP host")
        if (settings.get("headers") or {}).get("api-key") != "${env:NEW_RELIC_LICENSE_KEY:-}":
            problems.append(
                f"exporters.{exporter_id}.headers.api-key must be ${{env:NEW_RELIC_LICENSE_KEY:-}}"
            )
        # Resolved: the collector's defaults count (gzip is its default since 0.x).
        if resolved.get("compression") != "gzip":
            problems.append(f"exporters.{exporter_id}.compression must be gzip")
        if (resolved.get("retry_on_failure") or {}).get("enabled") is not True:
            problems.append(f"exporters.{exporter_id}: enable retry_on_failure (429, 5xx)")
        if not resolved.get("sending_queue"):  # resolved, a queue turned off is null
            problems.append(f"exporters.{exporter_id}: enable sending_queue")
        for pipeline_id, pipeline in pipelines.items():
            if exporter_id not in ((pipeline or {}).get("exporters") or []):
                continue
            truncated: set[str] = set()
            for name in (pipeline or {}).get("processors") or []:
                if _type(name) == "transform":
                    truncated |= _truncated_contexts(config["processors"].get(name) or {}, 4095)
            if not {"span", "resource"} <= truncated:
                problems.append(
                    f"pipeline {pipeline_id}: sends to New Relic without a transform that "
                    "truncates span and resource attributes to 4095 characters"
                )
    return problems


def policy_problems(
    config: dict[str, Any],
    resolved: Mapping[str, dict[str, Any]],
    compose_services: set[str],
) -> list[str]:
    """Every rule above, on a config as written and as the collector resolves it.

    Args:
        config: the file as written.
        resolved: the collector's resolution of it for each of :data:`KEY_STATES`;
            "the key unset" is also what compose gets for every address.
        compose_services: service names of compose.yaml, which Jaeger's endpoint names.

    Returns:
        One sentence per problem; empty when the config keeps every rule.
    """
    compose = resolved["the key unset"]
    return (
        env_syntax_problems(config)
        + pipeline_problems(config, resolved)
        + unused_problems(config)
        + address_problems(config, compose)
        + exporter_problems(config, compose, compose_services)
    )


def resolutions(binaries: Binaries, path: Path) -> dict[str, dict[str, Any]]:
    """The collector's resolution of a config file for each state of the key."""
    return {
        label: resolved_config(binaries, path, environment)
        for label, (environment, _must_drop) in KEY_STATES.items()
    }


@pytest.fixture(scope="module")
def compose_services() -> set[str]:
    return set(load_compose_file(COMPOSE_FILE)["services"])


class TestCollectorPolicy:
    def test_shipped_config_keeps_every_rule(
        self, binaries: Binaries, compose_services: set[str]
    ) -> None:
        config = load_yaml(COLLECTOR_CONFIG)
        resolved = resolutions(binaries, COLLECTOR_CONFIG)
        assert policy_problems(config, resolved, compose_services) == []
        pipelines = config["service"]["pipelines"]
        assert set(pipelines) == {"traces", "traces/newrelic"}
        assert pipelines["traces"]["exporters"] == ["otlp_grpc/jaeger", "otlp_http/viewer"]
        assert pipelines["traces/newrelic"]["exporters"] == ["otlp_http/newrelic"]
        assert pipelines["traces/newrelic"]["processors"] == NR_PROCESSORS

    @pytest.mark.parametrize("case", HAND_CHECKED, ids=[case.mistake for case in HAND_CHECKED])
    def test_broken_copy_is_caught(
        self, binaries: Binaries, compose_services: set[str], tmp_path: Path, case: BrokenConfig
    ) -> None:
        broken = copy.deepcopy(load_yaml(COLLECTOR_CONFIG))
        case.mutate(broken)
        path = tmp_path / "otel-collector.yaml"
        path.write_text(yaml.safe_dump(broken, sort_keys=False), encoding="utf-8")
        problems = policy_problems(broken, resolutions(binaries, path), compose_services)
        assert case.checker_says is not None
        assert any(case.checker_says in p for p in problems), (case.mistake, problems)

    def test_env_syntax(self) -> None:
        assert (
            env_syntax_problems({"a": "${env:A}", "b": "x${env:B:-http://h:1}y", "c": "$$5"}) == []
        )
        for bad in ("$A", "${A}", "${A:-x}", "${env:}", "${env:A", "cost: $5"):
            assert env_syntax_problems({"k": bad}), bad

    def test_guard_evaluation(self) -> None:
        assert evaluate_guard('"" == ""') is True
        assert evaluate_guard(f'"{SAMPLE_LICENSE_KEY}" == ""') is False
        assert evaluate_guard('"a" != ""') is True
        assert evaluate_guard('not "a" == "b"') is True
        assert evaluate_guard('IsMatch("", "^$")') is None
