"""Checks on the ops files, made without a Docker engine.

No Docker engine runs here, so these tests know the rules that compose and Docker
apply, and check them on the real files: ``otel-collector.yaml`` (including the New
Relic pipeline and the key guard that keeps it silent without a license key),
``compose.yaml``, ``Dockerfile``, ``.dockerignore``, ``deploy/gunicorn.conf.py`` and the
runbook ``docs/operations.md``. The collector does run here (tests/ops/test_collector.py
builds it and has it judge ``otel-collector.yaml``); its checker below predates that and
still holds the project's own rules, which the collector accepts either way
(tests/ops/broken_configs.py records which).

Each checker is a pure function that returns a list of problems. The real files must
have none, and broken copies of them, each with one mistake that people commonly make,
must each be caught: a checker that catches nothing fails here. Where a real tool can
run, it does: Debian's ``docker-compose`` validates the compose files offline, gunicorn
serves a probe app with the image's settings, and Debian's ``libjemalloc2`` is preloaded
the way the image preloads it.
"""

from __future__ import annotations

import copy
import glob
import io
import json
import os
import posixpath
import re
import runpy
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from docker.utils.build import exclude_paths
from dockerfile_parse import DockerfileParser

# The collector's broken-copy table is shared with tests/ops/test_collector.py, where
# the real collector judges the same copies; its mutations build the tables here too.
from tests.ops.broken_configs import (
    BROKEN_COLLECTOR_CONFIGS,
    NR_PROCESSORS,
    BrokenConfig,
)
from tests.ops.broken_configs import delete_at as _delete
from tests.ops.broken_configs import set_at as _set

# The broken copies this checker is told about (some only the real collector can see).
HAND_CHECKED = [case for case in BROKEN_COLLECTOR_CONFIGS if case.checker_says is not None]

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR_CONFIG = ROOT / "otel-collector.yaml"
COMPOSE_FILE = ROOT / "compose.yaml"
README = ROOT / "README.md"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
RUNBOOK = ROOT / "docs" / "operations.md"

# The component tables below describe this collector-contrib release; compose.yaml must
# pin exactly it, so bumping the image fails here until the tables are reviewed. It is
# also the release deploy/collector builds (tests/ops/test_collector.py checks that).
COLLECTOR_VERSION = "0.161.0"
COLLECTOR_IMAGE = f"otel/opentelemetry-collector-contrib:{COLLECTOR_VERSION}"
JAEGER_IMAGE = re.compile(r"^jaegertracing/jaeger:2\.\d+\.\d+(@sha256:[0-9a-f]{64})?$")
PYTHON_BASE = re.compile(r"^python:3\.\d+\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?$")
NEW_RELIC_HOSTS = {"otlp.nr-data.net", "otlp.eu01.nr-data.net", "gov-otlp.nr-data.net"}
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]"}

# Component types of the contrib distribution that this project may use. Since 0.144
# the OTLP exporters are `otlp_grpc` and `otlp_http`; `otlp`/`otlphttp` still load but
# log a deprecation warning at every start.
KNOWN_TYPES: dict[str, set[str]] = {
    "receivers": {"otlp", "jaeger", "zipkin", "prometheus", "hostmetrics", "filelog", "nop"},
    "processors": {
        "memory_limiter",
        "batch",
        "filter",
        "transform",
        "attributes",
        "redaction",
        "resource",
        "resourcedetection",
        "tail_sampling",
        "probabilistic_sampler",
        "span",
        "groupbytrace",
        "k8sattributes",
    },
    "exporters": {"otlp_grpc", "otlp_http", "debug", "file", "nop", "prometheus", "zipkin"},
    "extensions": {
        "health_check",
        "pprof",
        "zpages",
        "file_storage",
        "basicauth",
        "bearertokenauth",
        "headers_setter",
    },
    "connectors": {"forward", "spanmetrics", "servicegraph", "routing", "count"},
}
REMOVED_TYPES: dict[tuple[str, str], str] = {
    ("exporters", "jaeger"): "removed in 0.85; Jaeger takes OTLP, use otlp_grpc",
    ("exporters", "jaeger_thrift"): "removed in 0.85; Jaeger takes OTLP, use otlp_http",
    ("exporters", "logging"): "removed in 0.111; use debug",
    ("processors", "spanmetrics"): "removed; use the spanmetrics connector",
    ("extensions", "memory_ballast"): "removed; use memory_limiter",
}
DEPRECATED_TYPES: dict[tuple[str, str], str] = {
    ("exporters", "otlp"): "otlp_grpc",
    ("exporters", "otlphttp"): "otlp_http",
}
SECTIONS = ("receivers", "processors", "exporters", "connectors", "extensions")
SIGNALS = {"traces", "metrics", "logs", "profiles"}
# ${env:NAME} or ${env:NAME:-default}: the only expansion the collector config may use.
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
# ${NAME}, ${NAME:-default}, ${NAME:?message}: compose's interpolation.
COMPOSE_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")

# Setting this one variable turns New Relic on; unset or empty, nothing goes there.
NEW_RELIC_KEY = "NEW_RELIC_LICENSE_KEY"
# The shape of a New Relic ingest license key: 40 letters and digits ending in NRAL.
SAMPLE_LICENSE_KEY = "0123456789abcdef0123456789abcdef0123NRAL"
# (what the environment is, the environment, must the key guard drop every span?)
KEY_GUARD_CASES: list[tuple[str, dict[str, str], bool]] = [
    ("the key unset", {}, True),
    ("the key set but empty", {NEW_RELIC_KEY: ""}, True),
    ("a key set", {NEW_RELIC_KEY: SAMPLE_LICENSE_KEY}, False),
]
# The only form compose may pass the key in: empty by default, never required.
COMPOSE_KEY_PASS_THROUGH = re.compile(rf"\$\{{{NEW_RELIC_KEY}:?-\}}")
# OTTL's string literal token (pkg/ottl/grammar.go): a backslash escapes the next
# character; a bare double quote ends the string.
OTTL_STRING = r'"(?:\\.|[^\\"])*"'
LITERAL_COMPARISON = re.compile(rf"(not\s+)?({OTTL_STRING})\s*(==|!=)\s*({OTTL_STRING})")


# --- YAML ----------------------------------------------------------------------------


class UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects a mapping key given twice, as the collector does.

    PyYAML keeps the last of two equal keys without a word, so a pasted block can
    silently replace a component. Keys brought in by a ``<<`` merge may be overridden,
    as YAML allows.
    """


def _construct_unique_mapping(
    loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,  # type: ignore[arg-type]
)


def load_yaml(text: str) -> Any:
    """Parse YAML text, refusing duplicate keys."""
    return yaml.load(text, Loader=UniqueKeyLoader)


def load_yaml_file(path: Path) -> Any:
    """Parse a YAML file, refusing duplicate keys."""
    return load_yaml(path.read_text(encoding="utf-8"))


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield (path, string) for every key and string value in a YAML tree."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}".lstrip("."), str(key)
            yield from _strings(item, f"{path}.{key}".lstrip("."))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


def _host_port(endpoint: str) -> tuple[str, str]:
    """Split ``host:port`` or ``scheme://host:port/path`` into host and port."""
    rest = endpoint.split("://", 1)[-1].split("/", 1)[0]
    if ":" not in rest:
        return rest, ""
    host, _, port = rest.rpartition(":")
    return host, port


# --- collector -----------------------------------------------------------------------


def expand_env(text: str, environment: dict[str, str]) -> str:
    """Expand ``${env:NAME}`` and ``${env:NAME:-default}`` the way the collector does.

    The collector's env provider uses the default only when NAME is unset; a variable
    set to the empty string expands to the empty string (compose passes the key that
    way when it is not given). An unset variable without a default expands to "".
    """

    def value(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environment:
            return environment[name]
        return default[2:] if default is not None else ""

    return ENV_REFERENCE.sub(value, text)


def _ottl_unquote(literal: str) -> str | None:
    """Return an OTTL string literal's value, or None for an escape we do not model."""
    try:
        value = json.loads(literal)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def evaluate_literal_condition(condition: str) -> bool | None:
    """Evaluate an OTTL condition that compares two string literals.

    Handles ``"a" == "b"`` and ``"a" != "b"``, optionally preceded by ``not``: the
    shape of the key guard once the collector has expanded its ``${env:...}``.

    Returns:
        The condition's value, or None when it has any other shape, including one
        the OTTL parser would reject (a stray double quote from the expansion).
    """
    match = LITERAL_COMPARISON.fullmatch(condition.strip())
    if match is None:
        return None
    negation, left, operator, right = match.groups()
    left_value, right_value = _ottl_unquote(left), _ottl_unquote(right)
    if left_value is None or right_value is None:
        return None
    equal = left_value == right_value
    result = equal if operator == "==" else not equal
    return not result if negation else result


def _reads_key(settings: Any) -> bool:
    return any(
        match.group(1) == NEW_RELIC_KEY
        for _path, text in _strings(settings)
        for match in ENV_REFERENCE.finditer(text)
    )


def key_guard_problems(
    pipeline_id: str, processors: list[str], defined: dict[str, Any]
) -> list[str]:
    """Check the key guard of a pipeline that exports to New Relic.

    The guard is the filter right after memory_limiter. Its single span condition,
    once the collector expands NEW_RELIC_LICENSE_KEY into it, must be true (drop the
    span) while the key is unset or empty, and false (keep it) when a key is set.
    Without it, a stack with no key sends every batch to New Relic and logs a 401
    for each; inverted, a stack with a key sends nothing.
    """
    guard_id = processors[1] if len(processors) > 1 else ""
    settings = defined.get(guard_id) or {}
    if _component_type(guard_id) != "filter" or not _reads_key(settings):
        return [
            f"pipeline {pipeline_id} sends to New Relic, so it must start with the key "
            f"guard: a filter right after memory_limiter that reads {NEW_RELIC_KEY} and "
            f"drops every span while it is empty; got {processors}"
        ]
    traces = settings.get("traces") or {}
    conditions = [str(c) for c in (traces.get("span") or [])]
    others = sorted({*traces} - {"span"} | {"trace_conditions", "spans"} & {*settings})
    if len(conditions) != 1 or others:
        return [
            f"processors.{guard_id}: the key guard must be one traces.span condition "
            f"and nothing else, got {conditions} and {others}"
        ]
    condition = conditions[0]
    names = sorted({m.group(1) for m in ENV_REFERENCE.finditer(condition)})
    if names != [NEW_RELIC_KEY]:
        return [
            f"processors.{guard_id}: the key guard must read ${{env:{NEW_RELIC_KEY}:-}}, "
            f"and only it; it reads {names}"
        ]
    problems = []
    for label, environment, must_drop in KEY_GUARD_CASES:
        drops = evaluate_literal_condition(expand_env(condition, environment))
        if drops is None:
            return [
                f"processors.{guard_id}: cannot check the key guard {condition!r}; write "
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


def env_syntax_problems(config: Any) -> list[str]:
    """List strings that use ``$`` other than as ``${env:NAME}``/``${env:NAME:-default}``."""
    problems = []
    for path, text in _strings(config):
        rest = ENV_REFERENCE.sub("", text).replace("$$", "")
        if "$" in rest:
            problems.append(
                f"{path}: {text!r} uses $ outside ${{env:NAME}} or ${{env:NAME:-default}} "
                "(bare $NAME and ${NAME} are not expanded the same way by every collector "
                "version; write ${env:NAME}, or $$ for a literal $)"
            )
    return problems


def env_names_without_default(config: Any) -> set[str]:
    """Return the variables a config reads with no default, which must be set."""
    return {
        match.group(1)
        for _path, text in _strings(config)
        for match in ENV_REFERENCE.finditer(text)
        if match.group(2) is None
    }


def _component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def _filter_drops_health_checks(settings: dict[str, Any]) -> bool:
    conditions = [str(c) for c in ((settings.get("traces") or {}).get("span") or [])]
    by_url_path = any("url.path" in c and "/up" in c for c in conditions)
    by_http_target = any("http.target" in c and "/up" in c for c in conditions)
    return by_url_path and by_http_target


def _transform_truncates(settings: dict[str, Any], limit: int) -> set[str]:
    """Return the OTTL contexts in which a transform truncates all attributes to limit."""
    contexts = set()
    for group in settings.get("trace_statements") or []:
        context = str(group.get("context"))
        for statement in group.get("statements") or []:
            pattern = rf"truncate_all\(({re.escape(context)}\.)?attributes,\s*{limit}\)"
            if re.fullmatch(pattern, str(statement).strip()):
                contexts.add(context)
    return contexts


def collector_problems(
    config: dict[str, Any], *, compose_services: set[str] | None = None
) -> list[str]:
    """Check a collector config the way the collector would, plus this project's rules.

    Args:
        config: the parsed (and, for overlays, merged) configuration.
        compose_services: service names of the compose file, which exporter endpoints
            must name; None skips that check.

    Returns:
        One sentence per problem; empty when the config is sound.
    """
    problems: list[str] = []
    for key in config:
        if key not in (*SECTIONS, "service"):
            problems.append(f"unknown top-level section {key!r}")
    sections: dict[str, dict[str, Any]] = {}
    for kind in SECTIONS:
        defined = config.get(kind) or {}
        if not isinstance(defined, dict):
            problems.append(f"{kind} must be a mapping of component ids")
            defined = {}
        sections[kind] = defined
        for component_id in defined:
            ctype = _component_type(component_id)
            if (kind, ctype) in REMOVED_TYPES:
                problems.append(
                    f"{kind}.{component_id}: type {ctype!r} {REMOVED_TYPES[kind, ctype]}"
                )
            elif (kind, ctype) in DEPRECATED_TYPES:
                problems.append(
                    f"{kind}.{component_id}: type {ctype!r} is deprecated since 0.144, "
                    f"use {DEPRECATED_TYPES[kind, ctype]!r}"
                )
            elif ctype not in KNOWN_TYPES[kind]:
                problems.append(
                    f"{kind}.{component_id}: unknown {kind[:-1]} type {ctype!r} for "
                    f"collector-contrib {COLLECTOR_VERSION}"
                )

    service = config.get("service") or {}
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        problems.append("service.pipelines is empty: the collector would refuse to start")
    used: dict[str, set[str]] = {kind: set() for kind in SECTIONS}
    roles = {
        "receivers": ("receivers", "connectors"),
        "processors": ("processors",),
        "exporters": ("exporters", "connectors"),
    }
    for pipeline_id, pipeline in pipelines.items():
        pipeline = pipeline or {}
        signal = _component_type(pipeline_id)
        if signal not in SIGNALS:
            problems.append(f"pipeline {pipeline_id}: unknown signal {signal!r}")
        for role, kinds in roles.items():
            names = list(pipeline.get(role) or [])
            if role != "processors" and not names:
                problems.append(f"pipeline {pipeline_id} has no {role}")
            for name in sorted({n for n in names if names.count(n) > 1}):
                problems.append(f"pipeline {pipeline_id} lists {role[:-1]} {name!r} twice")
            for name in names:
                owner = next((kind for kind in kinds if name in sections[kind]), None)
                if owner is None:
                    problems.append(
                        f"pipeline {pipeline_id} names {role[:-1]} {name!r}, "
                        f"which is not defined under {role}"
                    )
                else:
                    used[owner].add(name)
        processors = list(pipeline.get("processors") or [])
        types = [_component_type(p) for p in processors]
        if not types or types[0] != "memory_limiter":
            problems.append(
                f"pipeline {pipeline_id}: memory_limiter must be the first processor, "
                f"got {processors}"
            )
        if not types or types[-1] != "batch":
            problems.append(
                f"pipeline {pipeline_id}: batch must be the last processor, got {processors}"
            )
        if signal == "traces":
            if not {"redaction", "attributes"} & set(types):
                problems.append(
                    f"pipeline {pipeline_id}: no redaction/attributes processor scrubs secrets"
                )
            filters = [
                sections["processors"].get(p) or {} for p in processors if p.startswith("filter")
            ]
            if not any(_filter_drops_health_checks(f) for f in filters):
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
            exporter_ids = list(pipeline.get("exporters") or [])
            if any("newrelic" in e for e in exporter_ids):
                problems += key_guard_problems(pipeline_id, processors, sections["processors"])
            else:
                for name in processors:
                    if _reads_key(sections["processors"].get(name)):
                        problems.append(
                            f"pipeline {pipeline_id} does not send to New Relic but its "
                            f"{name} reads {NEW_RELIC_KEY}: the key guard belongs in the New "
                            "Relic pipeline only (here it would drop everything without a key)"
                        )
    for kind in ("receivers", "processors", "exporters", "connectors"):
        for name in sorted(set(sections[kind]) - used[kind]):
            problems.append(f"{kind}.{name} is defined but no pipeline uses it")
    listed = list(service.get("extensions") or [])
    for name in listed:
        if name not in sections["extensions"]:
            problems.append(f"service.extensions names {name!r}, which is not defined")
    for name in sorted(set(sections["extensions"]) - set(listed)):
        problems.append(f"extensions.{name} is defined but not enabled in service.extensions")

    # Network bindings: inside a container, 0.0.0.0 for what others reach, loopback
    # for debugging endpoints. Addresses are ${env:NAME:-default}s whose defaults are
    # what compose gets (it sets none of them), so the defaults are checked.
    for receiver_id, settings in sections["receivers"].items():
        if _component_type(receiver_id) != "otlp":
            continue
        protocols = (settings or {}).get("protocols") or {}
        if not protocols:
            problems.append(f"receivers.{receiver_id} enables no protocol")
        for protocol, proto_settings in protocols.items():
            endpoint = expand_env(str((proto_settings or {}).get("endpoint", "")), {})
            if _host_port(endpoint)[0] != "0.0.0.0":
                problems.append(
                    f"receivers.{receiver_id}.protocols.{protocol}.endpoint is "
                    f"{endpoint or 'unset (localhost since 0.104)'}: other containers cannot "
                    "reach it; bind 0.0.0.0"
                )
    for extension_id, settings in sections["extensions"].items():
        ctype = _component_type(extension_id)
        endpoint = expand_env(str((settings or {}).get("endpoint", "")), {})
        host = _host_port(endpoint)[0]
        if ctype == "health_check" and host != "0.0.0.0":
            problems.append(
                f"extensions.{extension_id}.endpoint is {endpoint or 'unset'}: the published "
                "health-check port needs 0.0.0.0"
            )
        if ctype in {"pprof", "zpages"} and host not in LOOPBACK_HOSTS:
            problems.append(
                f"extensions.{extension_id}.endpoint is {endpoint or 'unset'}: debugging "
                "endpoints must stay on loopback"
            )
    if "health_check" not in {_component_type(e) for e in listed}:
        problems.append("no health_check extension is enabled")
    readers = ((service.get("telemetry") or {}).get("metrics") or {}).get("readers") or []
    prometheus = [
        ((r.get("pull") or {}).get("exporter") or {}).get("prometheus") or {} for r in readers
    ]
    if not any(
        expand_env(str(p.get("host")), {}) == "0.0.0.0"
        and expand_env(str(p.get("port")), {}) == "8888"
        for p in prometheus
    ):
        problems.append(
            "service.telemetry.metrics must serve Prometheus on 0.0.0.0:8888, where the "
            "runbook reads dropped-span counts"
        )

    # Exporters.
    exporters = sections["exporters"]
    jaeger = [e for e in exporters if "jaeger" in e]
    if not jaeger:
        problems.append("no exporter sends to Jaeger")
    for exporter_id in jaeger:
        settings = exporters[exporter_id] or {}
        host, port = _host_port(expand_env(str(settings.get("endpoint", "")), {}))
        if _component_type(exporter_id) != "otlp_grpc" or port != "4317":
            problems.append(f"exporters.{exporter_id}: send OTLP/gRPC to Jaeger on port 4317")
        if compose_services is not None and host not in compose_services:
            problems.append(
                f"exporters.{exporter_id}.endpoint host {host!r} is not a compose service "
                f"({sorted(compose_services)})"
            )
        if (settings.get("tls") or {}).get("insecure") is not True:
            problems.append(
                f"exporters.{exporter_id}: Jaeger in compose speaks plaintext; set tls.insecure"
            )
    for exporter_id, settings in exporters.items():
        if "newrelic" not in exporter_id:
            continue
        settings = settings or {}
        endpoint = str(settings.get("endpoint", ""))
        default = re.fullmatch(r"\$\{env:NEW_RELIC_OTLP_ENDPOINT:-(https://[^}]+)\}", endpoint)
        if _component_type(exporter_id) != "otlp_http":
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
        elif _host_port(default.group(1))[0] not in NEW_RELIC_HOSTS:
            problems.append(f"exporters.{exporter_id}.endpoint is not a New Relic OTLP host")
        headers = settings.get("headers") or {}
        if headers.get("api-key") != "${env:NEW_RELIC_LICENSE_KEY:-}":
            problems.append(
                f"exporters.{exporter_id}.headers.api-key must be ${{env:NEW_RELIC_LICENSE_KEY:-}}"
            )
        if settings.get("compression") != "gzip":
            problems.append(f"exporters.{exporter_id}.compression must be gzip")
        if (settings.get("retry_on_failure") or {}).get("enabled") is not True:
            problems.append(f"exporters.{exporter_id}: enable retry_on_failure (429, 5xx)")
        if (settings.get("sending_queue") or {}).get("enabled") is not True:
            problems.append(f"exporters.{exporter_id}: enable sending_queue")
        for pipeline_id, pipeline in pipelines.items():
            if exporter_id not in ((pipeline or {}).get("exporters") or []):
                continue
            truncated: set[str] = set()
            for name in (pipeline or {}).get("processors") or []:
                if _component_type(name) == "transform":
                    truncated |= _transform_truncates(sections["processors"].get(name) or {}, 4095)
            if not {"span", "resource"} <= truncated:
                problems.append(
                    f"pipeline {pipeline_id}: sends to New Relic without a transform that "
                    "truncates span and resource attributes to 4095 characters"
                )
    return problems + env_syntax_problems(config)


@pytest.fixture(scope="module")
def collector_config() -> dict[str, Any]:
    return load_yaml_file(COLLECTOR_CONFIG)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def compose_services() -> set[str]:
    return set(load_yaml_file(COMPOSE_FILE)["services"])


class TestCollectorConfig:
    """otel-collector.yaml, checked as the collector would, New Relic pipeline included."""

    def test_config_is_sound(
        self, collector_config: dict[str, Any], compose_services: set[str]
    ) -> None:
        assert collector_problems(collector_config, compose_services=compose_services) == []
        pipelines = collector_config["service"]["pipelines"]
        assert set(pipelines) == {"traces", "traces/newrelic"}
        assert pipelines["traces"]["exporters"] == ["otlp_grpc/jaeger", "otlp_http/viewer"]
        assert pipelines["traces/newrelic"]["exporters"] == ["otlp_http/newrelic"]
        assert pipelines["traces/newrelic"]["processors"] == NR_PROCESSORS

    def test_newrelic_exporter_settings(self, collector_config: dict[str, Any]) -> None:
        exporter = collector_config["exporters"]["otlp_http/newrelic"]
        assert exporter["endpoint"] == "${env:NEW_RELIC_OTLP_ENDPOINT:-https://otlp.nr-data.net}"
        assert exporter["headers"] == {"api-key": "${env:NEW_RELIC_LICENSE_KEY:-}"}
        assert exporter["compression"] == "gzip"

    @pytest.mark.parametrize(("label", "environment", "must_drop"), KEY_GUARD_CASES)
    def test_key_guard_follows_the_key(
        self,
        collector_config: dict[str, Any],
        label: str,
        environment: dict[str, str],
        must_drop: bool,
    ) -> None:
        """Expanded as the collector expands it, the guard drops exactly when there is no key."""
        guard = collector_config["processors"]["filter/newrelic_key_guard"]
        [condition] = guard["traces"]["span"]
        expanded = expand_env(condition, environment)
        assert expanded == f'"{environment.get(NEW_RELIC_KEY, "")}" == ""', label
        assert evaluate_literal_condition(expanded) is must_drop, label

    def test_a_key_that_would_break_the_guard_is_not_a_license_key(
        self, collector_config: dict[str, Any]
    ) -> None:
        """A double quote or backslash in the key would make the guard unparsable.

        The collector parses filter conditions when it validates its config, so such a
        key stops it at start-up (loudly, sending nothing). License keys never contain
        either character: they are 40 letters and digits ending in NRAL.
        """
        [condition] = collector_config["processors"]["filter/newrelic_key_guard"]["traces"]["span"]
        assert re.fullmatch(r"[A-Za-z0-9]{36}NRAL", SAMPLE_LICENSE_KEY)
        for bad_key in ('abc"def', "abc\\"):
            expanded = expand_env(condition, {NEW_RELIC_KEY: bad_key})
            assert evaluate_literal_condition(expanded) is None, bad_key

    def test_expansion_and_evaluation_helpers(self) -> None:
        """The helpers follow the collector: a default applies only to an unset variable."""
        assert expand_env("${env:A:-x}|${env:B}|${env:C:-}", {"A": ""}) == "||"
        assert expand_env("${env:A:-x}", {}) == "x"
        assert evaluate_literal_condition('"a" == "a"') is True
        assert evaluate_literal_condition('"a" != "a"') is False
        assert evaluate_literal_condition('not "a" == "b"') is True
        assert evaluate_literal_condition('"a\\"b" == ""') is False  # an escaped quote
        assert evaluate_literal_condition('name == ""') is None
        assert evaluate_literal_condition('"a"b" == ""') is None

    @pytest.mark.parametrize("case", HAND_CHECKED, ids=[case.mistake for case in HAND_CHECKED])
    def test_broken_config_is_caught(
        self, collector_config: dict[str, Any], compose_services: set[str], case: BrokenConfig
    ) -> None:
        broken = copy.deepcopy(collector_config)
        case.mutate(broken)
        problems = collector_problems(broken, compose_services=compose_services)
        assert case.checker_says is not None
        assert any(case.checker_says in p for p in problems), (case.mistake, problems)

    def test_duplicate_keys_are_rejected(self) -> None:
        text = COLLECTOR_CONFIG.read_text(encoding="utf-8")
        duplicated = text.replace("processors:\n", "processors:\n  batch:\n    timeout: 1s\n", 1)
        with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'batch'"):
            load_yaml(duplicated)
        # Keys from a << merge may be overridden: that is YAML, not a duplicate.
        assert load_yaml("a: &a {x: 1}\nb:\n  <<: *a\n  x: 2\n") == {"a": {"x": 1}, "b": {"x": 2}}

    def test_env_syntax(self) -> None:
        assert (
            env_syntax_problems({"a": "${env:A}", "b": "x${env:B:-http://h:1}y", "c": "$$5"}) == []
        )
        for bad in ("$A", "${A}", "${A:-x}", "${env:}", "${env:A", "cost: $5"):
            assert env_syntax_problems({"k": bad}), bad


# --- compose -------------------------------------------------------------------------


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """Return (host_ip, host_port, container_port) for each published port."""
    published = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published") is not None:
                published.append(
                    (str(port.get("host_ip", "")), int(port["published"]), int(port["target"]))
                )
            continue
        spec = str(port).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            published.append((parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            published.append(("", int(parts[0]), int(parts[1])))
    return published


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Return (type, source, target) for each volume: type is bind or volume."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts.append((volume["type"], str(volume.get("source", "")), volume["target"]))
            continue
        source, _, rest = str(volume).partition(":")
        target = rest.split(":", 1)[0]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        mounts.append((kind, source, target))
    return mounts


def _image_problems(where: str, image: str) -> list[str]:
    name, _, _digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return [f"{where}: image {image!r} has no tag: pin a version"]
    tag = last.split(":", 1)[1]
    if tag == "latest" or not re.search(r"\d", tag):
        return [f"{where}: image {image!r} is not pinned to a version"]
    return []


def compose_problems(compose: dict[str, Any], *, root: Path = ROOT) -> list[str]:
    """Check a compose file (as written, or as ``docker-compose config`` resolved it).

    Returns:
        One sentence per problem; empty when the file is sound.
    """
    problems: list[str] = []
    services: dict[str, Any] = compose.get("services") or {}
    names = set(services)
    declared_volumes = set(compose.get("volumes") or {})
    host_ports: dict[tuple[str, int], str] = {}
    collectors = [
        n
        for n, s in services.items()
        if str(s.get("image", "")).startswith("otel/opentelemetry-collector")
    ]
    if len(collectors) != 1:
        problems.append(f"expected one collector service, found {collectors}")
    for name, service in services.items():
        image, build = service.get("image"), service.get("build")
        if image is None and build is None:
            problems.append(f"services.{name} has neither image nor build")
        if image is not None:
            problems += _image_problems(f"services.{name}", str(image))
        depends = service.get("depends_on") or []
        for target in depends:
            if target not in names:
                problems.append(f"services.{name} depends on {target!r}, which is not a service")
        for key, value in _environment(service).items():
            for host, _port in re.findall(r"https?://([A-Za-z0-9_.-]+):(\d+)", value):
                if "." not in host and host not in names:
                    problems.append(
                        f"services.{name}.environment.{key} names host {host!r}, "
                        "which is not a service"
                    )
        for kind, source, _target in _mounts(service):
            if kind == "bind":
                path = Path(source) if Path(source).is_absolute() else root / source
                if not path.exists():
                    problems.append(f"services.{name} mounts {source}, which does not exist")
            elif source and source not in declared_volumes:
                problems.append(f"services.{name} mounts volume {source!r}, which is not declared")
        for host_ip, host_port, _container in _published(service):
            for (other_ip, other_port), other in host_ports.items():
                wildcard = {"", "0.0.0.0"} & {host_ip, other_ip}
                if other_port == host_port and (other_ip == host_ip or wildcard):
                    problems.append(f"host port {host_port} is published by {other} and {name}")
            host_ports[(host_ip, host_port)] = name

        env = _environment(service)
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in env:
            host, port = _host_port(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
            if host not in collectors:
                problems.append(
                    f"services.{name} sends OTLP to {host!r}, not to the collector service"
                )
            want = "4317" if env.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc" else "4318"
            if port != want:
                problems.append(f"services.{name} sends OTLP to port {port}, expected {want}")
            test = (service.get("healthcheck") or {}).get("test") or []
            if "/up" not in " ".join(map(str, test if isinstance(test, list) else [test])):
                problems.append(f"services.{name} has no healthcheck on /up")

    for name in collectors:
        service = services[name]
        if service.get("image") != COLLECTOR_IMAGE:
            problems.append(f"services.{name}.image must be {COLLECTOR_IMAGE}")
        command = " ".join(map(str, service.get("command") or []))
        env = _environment(service)
        binds = [(s, t) for k, s, t in _mounts(service) if k == "bind"]
        if not any(Path(s).name == "otel-collector.yaml" for s, _t in binds):
            problems.append(f"services.{name} does not mount otel-collector.yaml")
        for source, target in binds:
            if f"--config={target}" not in command:
                problems.append(f"services.{name} mounts {source} but no --config loads it")
                continue
            path = Path(source) if Path(source).is_absolute() else root / source
            if path.exists():
                for var in sorted(env_names_without_default(load_yaml_file(path))):
                    if var not in env:
                        problems.append(
                            f"services.{name}: {path.name} reads ${{env:{var}}}, "
                            "which the service's environment does not set"
                        )
        key = env.get(NEW_RELIC_KEY)
        if key is None:
            problems.append(
                f"services.{name} does not pass {NEW_RELIC_KEY}: setting it could never turn "
                f"New Relic on; add {NEW_RELIC_KEY}: ${{{NEW_RELIC_KEY}:-}}"
            )
        elif "$" in key and not COMPOSE_KEY_PASS_THROUGH.fullmatch(key):
            problems.append(
                f"services.{name}.environment.{NEW_RELIC_KEY} is {key!r}: write "
                f"${{{NEW_RELIC_KEY}:-}}; a required key (:?) stops a stack without one, "
                "and a bare reference makes compose warn on every command"
            )
        published = {c for _ip, _h, c in _published(service)}
        for port in (4317, 4318, 13133, 8888):
            if port not in published:
                problems.append(f"services.{name} does not publish port {port}")
    jaegers = [
        n for n, s in services.items() if str(s.get("image", "")).startswith("jaegertracing/")
    ]
    if not jaegers:
        problems.append("no Jaeger service")
    for name in jaegers:
        if not JAEGER_IMAGE.match(str(services[name]["image"])):
            problems.append(f"services.{name}: use Jaeger v2, jaegertracing/jaeger:2.x.y")
        for _ip, host_port, container in _published(services[name]):
            if container in (4317, 4318):
                problems.append(
                    f"services.{name} publishes its OTLP port {container} (as {host_port}): "
                    "send through the collector, which owns 4317/4318 on the host"
                )
    return problems


def documentation_problems(
    compose_files: list[Any], collector_files: list[Any], runbook: str
) -> list[str]:
    """List variables that parsed compose or collector files use but the runbook does not name.

    Compose interpolates ``${NAME...}``; the collector expands ``${env:NAME...}``.
    """
    used = set()
    for tree in compose_files:
        used |= {name for _path, text in _strings(tree) for name in COMPOSE_VARIABLE.findall(text)}
    for tree in collector_files:
        used |= {m.group(1) for _path, text in _strings(tree) for m in ENV_REFERENCE.finditer(text)}
    return [
        f"{name} is used but docs/operations.md does not document `{name}`"
        for name in sorted(used)
        if f"`{name}`" not in runbook
    ]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml_file(COMPOSE_FILE)  # type: ignore[no-any-return]


BROKEN_COMPOSE_FILES = [
    ("a latest tag", _set("services.jaeger.image", "jaegertracing/jaeger:latest"), "is not pinned"),
    ("an untagged image", _set("services.jaeger.image", "jaegertracing/jaeger"), "has no tag"),
    (
        "Jaeger v1 all-in-one",
        _set("services.jaeger.image", "jaegertracing/all-in-one:1.60"),
        "use Jaeger v2",
    ),
    (
        "a collector that is not the pinned contrib release",
        _set("services.otel-collector.image", "otel/opentelemetry-collector-contrib:0.104.0"),
        f"must be {COLLECTOR_IMAGE}",
    ),
    (
        "depends_on a missing service",
        _set("services.otel-collector.depends_on", ["jaeger", "viewr"]),
        "depends on 'viewr', which is not a service",
    ),
    (
        "a mount of a file that does not exist",
        _set(
            "services.otel-collector.volumes",
            ["./otel-collector.yml:/etc/otelcol-contrib/config.yaml:ro"],
        ),
        "mounts ./otel-collector.yml, which does not exist",
    ),
    (
        "a config mounted but not loaded",
        _set("services.otel-collector.command", ["--config=/etc/otelcol-contrib/other.yaml"]),
        "but no --config loads it",
    ),
    (
        "an undeclared named volume",
        _set("services.demo.volumes", ["demo-db:/data"]),
        "volume 'demo-db', which is not declared",
    ),
    (
        "Jaeger's OTLP port published",
        _set("services.jaeger.ports", ["16686:16686", "4317:4317"]),
        "publishes its OTLP port 4317",
    ),
    (
        "the viewer on Jaeger's host port",
        _set("services.viewer.ports", ["16686:16686"]),
        "host port 16686 is published by jaeger and viewer",
    ),
    (
        "the app sending straight to Jaeger",
        _set("services.demo.environment.OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318"),
        "sends OTLP to 'jaeger', not to the collector service",
    ),
    (
        "the app sending to localhost",
        _set("services.demo.environment.OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
        "sends OTLP to 'localhost'",
    ),
    (
        "OTLP/HTTP sent to the gRPC port",
        _set("services.demo.environment.OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector:4317"),
        "sends OTLP to port 4317, expected 4318",
    ),
    (
        "a URL naming no service",
        _set("services.demo.environment.PREVIEW_URL", "http://previews:8001"),
        "names host 'previews', which is not a service",
    ),
    (
        "an app without a healthcheck",
        _delete("services.preview.healthcheck"),
        "services.preview has no healthcheck on /up",
    ),
    (
        "the collector missing a variable its config needs",
        _set("services.otel-collector.environment", {}),
        "reads ${env:CVTRACE_VIEWER_TOKEN}",
    ),
    (
        "the collector without the license key",
        _delete(f"services.otel-collector.environment.{NEW_RELIC_KEY}"),
        f"does not pass {NEW_RELIC_KEY}",
    ),
    (
        "the license key made mandatory",
        _set(
            f"services.otel-collector.environment.{NEW_RELIC_KEY}",
            "${NEW_RELIC_LICENSE_KEY:?set the New Relic key}",
        ),
        "a required key (:?) stops a stack without one",
    ),
    (
        "the license key passed bare",
        _set(f"services.otel-collector.environment.{NEW_RELIC_KEY}", "${NEW_RELIC_LICENSE_KEY}"),
        "a bare reference makes compose warn",
    ),
    (
        "the collector's health port not published",
        _set("services.otel-collector.ports", ["4317:4317", "4318:4318", "8888:8888"]),
        "does not publish port 13133",
    ),
]


class TestComposeFile:
    """compose.yaml: checked by its own rules, and validated by docker-compose."""

    def test_compose_file_is_sound(self, compose: dict[str, Any]) -> None:
        assert compose_problems(compose) == []

    def test_every_variable_is_documented(self, runbook: str) -> None:
        compose_files = [load_yaml_file(COMPOSE_FILE)]
        collector_files = [load_yaml_file(COLLECTOR_CONFIG)]
        assert documentation_problems(compose_files, collector_files, runbook) == []
        assert documentation_problems(
            [{"x": "${UNDOCUMENTED_THING:-1}"}], [{"y": "${env:OTHER_THING}"}], "`OTHER_THING`"
        ) == [
            "UNDOCUMENTED_THING is used but docs/operations.md does not document "
            "`UNDOCUMENTED_THING`"
        ]

    @pytest.mark.parametrize(
        ("mistake", "mutate", "expected"),
        BROKEN_COMPOSE_FILES,
        ids=[case[0] for case in BROKEN_COMPOSE_FILES],
    )
    def test_broken_compose_is_caught(
        self,
        compose: dict[str, Any],
        mistake: str,
        mutate: Callable[[dict[str, Any]], None],
        expected: str,
    ) -> None:
        broken = copy.deepcopy(compose)
        mutate(broken)
        problems = compose_problems(broken)
        assert any(expected in p for p in problems), (mistake, problems)


@pytest.fixture(scope="module")
def docker_compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail(
            "docker-compose is not installed: `make system-deps` installs Debian's "
            "docker-compose, which validates compose files offline (CI has it)"
        )
    return path


SECRETS = {"CVTRACE_VIEWER_TOKEN": "test-viewer-token", "POSTGRES_PASSWORD": "test-db-password"}


def _compose_config(
    docker_compose: str,
    tmp_path: Path,
    files: list[Path],
    env: dict[str, str],
    dot_env: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run ``docker-compose config`` with only the given variables set.

    ``dot_env`` is what an operator's ``.env`` would hold (compose reads it for
    interpolation); the repository's own ``.env``, if any, is never read.
    """
    env_file = tmp_path / "test.env"
    env_file.write_text(dot_env, encoding="utf-8")
    # Relative paths resolve against the repository, wherever the file lives.
    args = [docker_compose, "--env-file", str(env_file), "--project-directory", str(ROOT)]
    for path in files:
        args += ["-f", str(path)]
    clean_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **env}
    return subprocess.run(
        [*args, "config"],
        cwd=ROOT,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
class TestComposeValidation:
    """Debian's docker-compose resolves and validates the files, no engine needed."""

    def test_resolves_and_stays_sound(self, docker_compose: str, tmp_path: Path) -> None:
        result = _compose_config(docker_compose, tmp_path, [COMPOSE_FILE], SECRETS)
        assert result.returncode == 0, result.stderr
        resolved = load_yaml(result.stdout)
        assert compose_problems(resolved) == []
        assert resolved["services"]["viewer"]["environment"]["CVTRACE_VIEWER_TOKEN"] == (
            "test-viewer-token"
        )
        assert resolved["services"]["demo"]["environment"]["CVTRACE_ENVIRONMENT"] == "compose"
        command = resolved["services"]["otel-collector"]["command"]
        assert command == ["--config=/etc/otelcol-contrib/config.yaml"]

    def test_refuses_to_start_without_the_viewer_token(
        self, docker_compose: str, tmp_path: Path
    ) -> None:
        env = {k: v for k, v in SECRETS.items() if k != "CVTRACE_VIEWER_TOKEN"}
        result = _compose_config(docker_compose, tmp_path, [COMPOSE_FILE], env)
        assert result.returncode != 0
        assert "set CVTRACE_VIEWER_TOKEN to a random secret" in result.stderr + result.stdout

    def test_the_demo_runs_on_postgresql_with_a_required_password(
        self, docker_compose: str, tmp_path: Path
    ) -> None:
        env = {k: v for k, v in SECRETS.items() if k != "POSTGRES_PASSWORD"}
        refused = _compose_config(docker_compose, tmp_path, [COMPOSE_FILE], env)
        assert refused.returncode != 0
        assert "set POSTGRES_PASSWORD to a random secret" in refused.stderr + refused.stdout
        result = _compose_config(docker_compose, tmp_path, [COMPOSE_FILE], SECRETS)
        assert result.returncode == 0, result.stderr
        services = load_yaml(result.stdout)["services"]
        demo, postgres = services["demo"], services["postgres"]
        assert demo["environment"]["DATABASE_URL"] == (
            "postgresql+psycopg://circuits@postgres:5432/circuits"  # no password in the URL
        )
        assert demo["environment"]["PGPASSWORD"] == "test-db-password"
        assert postgres["environment"]["POSTGRES_PASSWORD"] == "test-db-password"
        assert demo["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert postgres["healthcheck"]["test"][:3] == ["CMD", "pg_isready", "--host=127.0.0.1"]
        assert not postgres.get("ports")  # on the compose network only

    def test_secret_key_is_passed_when_set(self, docker_compose: str, tmp_path: Path) -> None:
        env = {**SECRETS, "SECRET_KEY": "s3cret"}
        result = _compose_config(docker_compose, tmp_path, [COMPOSE_FILE], env)
        assert result.returncode == 0, result.stderr
        services = load_yaml(result.stdout)["services"]
        assert services["demo"]["environment"]["SECRET_KEY"] == "s3cret"
        assert services["preview"]["environment"]["SECRET_KEY"] == "s3cret"

    def test_without_a_key_new_relic_stays_off_quietly(
        self, docker_compose: str, tmp_path: Path
    ) -> None:
        """No key: compose starts, says nothing about it, and passes an empty key."""
        result = _compose_config(docker_compose, tmp_path, [COMPOSE_FILE], SECRETS)
        assert result.returncode == 0, result.stderr
        assert "NEW_RELIC" not in result.stderr
        collector = load_yaml(result.stdout)["services"]["otel-collector"]
        assert collector["environment"][NEW_RELIC_KEY] == ""
        assert collector["environment"]["NEW_RELIC_OTLP_ENDPOINT"] == "https://otlp.nr-data.net"
        assert collector["command"] == ["--config=/etc/otelcol-contrib/config.yaml"]

    @pytest.mark.parametrize("where", ["environment", ".env"])
    def test_the_key_alone_turns_new_relic_on(
        self, docker_compose: str, tmp_path: Path, where: str
    ) -> None:
        """Setting the key, in the shell or in .env, is the one step: same files, same command."""
        if where == "environment":
            result = _compose_config(
                docker_compose,
                tmp_path,
                [COMPOSE_FILE],
                {**SECRETS, NEW_RELIC_KEY: SAMPLE_LICENSE_KEY},
            )
        else:
            result = _compose_config(
                docker_compose,
                tmp_path,
                [COMPOSE_FILE],
                SECRETS,
                dot_env=f"{NEW_RELIC_KEY}={SAMPLE_LICENSE_KEY}\n",
            )
        assert result.returncode == 0, result.stderr
        resolved = load_yaml(result.stdout)
        assert compose_problems(resolved) == []
        collector = resolved["services"]["otel-collector"]
        assert collector["environment"][NEW_RELIC_KEY] == SAMPLE_LICENSE_KEY
        # The collector then expands that key into its guard, which keeps every span.
        config = load_yaml_file(COLLECTOR_CONFIG)
        [guard] = config["processors"]["filter/newrelic_key_guard"]["traces"]["span"]
        assert evaluate_literal_condition(expand_env(guard, collector["environment"])) is False

    @pytest.mark.parametrize(
        ("written", "returncode", "says"),
        [
            ("${NEW_RELIC_LICENSE_KEY}", 0, "The NEW_RELIC_LICENSE_KEY variable is not set"),
            ("${NEW_RELIC_LICENSE_KEY:?set it}", 1, "set it"),
        ],
    )
    def test_why_the_key_is_passed_with_an_empty_default(
        self, docker_compose: str, tmp_path: Path, written: str, returncode: int, says: str
    ) -> None:
        """The forms compose_problems rejects do what it says, in docker-compose itself."""
        text = COMPOSE_FILE.read_text(encoding="utf-8")
        line = f"      {NEW_RELIC_KEY}: ${{{NEW_RELIC_KEY}:-}}\n"
        assert line in text
        broken = tmp_path / "compose.yaml"
        broken.write_text(text.replace(line, f"      {NEW_RELIC_KEY}: {written}\n"), "utf-8")
        result = _compose_config(docker_compose, tmp_path, [broken], SECRETS)
        assert result.returncode == returncode, result.stderr
        assert says in result.stderr + result.stdout

    @pytest.mark.parametrize(
        ("mistake", "old", "new", "message"),
        [
            (
                "a misspelt key",
                "    image: jaegertracing/jaeger:",
                "    imagee: jaegertracing/jaeger:",
                "imagee",
            ),
            ("depends_on a missing service", "      - viewer\n", "      - viewr\n", "viewr"),
            (
                "a port that is not a port",
                '"127.0.0.1:13133:13133"',
                '"127.0.0.1:13133:health"',
                "ports",
            ),
        ],
    )
    def test_docker_compose_rejects_broken_files(
        self, docker_compose: str, tmp_path: Path, mistake: str, old: str, new: str, message: str
    ) -> None:
        """docker-compose itself is a check that bites, not a formality."""
        text = COMPOSE_FILE.read_text(encoding="utf-8")
        assert old in text, mistake
        broken = tmp_path / "compose.yaml"
        broken.write_text(text.replace(old, new, 1), encoding="utf-8")
        result = _compose_config(docker_compose, tmp_path, [broken], SECRETS)
        assert result.returncode != 0, mistake
        assert message in result.stderr + result.stdout


# --- Dockerfile ----------------------------------------------------------------------


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs, as ``dockerfile-parse`` reads them."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    return [(item["instruction"], item["value"]) for item in parser.structure]


def dockerignore_excludes(dockerignore: str) -> Callable[[str], bool]:
    """Return a predicate: is this context-relative path left out of the build?

    Decided by Docker's own matcher, the ``docker`` SDK's ``exclude_paths`` (its port
    of moby's pattern matcher), on a scratch context holding just that path: a
    directory that matches keeps everything below it out, as in a real build.
    """
    patterns = [
        line.strip()
        for line in dockerignore.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]

    def excluded(path: str) -> bool:
        with tempfile.TemporaryDirectory() as context:
            file = Path(context, path)
            file.parent.mkdir(parents=True, exist_ok=True)
            file.touch()
            sent = exclude_paths(context, list(patterns))
        return path not in sent

    return excluded


MUST_STAY_OUT = [
    ".git/HEAD",
    ".venv/bin/python",
    ".env",
    "cvtrace/__pycache__/api.cpython-312.pyc",
    "cvtrace/viewer/__pycache__/ui.cpython-312.pyc",
    ".pytest_cache/README.md",
    ".mypy_cache/3.12/cache.json",
    ".ruff_cache/CACHEDIR.TAG",
    "cvtrace.egg-info/PKG-INFO",
    "demo.db",
    ".cvtrace/traces.db",
    # deploy/build.sh's binaries (160 MB) and the Go modules they are built from
    ".cache/bin/jaeger",
    "deploy/collector/go.sum",
    "deploy/jaeger/go.mod",
]


def dockerfile_problems(text: str, *, dockerignore: str, root: Path = ROOT) -> list[str]:
    """Check the app Dockerfile and its .dockerignore.

    Returns:
        One sentence per problem; empty when both are sound.
    """
    problems: list[str] = []
    excluded = dockerignore_excludes(dockerignore)
    for path in MUST_STAY_OUT:
        if not excluded(path):
            problems.append(f".dockerignore lets {path} into the build context")
    stages: list[tuple[str, str, list[tuple[str, str]]]] = []
    for keyword, arguments in parse_dockerfile(text):
        if keyword == "FROM":
            words = arguments.split()
            image = next(w for w in words if not w.startswith("--"))
            name = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else ""
            stages.append((image, name, []))
        elif stages:
            stages[-1][2].append((keyword, arguments))
    if len(stages) < 2:
        problems.append("the Dockerfile is not multi-stage (build tools would ship)")
    names: set[str] = set()
    for image, name, instructions in stages:
        if image not in names and not PYTHON_BASE.match(image):
            problems.append(
                f"FROM {image}: use a pinned slim Python base, python:X.Y.Z-slim-<debian>"
            )
        for keyword, arguments in instructions:
            if keyword != "COPY":
                continue
            words = shlex.split(arguments)
            source_stage = next(
                (w.split("=", 1)[1] for w in words if w.startswith("--from=")), None
            )
            sources = [w for w in words if not w.startswith("--")][:-1]
            if source_stage is not None:
                if source_stage not in names:
                    problems.append(f"COPY --from={source_stage}: no earlier stage has that name")
                continue
            for source in sources:
                path = root / source
                if excluded(posixpath.normpath(source)):
                    problems.append(f"COPY {source}: .dockerignore leaves out {source}")
                    continue
                if not path.exists():
                    problems.append(f"COPY {source}: not in the repository")
                    continue
                files = [path] if path.is_file() else list(path.rglob("*.py"))
                for file in files:
                    relative = file.relative_to(root).as_posix()
                    if "__pycache__" not in relative and excluded(relative):
                        problems.append(f"COPY {source}: .dockerignore leaves out {relative}")
        names.add(name)
    if not stages:
        return [*problems, "no FROM"]
    _final_image, _final_name, final = stages[-1]
    users = [arguments for keyword, arguments in final if keyword == "USER"]
    if not users or users[-1].split(":", 1)[0] in {"root", "0"}:
        problems.append("the final stage must switch to a non-root USER")
    healthchecks = [arguments for keyword, arguments in final if keyword == "HEALTHCHECK"]
    if not healthchecks or "/up" not in healthchecks[-1]:
        problems.append("the final stage needs a HEALTHCHECK on /up")
    runs = " ".join(arguments for keyword, arguments in final if keyword == "RUN")
    envs = " ".join(arguments for keyword, arguments in final if keyword == "ENV")
    if not re.search(r"apt-get install [^&;]*\blibjemalloc2\b", runs):
        problems.append("the final stage must apt-get install Debian's libjemalloc2")
    preload = re.search(r"\bLD_PRELOAD=(\S+)", envs)
    if preload is None or not preload.group(1).endswith("libjemalloc.so.2"):
        problems.append("the final stage must set LD_PRELOAD to libjemalloc.so.2")
    else:
        link = re.search(r"ln -s \"?\$\(.*?\)\"? (\S+)", runs)
        if link is None or link.group(1) != preload.group(1):
            problems.append(
                f"LD_PRELOAD={preload.group(1)} is not the path the RUN step links jemalloc to"
            )
    commands = [arguments for keyword, arguments in final if keyword in {"CMD", "ENTRYPOINT"}]
    argv = json.loads(commands[-1]) if commands and commands[-1].startswith("[") else []
    if not argv or argv[0] != "gunicorn":
        problems.append("the image must serve the app with gunicorn")
    return problems


BROKEN_DOCKERFILES = [
    ("running as root", ("USER 10001:10001", "USER root"), "non-root USER"),
    ("no USER at all", ("USER 10001:10001\n", ""), "non-root USER"),
    (
        "a floating base",
        ("FROM python:3.12.11-slim-bookworm AS runtime", "FROM python:3-slim AS runtime"),
        "pinned slim Python base",
    ),
    (
        "a latest base",
        ("FROM python:3.12.11-slim-bookworm AS build", "FROM python:latest AS build"),
        "pinned slim Python base",
    ),
    (
        "a full (non-slim) base",
        ("FROM python:3.12.11-slim-bookworm AS runtime", "FROM python:3.12.11-bookworm AS runtime"),
        "pinned slim Python base",
    ),
    ("no healthcheck", ("HEALTHCHECK ", "# HEALTHCHECK "), "HEALTHCHECK on /up"),
    ("no jemalloc package", ("libjemalloc2 \\", "curl \\"), "libjemalloc2"),
    (
        "no LD_PRELOAD",
        ("LD_PRELOAD=/usr/local/lib/libjemalloc.so.2", "MALLOC_ARENA_MAX=2"),
        "LD_PRELOAD",
    ),
    (
        "LD_PRELOAD on a path nothing creates",
        ("LD_PRELOAD=/usr/local/lib/libjemalloc.so.2", "LD_PRELOAD=/usr/lib/libjemalloc.so.2"),
        "not the path the RUN step links",
    ),
    (
        "COPY --from an unknown stage",
        ("COPY --from=build ", "COPY --from=builder "),
        "no earlier stage",
    ),
    (
        "COPY of a missing file",
        ("COPY pyproject.toml README.md ./", "COPY pyproject.toml README.rst ./"),
        "COPY README.rst: not in the repository",
    ),
    ("not served by gunicorn", ('CMD ["gunicorn",', 'CMD ["flask", "run",'), "gunicorn"),
]


class TestDockerfile:
    """Dockerfile, .dockerignore and the gunicorn settings the image runs with."""

    def test_dockerfile_is_sound(self) -> None:
        problems = dockerfile_problems(
            DOCKERFILE.read_text(encoding="utf-8"),
            dockerignore=DOCKERIGNORE.read_text(encoding="utf-8"),
        )
        assert problems == []

    @pytest.mark.parametrize(
        ("mistake", "edit", "expected"), BROKEN_DOCKERFILES, ids=[c[0] for c in BROKEN_DOCKERFILES]
    )
    def test_broken_dockerfile_is_caught(
        self, mistake: str, edit: tuple[str, str], expected: str
    ) -> None:
        text = DOCKERFILE.read_text(encoding="utf-8")
        assert edit[0] in text, mistake
        problems = dockerfile_problems(
            text.replace(*edit), dockerignore=DOCKERIGNORE.read_text(encoding="utf-8")
        )
        assert any(expected in p for p in problems), (mistake, problems)

    @pytest.mark.parametrize(
        ("mistake", "dockerignore", "expected"),
        [
            ("no .venv", "-.venv", ".dockerignore lets .venv/bin/python"),
            ("no .git", "-.git", ".dockerignore lets .git/HEAD"),
            ("no __pycache__", "-**/__pycache__ -**/*.py[cod]", "api.cpython-312.pyc"),
            ("no tool caches", "-.mypy_cache", ".mypy_cache/3.12/cache.json"),
            ("excluding a COPY source", "+*.md", "COPY README.md: .dockerignore leaves out"),
            ("excluding sources by a wildcard", "+**/*.py", ".dockerignore leaves out cvtrace/"),
        ],
    )
    def test_broken_dockerignore_is_caught(
        self, mistake: str, dockerignore: str, expected: str
    ) -> None:
        lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if dockerignore.startswith("-"):
            for line in dockerignore[1:].split(" -"):
                assert line in lines, mistake
                lines.remove(line)
        else:
            lines.append(dockerignore[1:])
        problems = dockerfile_problems(
            DOCKERFILE.read_text(encoding="utf-8"), dockerignore="\n".join(lines)
        )
        assert any(expected in p for p in problems), (mistake, problems)

    def test_dockerignore_matching(self) -> None:
        excluded = dockerignore_excludes("**/__pycache__\n*.md\n!README.md\n/build\n")
        assert excluded("a/b/__pycache__/x.pyc")
        assert excluded("__pycache__/x.pyc")
        assert excluded("CHANGES.md")
        assert not excluded("README.md")
        assert not excluded("docs/x.md")  # * does not cross /
        assert excluded("build/lib/x.py")
        assert not excluded("cvtrace/build.py")

    def test_gunicorn_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PORT", "8123")
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
        settings = runpy.run_path(str(GUNICORN_CONF))
        assert settings["bind"] == ["0.0.0.0:8123"]
        assert settings["workers"] == 2
        assert settings["preload_app"] is True
        compose = load_yaml_file(COMPOSE_FILE)
        grace_s = int(str(compose["x-app"]["stop_grace_period"]).rstrip("s"))
        assert settings["graceful_timeout"] < grace_s, "compose must wait longer than gunicorn"
        for service in ("demo", "preview"):
            assert "--config=/app/gunicorn.conf.py" in compose["services"][service]["command"]
        assert "COPY deploy/gunicorn.conf.py /app/gunicorn.conf.py" in DOCKERFILE.read_text(
            encoding="utf-8"
        )

    def test_installed_distribution_ships_every_data_file(self) -> None:
        """The image runs ``pip install .``: templates and static files must be package data.

        setuptools installs only the non-Python files that ``[tool.setuptools.package-data]``
        names, so a template missing there is missing from the image (and from any wheel),
        while every test run from the checkout still finds it.
        """
        tomllib = pytest.importorskip("tomllib")
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        package_data = pyproject["tool"]["setuptools"].get("package-data", {})
        copied = {
            w.rstrip("/")
            for keyword, arguments in parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
            if keyword == "COPY" and "--from" not in arguments
            for w in shlex.split(arguments)[:-1]
        }
        missing = []
        for top in sorted(copied & {"cvtrace"}):
            for package in sorted(p.parent for p in (ROOT / top).rglob("__init__.py")):
                if "__pycache__" in package.parts:
                    continue
                dotted = package.relative_to(ROOT).as_posix().replace("/", ".")
                patterns = [*package_data.get(dotted, []), *package_data.get("*", [])]
                shipped = {
                    (package / match).resolve()
                    for pattern in patterns
                    for match in glob.glob(pattern, root_dir=package)
                }
                for file in package.rglob("*"):
                    owner = next(
                        d
                        for d in [file.parent, *file.parent.parents]
                        if (d / "__init__.py").exists()
                    )
                    if (
                        file.is_file()
                        and owner == package
                        # Markdown beside the code (cvtrace/demo/README.md) is for readers
                        # of the repository; nothing reads it at run time.
                        and file.suffix not in {".py", ".pyc", ".md"}
                        and "__pycache__" not in file.parts
                        and file.resolve() not in shipped
                    ):
                        missing.append(file.relative_to(ROOT).as_posix())
        assert sorted(missing) == [], (
            "add these to [tool.setuptools.package-data] in pyproject.toml, or the image "
            f"lacks them: {missing}"
        )


def _jemalloc_library() -> Path:
    """Return Debian's libjemalloc.so.2, found the way the Dockerfile finds it."""
    if shutil.which("dpkg") is None:
        pytest.fail("not a Debian system: the image's jemalloc step needs dpkg")
    listing = subprocess.run(
        ["dpkg", "-L", "libjemalloc2"],
        capture_output=True,
        text=True,
        check=False,
    )
    if listing.returncode != 0:
        pytest.fail("libjemalloc2 is not installed: `make system-deps` installs it (CI has it)")
    paths = [line for line in listing.stdout.splitlines() if line.endswith("/libjemalloc.so.2")]
    assert len(paths) == 1, paths  # the Dockerfile's grep must find exactly one
    return Path(paths[0])


def _dockerfile_command(keyword: str, contains: str) -> str:
    for found, arguments in parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")):
        if found == keyword and contains in arguments:
            return arguments
    raise AssertionError(f"no {keyword} containing {contains!r} in the Dockerfile")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PROBE_APP = '''
"""A WSGI app whose /up fails while a file named "down" exists beside it."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def app(environ, start_response):
    healthy = not os.path.exists(os.path.join(HERE, "down"))
    if environ["PATH_INFO"] == "/up" and healthy:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"down"]
'''


@pytest.fixture
def image_like_server(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """Serve a probe app with the image's gunicorn settings (and jemalloc, when installed)."""
    library = next(iter(Path("/usr/lib").glob("*/libjemalloc.so.2")), None)
    (tmp_path / "probe_app.py").write_text(PROBE_APP, encoding="utf-8")
    port = _free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    env = {
        **os.environ,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
    }
    if library is not None:
        env["LD_PRELOAD"] = str(library)
    server = subprocess.Popen(
        [
            str(gunicorn),
            f"--config={GUNICORN_CONF}",
            # The image binds 0.0.0.0:$PORT; tests stay on loopback.
            f"--bind=127.0.0.1:{port}",
            f"--chdir={tmp_path}",
            "probe_app:app",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/up", timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield port, server, tmp_path
    finally:
        server.terminate()
        server.wait(timeout=30)


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


@pytest.mark.slow
class TestImageBehaviour:
    """What the image does at run time, reproduced outside Docker with the same pieces."""

    def test_healthcheck_command_follows_up(
        self, image_like_server: tuple[int, subprocess.Popen[bytes], Path]
    ) -> None:
        """The HEALTHCHECK's command passes while /up is 200 and fails otherwise."""
        port, server, app_dir = image_like_server
        healthcheck = _dockerfile_command("HEALTHCHECK", "/up")
        argv = json.loads(healthcheck.split("CMD", 1)[1])
        assert argv[0] == "python"
        argv[0] = sys.executable
        env = {**os.environ, "PORT": str(port)}

        def probe() -> int:
            return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode

        assert probe() == 0
        (app_dir / "down").touch()
        assert probe() != 0
        (app_dir / "down").unlink()
        assert probe() == 0
        server.terminate()
        server.wait(timeout=30)
        assert probe() != 0

    def test_jemalloc_is_preloaded_in_every_worker(
        self, image_like_server: tuple[int, subprocess.Popen[bytes], Path]
    ) -> None:
        _jemalloc_library()  # skips, saying why, where Debian's libjemalloc2 is absent
        _port, server, _app_dir = image_like_server
        deadline = time.monotonic() + 20
        while len(workers := _children(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) == 2
        for pid in [server.pid, *workers]:
            maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8")
            assert "libjemalloc.so.2" in maps, pid

    def test_build_time_jemalloc_check_bites(self) -> None:
        """The Dockerfile's check passes with jemalloc preloaded and fails without."""
        library = _jemalloc_library()
        check = _dockerfile_command("RUN", "mallctl")
        path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
        base_env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}

        def run(env: dict[str, str]) -> int:
            return subprocess.run(
                ["/bin/sh", "-c", check], env=env, capture_output=True, timeout=60
            ).returncode

        assert run({**base_env, "PATH": path, "LD_PRELOAD": str(library)}) == 0
        assert run({**base_env, "PATH": path}) != 0


# --- runbook -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runbook() -> str:
    return RUNBOOK.read_text(encoding="utf-8")


class TestRunbook:
    """docs/operations.md covers what an operator needs, with no Docker engine at hand."""

    def test_documents_every_environment_variable(self, runbook: str) -> None:
        compose = load_yaml_file(COMPOSE_FILE)
        names = {"WEB_CONCURRENCY", "PORT", NEW_RELIC_KEY}
        for service in compose["services"].values():
            names |= set(_environment(service))
        missing = sorted(n for n in names if f"`{n}`" not in runbook)
        assert missing == []

    def test_documents_every_published_port(self, runbook: str) -> None:
        compose = load_yaml_file(COMPOSE_FILE)
        ports = {h for s in compose["services"].values() for _ip, h, _c in _published(s)}
        assert ports >= {8000, 16686, 16687, 4317, 4318, 13133, 8888}
        missing = sorted(p for p in ports if f"`{p}`" not in runbook)
        assert missing == []

    @pytest.mark.parametrize(
        "needle",
        [
            "docker compose up",
            "docker compose down",
            "filter/newrelic_key_guard",
            "NRAL",
            "13133",
            "401",
            "403",
            "413",
            "429",
            "otelcol_exporter_send_failed_spans",
            "otelcol_processor_refused_spans",
            "otelcol_exporter_enqueue_failed_spans",
            "handle.stats()",
            # the procedures, not just the words: "scal" would match "at scale"
            "### Rotating the license key",
            "`docker compose up -d otel-collector`",
            "## Scaling out",
            "`docker compose up -d --scale demo=3`",
        ],
    )
    def test_covers(self, runbook: str, needle: str) -> None:
        assert needle in runbook

    def test_names_only_ops_files_that_exist(self, runbook: str) -> None:
        """The runbook and the README never send an operator to a file that is gone."""
        pattern = re.compile(r"\b(?:compose|otel-collector)[\w.-]*\.ya?ml\b")
        for name, text in (
            ("docs/operations.md", runbook),
            ("README.md", README.read_text(encoding="utf-8")),
        ):
            missing = sorted({f for f in pattern.findall(text) if not (ROOT / f).exists()})
            assert missing == [], name
        assert pattern.findall("-f compose.newrelic.yaml and otel-collector.yml") == [
            "compose.newrelic.yaml",
            "otel-collector.yml",
        ]
