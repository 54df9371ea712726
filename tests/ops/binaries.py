"""The collector and Jaeger binaries, as deploy/build.sh builds them (`make collector`)."""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

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
