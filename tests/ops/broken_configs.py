"""Deliberately broken copies of otel-collector.yaml, and who catches each one.

Each row is one mistake that people commonly make, applied to a copy of the shipped
config. The collector itself is the first judge (tests/ops/test_collector.py):
``collector_says`` is the text of the error with which ``otelcol-cvtrace validate``
rejects the copy, ``collector_warns`` the warning it logs when it runs it, and the
test asserts that a copy with neither is accepted, so that a release that starts
rejecting one shows up and the row can move to the collector. What it accepts is a
valid config that breaks one of this project's rules (memory_limiter first, the New
Relic key guard, the addresses compose needs, ...): ``checker_says`` is the problem
that tests/ops/test_collector_policy.py must report for it, None where the collector
judges already.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Mutation = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class BrokenConfig:
    """One broken copy of otel-collector.yaml."""

    mistake: str
    """What a person got wrong."""
    mutate: Mutation
    """How: applied to a deep copy of the parsed config."""
    checker_says: str | None
    """Text that the project's rules must report; None: the collector judges it."""
    collector_says: str | None = None
    """Text of the error with which ``otelcol validate`` rejects it; None: it accepts it."""
    collector_warns: str | None = None
    """Text of the warning the collector logs when it runs the copy."""


def set_at(path: str, value: Any) -> Mutation:
    """Return a mutation that sets a dotted path (list items as [n]) to value."""

    def mutate(config: dict[str, Any]) -> None:
        parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
        target: Any = config
        for part in parts[:-1]:
            target = target[int(part[1:-1])] if part.startswith("[") else target[part]
        last = parts[-1]
        if last.startswith("["):
            target[int(last[1:-1])] = value
        else:
            target[last] = value

    return mutate


def delete_at(path: str) -> Mutation:
    """Return a mutation that deletes the key at a dotted path."""

    def mutate(config: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = config
        for part in parents:
            target = target[part]
        del target[last]

    return mutate


def chain(*mutations: Mutation) -> Mutation:
    """Return a mutation that applies the given ones in order."""

    def mutate(config: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(config)

    return mutate


BASE_PIPELINE = "service.pipelines.traces"
NR_PIPELINE = "service.pipelines.traces/newrelic"

GUARD = "processors.filter/newrelic_key_guard"
NR_PROCESSORS = [
    "memory_limiter",
    "filter/newrelic_key_guard",
    "filter/healthcheck",
    "redaction",
    "transform/newrelic",
    "batch/newrelic",
]


BROKEN_COLLECTOR_CONFIGS = [
    BrokenConfig(
        "pipeline names an undefined processor",
        set_at(
            f"{BASE_PIPELINE}.processors",
            ["memory_limiter", "filter/healthcheck", "redaction", "tail_sampling", "batch"],
        ),
        None,
        collector_says='references processor "tail_sampling" which is not configured',
    ),
    BrokenConfig(
        "batch before memory_limiter",
        set_at(
            f"{BASE_PIPELINE}.processors",
            ["batch", "filter/healthcheck", "redaction", "memory_limiter"],
        ),
        "memory_limiter must be the first processor",
    ),
    BrokenConfig(
        "batch not last",
        set_at(
            f"{BASE_PIPELINE}.processors",
            ["memory_limiter", "batch", "filter/healthcheck", "redaction"],
        ),
        "batch must be the last processor",
    ),
    BrokenConfig(
        "a pipeline without exporters",
        set_at(f"{BASE_PIPELINE}.exporters", []),
        None,
        collector_says="service::pipelines::traces: must have at least one exporter",
    ),
    BrokenConfig(
        "a defined exporter that no pipeline uses",
        set_at("exporters.debug", {"verbosity": "basic"}),
        "exporters.debug is defined but no pipeline uses it",
    ),
    BrokenConfig(
        "an extension defined but not enabled",
        set_at("service.extensions", ["health_check", "pprof"]),
        "extensions.zpages is defined but not enabled",
    ),
    BrokenConfig(
        "the removed logging exporter",
        chain(
            set_at("exporters.logging", {}),
            set_at(
                f"{BASE_PIPELINE}.exporters", ["otlp_grpc/jaeger", "otlp_http/viewer", "logging"]
            ),
        ),
        None,
        collector_says="the logging exporter has been deprecated, use the debug exporter instead",
    ),
    BrokenConfig(
        "the removed jaeger exporter",
        chain(
            set_at("exporters.jaeger", {"endpoint": "jaeger:14250"}),
            set_at(f"{BASE_PIPELINE}.exporters", ["jaeger", "otlp_http/viewer"]),
        ),
        None,
        collector_says='unknown type: "jaeger" for id: "jaeger"',
    ),
    BrokenConfig(
        "a deprecated exporter alias",
        chain(
            set_at("exporters.otlphttp/extra", {"endpoint": "http://viewer:4318"}),
            set_at(
                f"{BASE_PIPELINE}.exporters",
                ["otlp_grpc/jaeger", "otlp_http/viewer", "otlphttp/extra"],
            ),
        ),
        None,
        collector_warns='"otlphttp" alias is deprecated; use "otlp_http" instead',
    ),
    BrokenConfig(
        "a bare $VAR",
        set_at("exporters.otlp_http/newrelic.headers.api-key", "$NEW_RELIC_LICENSE_KEY"),
        "uses $ outside ${env:NAME}",
    ),
    BrokenConfig(
        "a ${VAR} without env:",
        set_at(
            "exporters.otlp_http/viewer.headers.Authorization", "Bearer ${CVTRACE_VIEWER_TOKEN}"
        ),
        "uses $ outside ${env:NAME}",
    ),
    BrokenConfig(
        "a receiver left on the localhost default",
        set_at("receivers.otlp.protocols.grpc", None),
        "other containers cannot reach it",
    ),
    BrokenConfig(
        "a receiver bound to localhost",
        set_at(
            "receivers.otlp.protocols.http.endpoint",
            "${env:CVTRACE_COLLECTOR_OTLP_HTTP_ENDPOINT:-localhost:4318}",
        ),
        "other containers cannot reach it",
    ),
    BrokenConfig(
        "pprof on all interfaces",
        set_at(
            "extensions.pprof.endpoint", "${env:CVTRACE_COLLECTOR_PPROF_ENDPOINT:-0.0.0.0:1777}"
        ),
        "debugging endpoints must stay on loopback",
    ),
    BrokenConfig(
        "zpages on its default",
        set_at("extensions.zpages", None),
        "extensions.zpages.endpoint is None, not a ${env:CVTRACE_COLLECTOR_",
    ),
    BrokenConfig(
        "health check on loopback",
        set_at(
            "extensions.health_check.endpoint",
            "${env:CVTRACE_COLLECTOR_HEALTH_ENDPOINT:-localhost:13133}",
        ),
        "the published health-check port needs 0.0.0.0",
    ),
    BrokenConfig(
        "an address written out, which one machine cannot move",
        set_at("extensions.health_check.endpoint", "0.0.0.0:13133"),
        "extensions.health_check.endpoint is '0.0.0.0:13133', not a ${env:CVTRACE_COLLECTOR_",
    ),
    BrokenConfig(
        "Jaeger's endpoint written out",
        set_at("exporters.otlp_grpc/jaeger.endpoint", "jaeger:4317"),
        "exporters.otlp_grpc/jaeger.endpoint is 'jaeger:4317', not a ${env:CVTRACE_COLLECTOR_",
    ),
    BrokenConfig(
        "New Relic endpoint with /v1/traces",
        set_at(
            "exporters.otlp_http/newrelic.endpoint",
            "${env:NEW_RELIC_OTLP_ENDPOINT:-https://otlp.nr-data.net/v1/traces}",
        ),
        "ends in /v1/traces",
    ),
    BrokenConfig(
        "New Relic endpoint hard-coded",
        set_at("exporters.otlp_http/newrelic.endpoint", "https://otlp.nr-data.net"),
        "endpoint must be ${env:NEW_RELIC_OTLP_ENDPOINT",
    ),
    BrokenConfig(
        "New Relic key in the wrong header",
        set_at(
            "exporters.otlp_http/newrelic.headers",
            {"Authorization": "${env:NEW_RELIC_LICENSE_KEY}"},
        ),
        "headers.api-key must be",
    ),
    BrokenConfig(
        # Not the line deleted: gzip is the exporter's default (print-config shows it).
        "New Relic without compression",
        set_at("exporters.otlp_http/newrelic.compression", "none"),
        "compression must be gzip",
    ),
    BrokenConfig(
        "New Relic without a queue",
        set_at("exporters.otlp_http/newrelic.sending_queue.enabled", False),
        "enable sending_queue",
    ),
    BrokenConfig(
        "New Relic without retries",
        set_at("exporters.otlp_http/newrelic.retry_on_failure.enabled", False),
        "enable retry_on_failure",
    ),
    BrokenConfig(
        "New Relic without the 4095 truncation",
        set_at(
            f"{NR_PIPELINE}.processors",
            [p for p in NR_PROCESSORS if p != "transform/newrelic"],
        ),
        "truncates span and resource attributes to 4095",
    ),
    BrokenConfig(
        "truncation to the wrong length",
        set_at(
            "processors.transform/newrelic.trace_statements[1].statements",
            ["truncate_all(attributes, 4096)"],
        ),
        "truncates span and resource attributes to 4095",
    ),
    BrokenConfig(
        "health-check filter on url.path only",
        set_at("processors.filter/healthcheck.traces.span", ['attributes["url.path"] == "/up"']),
        "no filter drops /up health-check spans",
    ),
    BrokenConfig(
        "filter propagating errors",
        delete_at("processors.filter/healthcheck.error_mode"),
        "without error_mode: ignore",
    ),
    BrokenConfig(
        "no scrubbing processor",
        set_at(f"{BASE_PIPELINE}.processors", ["memory_limiter", "filter/healthcheck", "batch"]),
        "no redaction processor masks secrets",
    ),
    BrokenConfig(
        "Jaeger endpoint host that is no compose service",
        set_at(
            "exporters.otlp_grpc/jaeger.endpoint",
            "${env:CVTRACE_COLLECTOR_JAEGER_ENDPOINT:-jaeger-collector:4317}",
        ),
        "is not a compose service",
    ),
    BrokenConfig(
        "Jaeger over TLS it does not speak",
        delete_at("exporters.otlp_grpc/jaeger.tls"),
        "set tls.insecure",
    ),
    BrokenConfig(
        "internal metrics left on localhost",
        set_at(
            "service.telemetry.metrics.readers[0].pull.exporter.prometheus.host",
            "${env:CVTRACE_COLLECTOR_METRICS_HOST:-localhost}",
        ),
        "must serve Prometheus on 0.0.0.0:8888",
    ),
    BrokenConfig(
        "an unknown component type",
        set_at("processors.memory_limitter", {}),
        None,
        collector_says='unknown type: "memory_limitter" for id: "memory_limitter"',
    ),
    BrokenConfig(
        "New Relic pipeline without the key guard",
        chain(
            set_at(f"{NR_PIPELINE}.processors", [p for p in NR_PROCESSORS if "guard" not in p]),
            delete_at(GUARD),
        ),
        "must start with the key guard",
    ),
    BrokenConfig(
        "key guard after another processor",
        set_at(
            f"{NR_PIPELINE}.processors",
            ["memory_limiter", "filter/healthcheck", *NR_PROCESSORS[1:2], *NR_PROCESSORS[3:]],
        ),
        "must start with the key guard",
    ),
    BrokenConfig(
        "key guard inverted",
        set_at(f"{GUARD}.traces.span", ['"${env:NEW_RELIC_LICENSE_KEY:-}" != ""']),
        "with the key unset the key guard lets spans through",
    ),
    BrokenConfig(
        "key guard negated",
        set_at(f"{GUARD}.traces.span", ['not "${env:NEW_RELIC_LICENSE_KEY:-}" == ""']),
        "with a key set the key guard drops every span",
    ),
    BrokenConfig(
        "key guard relying on a default, which an empty key does not trigger",
        set_at(f"{GUARD}.traces.span", ['"${env:NEW_RELIC_LICENSE_KEY:-none}" == "none"']),
        "with the key set but empty the key guard lets spans through",
    ),
    BrokenConfig(
        "key guard reading another variable",
        set_at(f"{GUARD}.traces.span", ['"${env:NEW_RELIC_API_KEY:-}" == ""']),
        "must start with the key guard: a filter right after memory_limiter that reads",
    ),
    BrokenConfig(
        "key guard reading a second variable too",
        set_at(
            f"{GUARD}.traces.span",
            ['"${env:NEW_RELIC_LICENSE_KEY:-}${env:NEW_RELIC_REGION:-}" == ""'],
        ),
        "must read ${env:NEW_RELIC_LICENSE_KEY:-}, and only it",
    ),
    BrokenConfig(
        "key guard on span events, which leaves the spans",
        chain(
            set_at(
                f"{GUARD}.traces.spanevent",
                ['"${env:NEW_RELIC_LICENSE_KEY:-}" == ""'],
            ),
            delete_at(f"{GUARD}.traces.span"),
        ),
        "the key guard must be one traces.span condition and nothing else",
    ),
    BrokenConfig(
        "key guard that cannot be checked",
        set_at(f"{GUARD}.traces.span", ['IsMatch("${env:NEW_RELIC_LICENSE_KEY:-}", "^$")']),
        "cannot check the key guard",
    ),
    BrokenConfig(
        "a misspelled setting",
        set_at("processors.batch.timout", "2s"),
        None,
        collector_says="'batchprocessor.Config' has invalid keys: timout",
    ),
    BrokenConfig(
        "a setting of the wrong type",
        set_at("processors.batch.send_batch_size", "lots"),
        None,
        collector_says="'send_batch_size' expected type 'uint32'",
    ),
    BrokenConfig(
        "an OTTL condition that does not parse",
        set_at("processors.filter/healthcheck.traces.span[0]", 'attributes["url.path"] == "/up'),
        None,
        collector_says="processors::filter/healthcheck: unable to parse OTTL condition",
    ),
    BrokenConfig(
        "an OTTL function that does not exist",
        set_at(
            "processors.transform/newrelic.trace_statements[1].statements",
            ["truncate_al(span.attributes, 4095)"],
        ),
        None,
        collector_says='undefined function "truncate_al"',
    ),
    BrokenConfig(
        "key guard copied into the Jaeger pipeline",
        set_at(
            f"{BASE_PIPELINE}.processors",
            [
                "memory_limiter",
                "filter/newrelic_key_guard",
                "filter/healthcheck",
                "redaction",
                "batch",
            ],
        ),
        "pipeline traces does not send to New Relic but its filter/newrelic_key_guard reads",
    ),
]
