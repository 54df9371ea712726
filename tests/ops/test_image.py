"""What the app image does at run time, reproduced outside Docker with the same pieces.

Debian's ``libjemalloc2`` preloaded the way the image preloads it, gunicorn serving a
probe app with the image's settings, and the Dockerfile's own HEALTHCHECK and
build-time jemalloc check run as the image runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvtrace.demo.ports import free_port
from tests.ops.files import DOCKERFILE, GUNICORN_CONF, parse_dockerfile


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
    port = free_port()
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
