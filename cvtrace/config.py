"""Settings: one table says which argument and variable set what, and the default.

Precedence is always the explicit argument to :func:`cvtrace.init`, then the
environment variable, then the default. ``None`` means "use the environment or the
default"; ``False`` turns a feature off.

The standard ``OTEL_*`` variables keep their meaning and are read where the
OpenTelemetry SDK reads them (resource, sampler, span limits, the OTLP exporters);
this module reads the few that decide whether tracing is on at all
(``OTEL_SDK_DISABLED``, ``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_ENDPOINT``),
and the table holds the batch settings (``OTEL_BSP_*``) that cvtrace's own span
processor honours.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .exceptions import CvtraceConfigError

EXPORTER_NAMES = ("otlp", "jaeger", "newrelic", "local", "console", "none")
DEFAULT_EXCLUDE_URLS = ("/up", "/health", "/static/", "/favicon.ico")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def parse_bool(env_var: str, raw: str) -> bool:
    """Parse a boolean setting, accepting true/false, 1/0, yes/no, on/off."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    msg = f"{env_var}: {raw!r} is not a boolean; use true or false"
    raise CvtraceConfigError(msg)


def parse_list(env_var: str, raw: str) -> tuple[str, ...]:
    """Parse a comma-separated list, dropping blanks."""
    del env_var
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def parse_float(env_var: str, raw: str) -> float:
    """Parse a non-negative number."""
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        msg = f"{env_var}: {raw!r} is not a non-negative number; use for example 5"
        raise CvtraceConfigError(msg)
    return value


def parse_non_negative_int(env_var: str, raw: str) -> int:
    """Parse a whole number of zero or more (zero often meaning "no limit")."""
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        msg = f"{env_var}: {raw!r} is not a whole number >= 0; use for example 1000000, or 0"
        raise CvtraceConfigError(msg)
    return value


def parse_positive_int(env_var: str, raw: str) -> int:
    """Parse a whole number above zero."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        msg = f"{env_var}: {raw!r} is not a whole number above zero; use for example 512"
        raise CvtraceConfigError(msg)
    return value


def parse_str(env_var: str, raw: str) -> str:
    """Keep a string setting as it is, stripped."""
    del env_var
    return raw.strip()


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    field: str
    """The :class:`Settings` field (and, for most, the ``init()`` argument)."""
    env_var: str
    """The environment variable read when the argument is ``None``."""
    default: Any
    """The value when neither the argument nor the variable is set."""
    parse: Callable[[str, str], Any]
    """Turns the variable's text into the field's value, raising CvtraceConfigError."""
    meaning: str
    """One line for the README's table."""


#: Every cvtrace setting. The README's table of variables is checked against it.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "exporters",
        "CVTRACE_EXPORTERS",
        None,
        parse_list,
        "Where spans go: comma-separated otlp, jaeger, newrelic, local, console or none. "
        "Unset: OTEL_TRACES_EXPORTER, then otlp if an OTLP endpoint is set, else tracing is off.",
    ),
    Setting(
        "service_version",
        "CVTRACE_SERVICE_VERSION",
        None,
        parse_str,
        "`service.version` of the resource (default: the app package's installed version).",
    ),
    Setting(
        "environment",
        "CVTRACE_ENVIRONMENT",
        None,
        parse_str,
        "`deployment.environment.name` of the resource, e.g. production.",
    ),
    Setting(
        "exclude_urls",
        "CVTRACE_EXCLUDE_URLS",
        DEFAULT_EXCLUDE_URLS,
        parse_list,
        "Paths that make no span at all, nor do the queries they run: an entry ending in / "
        "excludes all below it, ^regex matches the path, others match it exactly.",
    ),
    Setting(
        "scrub",
        "CVTRACE_SCRUB",
        True,
        parse_bool,
        "Redact secrets, query values of sensitive parameters and SQL literals before export.",
    ),
    Setting(
        "scrub_patterns",
        "CVTRACE_SCRUB_PATTERNS",
        (),
        parse_list,
        "Extra regular expressions (comma-separated) for attribute keys whose values are redacted.",
    ),
    Setting(
        "log_correlation",
        "CVTRACE_LOG_CORRELATION",
        True,
        parse_bool,
        "Add otelTraceID / otelSpanID to every log record (see cvtrace.LOG_FORMAT).",
    ),
    Setting(
        "local_db",
        "CVTRACE_LOCAL_DB",
        None,
        parse_str,
        "SQLite file of the `local` exporter, the file `cvtrace view` opens "
        "(default ~/.local/share/cvtrace/traces.sqlite3).",
    ),
    Setting(
        "local_max_spans",
        "CVTRACE_LOCAL_MAX_SPANS",
        1_000_000,
        parse_non_negative_int,
        "Spans the `local` exporter keeps in its store; above it the oldest whole traces "
        "are deleted (0: no limit).",
    ),
    Setting(
        "local_max_age_hours",
        "CVTRACE_LOCAL_MAX_AGE_HOURS",
        0.0,
        parse_float,
        "Hours after which the `local` exporter deletes traces from its store (0: never).",
    ),
    Setting(
        "store_tag_keys",
        "CVTRACE_STORE_TAG_KEYS",
        (),
        parse_list,
        "More attribute keys (comma-separated) that the span store indexes for fast tag "
        "search, beyond the built-in ones; read by the `local` exporter and the viewer.",
    ),
    Setting(
        "jaeger_endpoint",
        "CVTRACE_JAEGER_ENDPOINT",
        "http://localhost:4318",
        parse_str,
        "Jaeger's OTLP endpoint for the `jaeger` exporter: http://host:4318 (OTLP/HTTP) "
        "or grpc://host:4317 (OTLP/gRPC).",
    ),
    Setting(
        "shutdown_timeout_s",
        "CVTRACE_SHUTDOWN_TIMEOUT",
        5.0,
        parse_float,
        "Seconds that shutdown (and exit) may spend flushing spans before giving up on them.",
    ),
    # The standard batch settings, which cvtrace's span processor honours (no init() argument).
    Setting(
        "schedule_delay_millis",
        "OTEL_BSP_SCHEDULE_DELAY",
        5000.0,
        parse_float,
        "Longest wait between two exports, in milliseconds.",
    ),
    Setting(
        "max_queue_size",
        "OTEL_BSP_MAX_QUEUE_SIZE",
        2048,
        parse_positive_int,
        "Spans held for export before new ones are dropped (and counted).",
    ),
    Setting(
        "max_export_batch_size",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        None,
        parse_positive_int,
        "Spans per export: 512, or the queue size if smaller; at most the queue size.",
    ),
    Setting(
        "export_timeout_millis",
        "OTEL_BSP_EXPORT_TIMEOUT",
        30000.0,
        parse_float,
        "Longest time an export may take, in milliseconds.",
    ),
)

_BY_FIELD = {setting.field: setting for setting in SETTINGS}

#: The SDK's span limits. The SDK reads them itself, when the tracer provider is made;
#: cvtrace checks them first, so that a bad one stops init() before anything changes.
SPAN_LIMIT_VARIABLES = (
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
)


@dataclass(frozen=True)
class BatchSettings:
    """How the span processor batches (from the ``OTEL_BSP_*`` rows of :data:`SETTINGS`)."""

    schedule_delay_s: float = 5.0
    """Longest wait between two exports."""
    max_queue_size: int = 2048
    """Spans held before new ones are dropped."""
    max_export_batch_size: int = 512
    """Spans per export call."""
    export_timeout_s: float = 30.0
    """Longest time one export may take."""


@dataclass(frozen=True)
class Settings:
    """Everything :func:`cvtrace.init` decided, after arguments, environment and defaults."""

    exporters: tuple[str, ...]
    """Exporter names, validated; empty when tracing is off."""
    disabled_reason: str
    """Why tracing is off ("" when it is on)."""
    service_name: str | None
    """The ``service_name`` argument (the resource falls back to OTEL_SERVICE_NAME, the app)."""
    service_version: str | None
    """``service.version``, if known."""
    environment: str | None
    """``deployment.environment.name``, if set."""
    exclude_urls: tuple[str, ...]
    """Paths that make no spans."""
    scrub: bool
    """Whether secrets are redacted before export."""
    scrub_patterns: tuple[str, ...]
    """Extra sensitive-key regular expressions."""
    log_correlation: bool
    """Whether log records carry trace and span ids."""
    local_db: str | None
    """SQLite file of the ``local`` exporter (None: the store's default)."""
    local_max_spans: int
    """Spans the ``local`` exporter's store keeps (0: no limit)."""
    local_max_age_hours: float
    """Age after which the ``local`` exporter deletes traces (0: never)."""
    store_tag_keys: tuple[str, ...]
    """Attribute keys indexed for tag search beyond the store's defaults."""
    jaeger_endpoint: str
    """Jaeger's OTLP endpoint."""
    shutdown_timeout_s: float
    """Time budget of the final flush."""
    batch: BatchSettings
    """Batching, from the ``OTEL_BSP_*`` variables."""

    @property
    def enabled(self) -> bool:
        """Whether spans are made at all."""
        return bool(self.exporters)


def resolve(arguments: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Apply the precedence argument > environment > default to every setting.

    Args:
        arguments: ``init()``'s keyword arguments; ``None`` values fall through.
        environ: the environment (``os.environ`` when omitted).

    Raises:
        CvtraceConfigError: a value is unusable; the message names the setting and the fix.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        argument = arguments.get(setting.field)
        raw = env.get(setting.env_var)
        if argument is not None:
            values[setting.field] = _normalise_argument(setting, argument)
        elif raw is not None and raw.strip():
            values[setting.field] = setting.parse(setting.env_var, raw)
        else:
            values[setting.field] = setting.default

    _check_span_limits(env)
    _check_sampler(env)
    exporters, reason = _resolve_exporters(arguments.get("exporters"), values["exporters"], env)
    if values["scrub"] is False:
        values["scrub_patterns"] = ()
    return Settings(
        exporters=exporters,
        disabled_reason=reason,
        service_name=arguments.get("service_name"),
        service_version=values["service_version"],
        environment=values["environment"],
        exclude_urls=tuple(values["exclude_urls"] or ()),
        scrub=bool(values["scrub"]),
        scrub_patterns=tuple(values["scrub_patterns"] or ()),
        log_correlation=bool(values["log_correlation"]),
        local_db=values["local_db"],
        local_max_spans=int(values["local_max_spans"]),
        local_max_age_hours=float(values["local_max_age_hours"]),
        store_tag_keys=tuple(values["store_tag_keys"] or ()),
        jaeger_endpoint=values["jaeger_endpoint"],
        shutdown_timeout_s=float(values["shutdown_timeout_s"]),
        batch=_batch_settings(values),
    )


def _batch_settings(values: Mapping[str, Any]) -> BatchSettings:
    """The processor's batching: milliseconds become seconds, the batch fits the queue."""
    queue = int(values["max_queue_size"])
    batch = values["max_export_batch_size"]
    if batch is None:
        batch = min(BatchSettings.max_export_batch_size, queue)
    elif batch > queue:
        msg = (
            f"OTEL_BSP_MAX_EXPORT_BATCH_SIZE: {batch} is larger than "
            f"OTEL_BSP_MAX_QUEUE_SIZE ({queue}); make it at most that"
        )
        raise CvtraceConfigError(msg)
    return BatchSettings(
        schedule_delay_s=float(values["schedule_delay_millis"]) / 1000,
        max_queue_size=queue,
        max_export_batch_size=int(batch),
        export_timeout_s=float(values["export_timeout_millis"]) / 1000,
    )


def _check_span_limits(env: Mapping[str, str]) -> None:
    """Raise for a span limit the SDK would refuse: a whole number >= 0, or empty (none)."""
    for variable in SPAN_LIMIT_VARIABLES:
        raw = env.get(variable)
        if raw is None or not raw.strip():
            continue
        try:
            valid = int(raw) >= 0
        except ValueError:
            valid = False
        if not valid:
            msg = (
                f"{variable}: {raw!r} is not a whole number >= 0; use for example 128, "
                "or an empty value for no limit"
            )
            raise CvtraceConfigError(msg)


SAMPLERS = (
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
    "always_on",
    "always_off",
    "traceidratio",
)
"""The ``OTEL_TRACES_SAMPLER`` values the OpenTelemetry SDK builds a sampler for."""


def _check_sampler(env: Mapping[str, str]) -> None:
    """Raise for a sampler or ratio the SDK would replace, with a warning, by its default."""
    name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if name and name not in SAMPLERS:
        msg = (
            f"OTEL_TRACES_SAMPLER: {name!r} is not a sampler the OpenTelemetry SDK knows; "
            f"use one of {', '.join(SAMPLERS)} (e.g. parentbased_traceidratio with "
            "OTEL_TRACES_SAMPLER_ARG=0.1)"
        )
        raise CvtraceConfigError(msg)
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if not name.endswith("traceidratio") or not raw:
        return
    try:
        valid = 0.0 <= float(raw) <= 1.0
    except ValueError:
        valid = False
    if not valid:
        msg = (
            f"OTEL_TRACES_SAMPLER_ARG: {raw!r} is not a ratio from 0 to 1 for {name}; "
            "use for example 0.1 (one trace in ten)"
        )
        raise CvtraceConfigError(msg)


def _normalise_argument(setting: Setting, argument: Any) -> Any:
    """Accept lists for list settings and ``False`` for "off"."""
    if setting.parse is parse_list:
        if argument is False:
            return ()
        if isinstance(argument, str):
            return parse_list(setting.field, argument)
        if isinstance(argument, Sequence):
            return tuple(str(item) for item in argument)
        msg = (
            f"{setting.field}={argument!r}: expected a list of strings or a comma-separated string"
        )
        raise CvtraceConfigError(msg)
    return argument


def _resolve_exporters(
    argument: object, configured: tuple[str, ...] | None, env: Mapping[str, str]
) -> tuple[tuple[str, ...], str]:
    """Return the exporter names and, when there are none, why tracing is off."""
    if parse_bool("OTEL_SDK_DISABLED", env.get("OTEL_SDK_DISABLED", "")):
        return (), "OTEL_SDK_DISABLED is true"
    if configured is not None:
        setting_name = "exporters" if argument is not None else "CVTRACE_EXPORTERS"
        names = _validate_exporters(setting_name, configured)
        return names, "" if names else f"{setting_name} is none"
    otel_exporter = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if otel_exporter:
        names = _validate_exporters("OTEL_TRACES_EXPORTER", parse_list("", otel_exporter))
        return names, "" if names else "OTEL_TRACES_EXPORTER is none"
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return ("otlp",), ""
    return (), "no exporter is configured"


def _validate_exporters(setting_name: str, names: Sequence[str]) -> tuple[str, ...]:
    """Check every name, drop ``none`` and duplicates, keep the order."""
    valid: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if name not in EXPORTER_NAMES:
            msg = (
                f"{setting_name}: unknown exporter {raw!r}; "
                f"expected one of {', '.join(EXPORTER_NAMES)}"
            )
            raise CvtraceConfigError(msg)
        if name != "none" and name not in valid:
            valid.append(name)
    return tuple(valid)
