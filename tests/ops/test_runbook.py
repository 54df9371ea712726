"""docs/operations.md, the runbook: every variable, port and procedure an operator needs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.ops.files import (
    COLLECTOR_CONFIG,
    COMPOSE_VARIABLE,
    ENV_REFERENCE,
    JAEGER_LOCAL_CONFIG,
    NEW_RELIC_KEY,
    README,
    ROOT,
    RUNBOOK,
    environment,
    load_compose_file,
    load_yaml,
    published,
    strings,
)


def documentation_problems(
    compose_files: list[Any], collector_files: list[Any], runbook: str
) -> list[str]:
    """List variables that parsed compose or collector files use but the runbook does not name.

    Compose interpolates ``${NAME...}``; the collector expands ``${env:NAME...}``.
    """
    used = set()
    for tree in compose_files:
        used |= {name for _path, text in strings(tree) for name in COMPOSE_VARIABLE.findall(text)}
    for tree in collector_files:
        used |= {m.group(1) for _path, text in strings(tree) for m in ENV_REFERENCE.finditer(text)}
    return [
        f"{name} is used but docs/operations.md does not document `{name}`"
        for name in sorted(used)
        if f"`{name}`" not in runbook
    ]


@pytest.fixture(scope="module")
def runbook() -> str:
    return RUNBOOK.read_text(encoding="utf-8")


class TestRunbook:
    """docs/operations.md covers what an operator needs, with no Docker engine at hand."""

    def test_every_variable_is_documented(self, runbook: str) -> None:
        compose_files = [load_compose_file()]
        collector_files = [load_yaml(COLLECTOR_CONFIG), load_yaml(JAEGER_LOCAL_CONFIG)]
        assert documentation_problems(compose_files, collector_files, runbook) == []
        assert documentation_problems(
            [{"x": "${UNDOCUMENTED_THING:-1}"}], [{"y": "${env:OTHER_THING}"}], "`OTHER_THING`"
        ) == [
            "UNDOCUMENTED_THING is used but docs/operations.md does not document "
            "`UNDOCUMENTED_THING`"
        ]

    def test_documents_every_environment_variable(self, runbook: str) -> None:
        compose = load_compose_file()
        names = {"WEB_CONCURRENCY", "PORT", NEW_RELIC_KEY}
        for service in compose["services"].values():
            names |= set(environment(service))
        missing = sorted(n for n in names if f"`{n}`" not in runbook)
        assert missing == []

    def test_documents_every_published_port(self, runbook: str) -> None:
        compose = load_compose_file()
        ports = {h for s in compose["services"].values() for _ip, h, _c in published(s)}
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
            "otelcol_processor_memory_limiter_refused_spans",
            "otelcol_exporter_enqueue_failed_spans",
            "handle.stats()",
            # the procedures, not just the words: "scal" would match "at scale"
            "### Rotating the license key",
            "`docker compose up -d otel-collector`",
            "## Scaling out",
            "`docker compose up -d --scale demo=3`",
            "## Without Docker: `make stack`",
            "## What a fault costs (measured)",
            "## Beyond one machine",
            "routing_key: traceID",
            "### Sizing the collector",
            "## The viewer's Jaeger API",
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
