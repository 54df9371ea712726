"""The README's variable tables cover every variable the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from cvtrace.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
TABLE_ROWS = {
    match.group(1)
    for line in README.splitlines()
    if line.startswith("| `")
    for match in re.finditer(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])
}


def test_every_cvtrace_setting_is_documented() -> None:
    for setting in SETTINGS:
        assert setting.env_var in TABLE_ROWS, setting.env_var


def test_every_cvtrace_variable_in_the_code_is_documented() -> None:
    used: set[str] = set()
    for package in ("cvtrace", "viewer"):
        for path in (ROOT / package).rglob("*.py"):
            used |= set(re.findall(r"\bCVTRACE_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert used, "the scan found nothing: the pattern or the paths are wrong"
    # The viewer's app factory reads CVTRACE_VIEWER_* into Flask's config: a prefix.
    assert "`CVTRACE_VIEWER_<NAME>`" in README
    # The collector's and Jaeger's own configs read CVTRACE_COLLECTOR_* and
    # CVTRACE_JAEGER_* (cvtrace/demo/pipeline.py sets them): the runbook documents
    # those (tests/ops/test_runbook.py).
    ops_configs = {
        name
        for path in (ROOT / "otel-collector.yaml", ROOT / "deploy" / "jaeger-local.yaml")
        for name in re.findall(r"\$\{env:(CVTRACE_[A-Z0-9_]+)", path.read_text())
    }
    assert sorted(used - TABLE_ROWS - ops_configs - {"CVTRACE_VIEWER"}) == []


def test_new_relic_variables_are_documented() -> None:
    source = (ROOT / "cvtrace" / "exporters" / "newrelic.py").read_text()
    used = set(re.findall(r"\bNEW_RELIC_[A-Z_]+\b", source))
    assert used == {"NEW_RELIC_LICENSE_KEY", "NEW_RELIC_REGION", "NEW_RELIC_OTLP_ENDPOINT"}
    assert used <= TABLE_ROWS


def test_quick_start_names_the_commands_ci_runs() -> None:
    assert "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
