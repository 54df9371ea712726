"""compose.yaml: this project's rules, and Debian's docker-compose validating it offline.

No Docker engine runs here. ``compose_problems`` knows what compose and the collector
need of the file (pinned images, the collector's release the one tested here, the
addresses and ports, every variable the collector's config requires passed to it, the
New Relic key passed through with an empty default, ...), and each broken copy of
``BROKEN_COMPOSE_FILES`` must be caught. ``docker-compose config`` (Debian's 1.29)
resolves and validates the real file, and must reject its own broken copies; it keeps
the last of two equal keys silently, so the file is read refusing them
(tests/ops/files.py).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.ops.binaries import Binaries, resolved_config
from tests.ops.broken_configs import delete_at as _delete
from tests.ops.broken_configs import set_at as _set
from tests.ops.files import (
    COLLECTOR_CONFIG,
    COMPOSE_FILE,
    ENV_REFERENCE,
    NEW_RELIC_KEY,
    ROOT,
    SAMPLE_LICENSE_KEY,
    collector_release,
    environment,
    host_port,
    load_compose,
    load_compose_file,
    load_yaml,
    mounts,
    published,
    strings,
)

JAEGER_IMAGE = re.compile(r"^jaegertracing/jaeger:2\.\d+\.\d+(@sha256:[0-9a-f]{64})?$")
# The only form compose may pass the key in: empty by default, never required.
COMPOSE_KEY_PASS_THROUGH = re.compile(rf"\$\{{{NEW_RELIC_KEY}:?-\}}")


def env_names_without_default(config: Any) -> set[str]:
    """Return the variables a collector config reads with no default, which must be set."""
    return {
        match.group(1)
        for _path, text in strings(config)
        for match in ENV_REFERENCE.finditer(text)
        if match.group(2) is None
    }


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
        for key, value in environment(service).items():
            for host, _port in re.findall(r"https?://([A-Za-z0-9_.-]+):(\d+)", value):
                if "." not in host and host not in names:
                    problems.append(
                        f"services.{name}.environment.{key} names host {host!r}, "
                        "which is not a service"
                    )
        for kind, source, _target in mounts(service):
            if kind == "bind":
                path = Path(source) if Path(source).is_absolute() else root / source
                if not path.exists():
                    problems.append(f"services.{name} mounts {source}, which does not exist")
            elif source and source not in declared_volumes:
                problems.append(f"services.{name} mounts volume {source!r}, which is not declared")
        for host_ip, host_number, _container in published(service):
            for (other_ip, other_port), other in host_ports.items():
                wildcard = {"", "0.0.0.0"} & {host_ip, other_ip}
                if other_port == host_number and (other_ip == host_ip or wildcard):
                    problems.append(f"host port {host_number} is published by {other} and {name}")
            host_ports[(host_ip, host_number)] = name

        env = environment(service)
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in env:
            host, port = host_port(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
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
        image = f"otel/opentelemetry-collector-contrib:{collector_release()}"
        if service.get("image") != image:
            problems.append(f"services.{name}.image must be {image}, the release tested here")
        command = " ".join(map(str, service.get("command") or []))
        env = environment(service)
        binds = [(s, t) for k, s, t in mounts(service) if k == "bind"]
        if not any(Path(s).name == "otel-collector.yaml" for s, _t in binds):
            problems.append(f"services.{name} does not mount otel-collector.yaml")
        for source, target in binds:
            if f"--config={target}" not in command:
                problems.append(f"services.{name} mounts {source} but no --config loads it")
                continue
            path = Path(source) if Path(source).is_absolute() else root / source
            if path.exists():
                for var in sorted(env_names_without_default(load_yaml(path))):
                    if var not in env:
                        problems.append(
                            f"services.{name}: {path.name} reads ${{env:{var}}}, "
                            "which the service's environment does not set"
                        )
        new_relic_key = env.get(NEW_RELIC_KEY)
        if new_relic_key is None:
            problems.append(
                f"services.{name} does not pass {NEW_RELIC_KEY}: setting it could never turn "
                f"New Relic on; add {NEW_RELIC_KEY}: ${{{NEW_RELIC_KEY}:-}}"
            )
        elif "$" in new_relic_key and not COMPOSE_KEY_PASS_THROUGH.fullmatch(new_relic_key):
            problems.append(
                f"services.{name}.environment.{NEW_RELIC_KEY} is {new_relic_key!r}: write "
                f"${{{NEW_RELIC_KEY}:-}}; a required key (:?) stops a stack without one, "
                "and a bare reference makes compose warn on every command"
            )
        container_ports = {c for _ip, _h, c in published(service)}
        for wanted in (4317, 4318, 13133, 8888):
            if wanted not in container_ports:
                problems.append(f"services.{name} does not publish port {wanted}")
    jaegers = [
        n for n, s in services.items() if str(s.get("image", "")).startswith("jaegertracing/")
    ]
    if not jaegers:
        problems.append("no Jaeger service")
    for name in jaegers:
        if not JAEGER_IMAGE.match(str(services[name]["image"])):
            problems.append(f"services.{name}: use Jaeger v2, jaegertracing/jaeger:2.x.y")
        for _ip, host_number, container in published(services[name]):
            if container in (4317, 4318):
                problems.append(
                    f"services.{name} publishes its OTLP port {container} (as {host_number}): "
                    "send through the collector, which owns 4317/4318 on the host"
                )
    return problems


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_compose_file()
    return loaded


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
        "must be otel/opentelemetry-collector-contrib:0.161.0, the release tested here",
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
        resolved = load_compose(result.stdout)
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
        services = load_compose(result.stdout)["services"]
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
        services = load_compose(result.stdout)["services"]
        assert services["demo"]["environment"]["SECRET_KEY"] == "s3cret"
        assert services["preview"]["environment"]["SECRET_KEY"] == "s3cret"

    def test_without_a_key_new_relic_stays_off_quietly(
        self, docker_compose: str, tmp_path: Path
    ) -> None:
        """No key: compose starts, says nothing about it, and passes an empty key."""
        result = _compose_config(docker_compose, tmp_path, [COMPOSE_FILE], SECRETS)
        assert result.returncode == 0, result.stderr
        assert "NEW_RELIC" not in result.stderr
        collector = load_compose(result.stdout)["services"]["otel-collector"]
        assert collector["environment"][NEW_RELIC_KEY] == ""
        assert collector["environment"]["NEW_RELIC_OTLP_ENDPOINT"] == "https://otlp.nr-data.net"
        assert collector["command"] == ["--config=/etc/otelcol-contrib/config.yaml"]

    @pytest.mark.parametrize("where", ["environment", ".env"])
    def test_the_key_alone_turns_new_relic_on(
        self, docker_compose: str, binaries: Binaries, tmp_path: Path, where: str
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
        resolved = load_compose(result.stdout)
        assert compose_problems(resolved) == []
        collector = resolved["services"]["otel-collector"]
        assert collector["environment"][NEW_RELIC_KEY] == SAMPLE_LICENSE_KEY
        # The collector puts that key into its guard, which then keeps every span.
        guard = resolved_config(binaries, COLLECTOR_CONFIG, collector["environment"])["processors"][
            "filter/newrelic_key_guard"
        ]
        assert guard["traces"]["span"] == [f'"{SAMPLE_LICENSE_KEY}" == ""']

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
