"""The ops files, and the small readers the ops tests share.

``otel-collector.yaml`` is judged by the real collector (tests/ops/test_collector.py)
and by the project's own rules (tests/ops/test_collector_policy.py); ``compose.yaml``,
the ``Dockerfile`` and the runbook each have a test module of their own.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
COLLECTOR_CONFIG = ROOT / "otel-collector.yaml"
COLLECTOR_GO_MOD = ROOT / "deploy" / "collector" / "go.mod"
COMPOSE_FILE = ROOT / "compose.yaml"
README = ROOT / "README.md"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
JAEGER_LOCAL_CONFIG = ROOT / "deploy" / "jaeger-local.yaml"
RUNBOOK = ROOT / "docs" / "operations.md"

# Setting this one variable turns New Relic on; unset or empty, nothing goes there.
NEW_RELIC_KEY = "NEW_RELIC_LICENSE_KEY"
# The shape of a New Relic ingest license key: 40 letters and digits ending in NRAL.
SAMPLE_LICENSE_KEY = "0123456789abcdef0123456789abcdef0123NRAL"
# ${env:NAME} or ${env:NAME:-default}: the only expansion the collector config may use.
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
# ${NAME}, ${NAME:-default}, ${NAME:?message}: compose's interpolation.
COMPOSE_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def collector_release() -> str:
    """The collector release deploy/collector builds (its otelcol module's version)."""
    match = re.search(
        r"^\s*go\.opentelemetry\.io/collector/otelcol (v\S+)$",
        COLLECTOR_GO_MOD.read_text(encoding="utf-8"),
        flags=re.MULTILINE,
    )
    assert match is not None, "deploy/collector/go.mod requires no otelcol module"
    return match.group(1).removeprefix("v")


def load_yaml(path: Path) -> Any:
    """Parse a YAML file (the collector's config, which the collector itself also reads)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


class UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects a mapping key given twice.

    For compose files: Debian's docker-compose (1.29, the offline validator here) keeps
    the last of two equal keys without a word, as PyYAML does, so a pasted block can
    silently replace a service. (Compose v2 and the collector refuse them; the
    collector's config is left to the collector.) Keys brought in by a ``<<`` merge may
    be overridden, as YAML allows.
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
    _construct_unique_mapping,
)


def load_compose(text: str) -> Any:
    """Parse a compose file's text, refusing duplicate keys."""
    return yaml.load(text, Loader=UniqueKeyLoader)


def load_compose_file(path: Path = COMPOSE_FILE) -> Any:
    """Parse a compose file, refusing duplicate keys."""
    return load_compose(path.read_text(encoding="utf-8"))


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield (path, string) for every key and string value in a YAML tree."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}".lstrip("."), str(key)
            yield from strings(item, f"{path}.{key}".lstrip("."))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


def host_port(endpoint: str) -> tuple[str, str]:
    """Split ``host:port`` or ``scheme://host:port/path`` into host and port."""
    rest = endpoint.split("://", 1)[-1].split("/", 1)[0]
    if ":" not in rest:
        return rest, ""
    host, _, port = rest.rpartition(":")
    return host, port


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment, as a mapping (either of compose's two forms)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """Return (host_ip, host_port, container_port) for each port a service publishes."""
    found = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published") is not None:
                found.append(
                    (str(port.get("host_ip", "")), int(port["published"]), int(port["target"]))
                )
            continue
        spec = str(port).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            found.append((parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            found.append(("", int(parts[0]), int(parts[1])))
    return found


def mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Return (type, source, target) for each volume: type is bind or volume."""
    found = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            found.append((volume["type"], str(volume.get("source", "")), volume["target"]))
            continue
        source, _, rest = str(volume).partition(":")
        target = rest.split(":", 1)[0]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        found.append((kind, source, target))
    return found


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs, as ``dockerfile-parse`` reads them."""
    # The parser reads bytes, as its docstring says; types-dockerfile-parse has IO[str].
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))  # type: ignore[arg-type]
    return [(item["instruction"], item["value"]) for item in parser.structure]
