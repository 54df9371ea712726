"""The app's Dockerfile, its .dockerignore and the gunicorn settings the image runs with.

No Docker engine runs here: ``dockerfile_problems`` reads the Dockerfile with
``dockerfile-parse`` (as Docker parses it) and decides what the build context holds
with the ``docker`` SDK's port of Docker's own pattern matcher; each broken copy must
be caught. What the image does at run time is in tests/ops/test_image.py.
"""

from __future__ import annotations

import glob
import json
import posixpath
import re
import runpy
import shlex
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from docker.utils.build import exclude_paths

from tests.ops.files import (
    DOCKERFILE,
    DOCKERIGNORE,
    GUNICORN_CONF,
    ROOT,
    load_compose_file,
    parse_dockerfile,
)

PYTHON_BASE = re.compile(r"^python:3\.\d+\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?$")


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
    for kept_out in MUST_STAY_OUT:
        if not excluded(kept_out):
            problems.append(f".dockerignore lets {kept_out} into the build context")
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
        compose = load_compose_file()
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
