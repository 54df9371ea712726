"""The collector and Jaeger binaries, as deploy/build.sh builds them (`make collector`),
and the collector's own commands (validate, print-config) run on a config."""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cvtrace.demo.pipeline import clean_environment

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "deploy" / "build.sh"


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the binaries deploy/build.sh built (or found up to date)."""

    collector: Path
    jaeger: Path


@functools.cache
def build() -> Binaries:
    """Run deploy/build.sh once per test run: a no-op when the binaries match their pins.

    Raises:
        RuntimeError: the build failed; its own output says why.
    """
    result = subprocess.run(
        [str(BUILD_SCRIPT)], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if result.returncode != 0:
        msg = f"deploy/build.sh failed ({result.returncode}):\n{result.stderr}"
        raise RuntimeError(msg)
    collector, jaeger = result.stdout.split()
    return Binaries(collector=Path(collector), jaeger=Path(jaeger))


def run_collector(
    binaries: Binaries, *args: str, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command of the collector (validate, print-config, ...) to completion, with
    only the given variables of its own (none of this process's CVTRACE_*, OTEL_*, ...)."""
    return subprocess.run(
        [str(binaries.collector), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**clean_environment(), **(environment or {})},
    )


def validate(
    binaries: Binaries, config: Path, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`otelcol-cvtrace validate --config=CONFIG`: exit 0 and silent when the config is valid."""
    return run_collector(binaries, "validate", f"--config={config}", environment=environment)


def resolved_config(
    binaries: Binaries, config: Path, environment: dict[str, str] | None = None
) -> dict[str, Any]:
    """A config as the collector resolves it (`print-config`): ${env:...} expanded, every
    default filled in."""
    result = run_collector(
        binaries, "print-config", "--mode=unredacted", f"--config={config}", environment=environment
    )
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    return resolved
