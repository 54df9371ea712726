"""The wheel and sdist, built and installed into fresh virtualenvs as a user would.

A production app installs ``cvtrace`` alone: tracing only, no plotly, no top-level
``viewer`` or ``demo_app``. ``cvtrace view`` needs the ``viewer`` extra and says so
without it, and works with it. Builds and installs go through the package index, as
they do for users (pip's cache keeps repeated runs short).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(*command: str | Path, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist of this checkout, and the wheel built from that sdist (``build``'s way).

    Building the wheel from the sdist, not from the checkout, shows the sdist is complete.
    """
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    return out


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("cvtrace-*.whl")
    return wheel


def _fresh_venv(where: Path) -> Path:
    venv.create(where, with_pip=True)
    return where / "bin"


@pytest.fixture(scope="module")
def base_install(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with ``pip install cvtrace`` (the wheel, no extra)."""
    bin_dir = _fresh_venv(tmp_path_factory.mktemp("base") / "venv")
    _run(bin_dir / "pip", "install", "--quiet", _wheel(dist))
    return bin_dir


def test_wheel_holds_one_top_level_package(dist: Path) -> None:
    """Only ``cvtrace`` (the viewer and demo inside it, with their templates and assets)."""
    with zipfile.ZipFile(_wheel(dist)) as wheel:
        names = wheel.namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("cvtrace-")}
    assert top_level == {"cvtrace"}
    for shipped in (
        "cvtrace/py.typed",
        "cvtrace/viewer/templates/trace.html",
        "cvtrace/viewer/static/viewer.js",
        "cvtrace/demo/templates/base.html",
    ):
        assert shipped in names


def test_metadata_passes_twine_check(dist: Path) -> None:
    result = _run(sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir()))
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_extras_are_declared(dist: Path) -> None:
    with zipfile.ZipFile(_wheel(dist)) as wheel:
        (metadata_name,) = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = wheel.read(metadata_name).decode()
    requires = re.findall(r"^Requires-Dist: (.*)$", metadata, re.MULTILINE)
    base = [r for r in requires if "extra ==" not in r]
    assert not [r for r in base if r.lower().startswith("plotly")]
    assert any(r.startswith("plotly") and 'extra == "viewer"' in r for r in requires)
    assert {"viewer", "demo"} <= set(re.findall(r"^Provides-Extra: (.*)$", metadata, re.M))


def test_base_install_is_tracing_only(base_install: Path) -> None:
    """``import cvtrace`` works with the base dependencies; nothing of the viewer's comes."""
    probe = (
        "import importlib.util, cvtrace\n"
        "assert cvtrace.init(exporters=False).enabled is False\n"
        "for name in ('plotly', 'viewer', 'demo_app'):\n"
        "    assert importlib.util.find_spec(name) is None, name\n"
        "print('ok')\n"
    )
    result = _run(base_install / "python", "-c", probe, cwd="/")
    assert result.stdout.strip() == "ok"


def test_view_without_the_extra_says_how_to_install_it(base_install: Path) -> None:
    result = subprocess.run(
        [base_install / "cvtrace", "view"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "pip install 'cvtrace[viewer]'" in result.stderr


def test_import_without_the_extra(base_install: Path, tmp_path: Path) -> None:
    """``cvtrace import`` needs no plotly: plain files import; zstd ones name the extra."""
    import zstandard

    trace_id, span_id = "5f0c0a0e0b0d0c0a5f0c0a0e0b0d0c0a", "5f0c0a0e0b0d0c0a"
    span = {"traceId": trace_id, "spanId": span_id, "name": "GET /", "startTimeUnixNano": "1"}
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
    plain = tmp_path / "trace.json"
    plain.write_bytes(body)
    packed = tmp_path / "trace.json.zst"
    packed.write_bytes(zstandard.ZstdCompressor().compress(body))
    command: list[str | Path] = [base_install / "cvtrace", "import", "--db", tmp_path / "s.sqlite3"]
    done = subprocess.run([*command, plain], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "1 span (1 new" in done.stdout
    done = subprocess.run([*command, packed], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "pip install 'cvtrace[viewer]'" in done.stderr


@pytest.fixture
def viewer_install(base_install: Path, dist: Path) -> Path:
    """The base virtualenv with the ``viewer`` extra added."""
    _run(base_install / "pip", "install", "--quiet", f"cvtrace[viewer] @ {_wheel(dist).as_uri()}")
    return base_install


def _served_page(process: subprocess.Popen[str]) -> Iterator[str]:
    assert process.stdout is not None
    for line in process.stdout:
        match = re.search(r"cvtrace viewer on (http://\S+)", line)
        if match:
            yield match.group(1)
            return


def test_view_with_the_extra_serves_the_ui(viewer_install: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CVTRACE_", "OTEL_"))}
    command: list[str | Path] = [
        viewer_install / "cvtrace",
        "view",
        "--db",
        tmp_path / "traces.sqlite3",
        "--port",
        "0",
        "--otlp-port",
        "0",
        "--otlp-grpc-port",
        "0",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd="/"
    )
    try:
        deadline = time.monotonic() + 60
        url = next(_served_page(process), None)
        assert url is not None, "the viewer did not start"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    page = response.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert response.status == 200
        assert "/v1/traces" in page  # the empty store's page: how to send spans
    finally:
        process.terminate()
        process.communicate(timeout=30)
