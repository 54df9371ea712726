"""``init()`` and ``shutdown()``, and the one place cvtrace keeps global state.

``init()`` decides from arguments and environment whether tracing is on. When it is
not, it installs nothing and patches nothing: the app runs as if cvtrace were absent.
When it is, it builds the resource, one :class:`~cvtrace.processor.ExportingSpanProcessor`
feeding every configured exporter, the tracer provider, and instruments the apps and
engines it is given, plus ``requests`` and logging. Spans are flushed at interpreter
exit and on SIGTERM; forked workers restart the export thread (and their spans carry
their own ``process.pid``: see :mod:`cvtrace.otlp.encoding`).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import FrameType
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from . import config, instrumentation
from .db_spans import QueryTracer
from .exceptions import CvtraceConfigError
from .exporters import create_exporters
from .noise import ExcludedUrls
from .processor import ExportingSpanProcessor, ExportStats
from .scrubbing import Scrubber

logger = logging.getLogger(__name__)

_NO_STATS = ExportStats(0, 0, 0, 0, 0)


@dataclass(eq=False)
class Handle:
    """What :func:`init` installed; ``enabled`` is False when tracing is off."""

    settings: config.Settings
    """The resolved settings."""
    provider: TracerProvider | None = None
    """The tracer provider, when tracing is on."""
    processor: ExportingSpanProcessor | None = None
    """The span processor feeding the exporters, when tracing is on."""
    excluded_urls: ExcludedUrls | None = None
    """Which requests make no span, when tracing is on."""
    span_limits: SpanLimits | None = None
    """The provider's span limits (from ``OTEL_*_LIMIT``), when tracing is on."""
    apps: list[Any] = field(default_factory=list)
    """Flask apps instrumented."""
    query_tracers: list[QueryTracer] = field(default_factory=list)
    """One per SQLAlchemy engine instrumented."""
    instrumentors: list[Any] = field(default_factory=list)
    """The OpenTelemetry instrumentors (requests, logging) this handle turned on."""
    arguments: dict[str, Any] = field(default_factory=dict)
    """The settings arguments ``init()`` was called with, to spot a differing second call."""
    is_shut_down: bool = False
    """Whether :meth:`shutdown` ran."""

    @property
    def enabled(self) -> bool:
        """Whether spans are made and exported."""
        return self.provider is not None and not self.is_shut_down

    def force_flush(self, timeout_s: float = 30.0) -> bool:
        """Export every span ended so far; return whether it finished within ``timeout_s``."""
        if self.processor is None or self.is_shut_down:
            return True
        return self.processor.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        """Flush within ``CVTRACE_SHUTDOWN_TIMEOUT`` and stop exporting. Idempotent."""
        if self.is_shut_down:
            return
        self.is_shut_down = True
        if self.processor is not None:
            self.processor.shutdown(self.settings.shutdown_timeout_s)

    def stats(self) -> ExportStats:
        """Counts of spans ended, exported, dropped and failed in this process."""
        return self.processor.stats() if self.processor is not None else _NO_STATS


class _State:
    """The global state department: everything cvtrace keeps per process."""

    handle: Handle | None = None
    """The installed handle, when tracing is on."""
    exporters_override: Sequence[SpanExporter] | None = None
    """Exporters that replace the configured ones, whatever arguments and environment say.

    Set by :mod:`cvtrace.testing`'s fixture, which captures spans in memory."""
    exit_hooks_registered = False
    """Whether the atexit and SIGTERM flushes are registered (once per process)."""
    recording = False
    """Whether ``init()`` calls are recorded: only while pytest imports the tests' modules,
    with :mod:`cvtrace.testing` loaded (never in production)."""
    lock = threading.RLock()

    def __init__(self) -> None:
        self.recorded_calls: list[RecordedCall] = []
        """The calls recorded, for the fixture to make again."""


@dataclass(frozen=True)
class RecordedCall:
    """An ``init()`` call, kept so that :mod:`cvtrace.testing` can make it again in a test.

    An app that calls ``init()`` at import has done so before any test starts; the
    fixture repeats the call with its capturing exporter. Apps and engines are held
    weakly: one a finished test dropped is not kept alive for the next.
    """

    apps: tuple[weakref.ref[Any], ...]
    engines: tuple[weakref.ref[Any], ...]
    arguments: dict[str, Any]

    def repeat(self) -> bool:
        """Call ``init()`` again as recorded; False if its apps and engines are all gone."""
        apps = [alive for ref in self.apps if (alive := ref()) is not None]
        engines = [alive for ref in self.engines if (alive := ref()) is not None]
        if (self.apps or self.engines) and not (apps or engines):
            return False
        init(apps, engines, **self.arguments)
        return True


_state = _State()


def init(
    app: Any | Iterable[Any] | None = None,
    engine: Any | Iterable[Any] | None = None,
    *,
    service_name: str | None = None,
    service_version: str | None = None,
    environment: str | None = None,
    exporters: Iterable[str] | str | bool | None = None,
    exclude_urls: Iterable[str] | str | bool | None = None,
    scrub: bool | None = None,
    scrub_patterns: Iterable[str] | str | None = None,
    log_correlation: bool | None = None,
    local_db: str | os.PathLike[str] | None = None,
    jaeger_endpoint: str | None = None,
    shutdown_timeout_s: float | None = None,
) -> Handle:
    """Trace a Flask + SQLAlchemy app, if an exporter is configured.

    Every argument left ``None`` falls back to its environment variable, then to its
    default (the table in :mod:`cvtrace.config` and the README).

    Args:
        app: a Flask app, or several.
        engine: a SQLAlchemy engine, or several.
        service_name: ``service.name``; else ``OTEL_SERVICE_NAME``, else the app's name.
        service_version: ``service.version`` (``CVTRACE_SERVICE_VERSION``).
        environment: ``deployment.environment.name`` (``CVTRACE_ENVIRONMENT``).
        exporters: names among otlp, jaeger, newrelic, local, console, none
            (``CVTRACE_EXPORTERS``); ``False`` or ``"none"`` turns tracing off.
        exclude_urls: paths that make no spans (``CVTRACE_EXCLUDE_URLS``).
        scrub: redact secrets before export (``CVTRACE_SCRUB``, default on).
        scrub_patterns: extra sensitive-key patterns (``CVTRACE_SCRUB_PATTERNS``).
        log_correlation: add trace ids to log records (``CVTRACE_LOG_CORRELATION``).
        local_db: the ``local`` exporter's SQLite file (``CVTRACE_LOCAL_DB``).
        jaeger_endpoint: the ``jaeger`` exporter's endpoint (``CVTRACE_JAEGER_ENDPOINT``).
        shutdown_timeout_s: time budget of the final flush (``CVTRACE_SHUTDOWN_TIMEOUT``).

    Returns:
        The installed handle; a second call returns the same one, instrumenting any
        new app or engine it is given but never adding exporters.

    Raises:
        CvtraceConfigError: a setting is unusable; the message says which and how to fix it.
    """
    arguments: dict[str, Any] = {
        "service_name": service_name,
        "service_version": service_version,
        "environment": environment,
        "exporters": _exporters_argument(exporters),
        "exclude_urls": exclude_urls,
        "scrub": scrub,
        "scrub_patterns": scrub_patterns,
        "log_correlation": log_correlation,
        "local_db": os.fspath(local_db) if local_db is not None else None,
        "jaeger_endpoint": jaeger_endpoint,
        "shutdown_timeout_s": shutdown_timeout_s,
    }
    apps, engines = _as_list(app), [_sync_engine(e) for e in _as_list(engine)]
    for candidate in apps:
        if not callable(getattr(candidate, "wsgi_app", None)):
            msg = f"app={candidate!r}: expected a Flask app (or a list of them)"
            raise CvtraceConfigError(msg)
    with _state.lock:
        if _state.recording:
            _state.recorded_calls.append(
                RecordedCall(
                    tuple(weakref.ref(a) for a in apps),
                    tuple(weakref.ref(e) for e in engines),
                    arguments,
                )
            )
        installed = _state.handle
        if installed is not None and not installed.is_shut_down:
            if arguments != installed.arguments:
                logger.warning(
                    "cvtrace.init() was already called with other settings; keeping those"
                )
            _instrument(installed, apps, engines)
            return installed
        # Every setting is parsed and checked before anything changes in the process:
        # a bad one raises here and leaves the process as init() found it.
        settings = config.resolve(arguments)
        excluded = ExcludedUrls(settings.exclude_urls)
        scrubber = Scrubber(settings.scrub_patterns) if settings.scrub else None
        override = _state.exporters_override
        if not settings.enabled and override is None:
            logger.info(
                "cvtrace: tracing is off (%s); set CVTRACE_EXPORTERS (otlp, jaeger, newrelic, "
                "local, console) or OTEL_EXPORTER_OTLP_ENDPOINT to turn it on",
                settings.disabled_reason,
            )
            return Handle(settings, arguments=arguments)
        sinks = list(override) if override is not None else create_exporters(settings)
        span_limits = SpanLimits()  # from the environment, as the provider would read them
        provider = _tracer_provider(_build_resource(settings, apps), scrubber, span_limits)
        # Side effects from here on; none of them reads a setting.
        if installed is not None:  # shut down: its instrumentation feeds a dead provider
            _uninstall(installed)
        handle = Handle(
            settings,
            provider,
            excluded_urls=excluded,
            span_limits=span_limits,
            arguments=arguments,
        )
        _install(handle, sinks, scrubber, apps, engines)
        _state.handle = handle
        logger.info(
            "cvtrace: tracing %s to %s",
            provider.resource.attributes.get("service.name"),
            ", ".join(settings.exporters) if override is None else "the test's exporters",
        )
        return handle


def shutdown() -> None:
    """Flush and stop the installed handle, if any."""
    handle = _state.handle
    if handle is not None:
        handle.shutdown()


def get_handle() -> Handle | None:
    """The installed handle, or ``None`` when :func:`init` has not turned tracing on."""
    return _state.handle


def _reset() -> None:
    """Shut down and forget the installed handle, undoing its instrumentation (for tests)."""
    with _state.lock:
        if _state.handle is not None:
            _uninstall(_state.handle)
        _state.handle = None
        _state.exporters_override = None


def _tracer_provider(
    resource: Resource, scrubber: Scrubber | None, span_limits: SpanLimits
) -> TracerProvider:
    """The provider, with the sampler and span limits of the standard variables."""
    if scrubber is not None:
        resource = scrubber.scrub_resource(resource)
    return TracerProvider(resource=resource, shutdown_on_exit=False, span_limits=span_limits)


def _install(
    handle: Handle,
    exporters: list[SpanExporter],
    scrubber: Scrubber | None,
    apps: list[Any],
    engines: list[Any],
) -> None:
    """Start exporting, instrument, then make the provider the global one.

    If anything fails on the way, what was done is undone before the error propagates.
    The global provider is set last: OpenTelemetry lets it be set only once per process.
    """
    provider = handle.provider
    assert provider is not None
    handle.processor = ExportingSpanProcessor(exporters, scrubber, handle.settings.batch)
    provider.add_span_processor(handle.processor)
    try:
        instrumentors = [instrumentation.instrument_requests(provider)]
        if handle.settings.log_correlation:
            instrumentors.append(instrumentation.instrument_logging(provider))
        handle.instrumentors = [i for i in instrumentors if i is not None]
        _instrument(handle, apps, engines)
    except BaseException:
        _uninstall(handle)
        raise
    trace.set_tracer_provider(provider)
    _register_exit_hooks()


def _uninstall(handle: Handle) -> None:
    """Stop ``handle`` and undo its instrumentation (not the global provider: see reset)."""
    handle.shutdown()
    for app in handle.apps:
        instrumentation.uninstrument_flask(app)
    for query_tracer in handle.query_tracers:
        query_tracer.remove()
    for instrumentor in handle.instrumentors:
        instrumentor.uninstrument()
    handle.apps.clear()
    handle.query_tracers.clear()
    handle.instrumentors.clear()


def _instrument(handle: Handle, apps: list[Any], engines: list[Any]) -> None:
    if handle.provider is None or handle.excluded_urls is None:
        return
    for app in apps:
        if app not in handle.apps:
            instrumentation.instrument_flask(
                app, handle.provider, handle.excluded_urls, handle.span_limits
            )
            handle.apps.append(app)
    traced = {id(query_tracer.engine) for query_tracer in handle.query_tracers}
    for engine in engines:
        if id(engine) not in traced:
            handle.query_tracers.append(
                instrumentation.instrument_engine(engine, handle.provider, handle.span_limits)
            )
            traced.add(id(engine))


def _build_resource(settings: config.Settings, apps: list[Any]) -> Resource:
    from_env = OTELResourceDetector().detect().attributes
    attributes: dict[str, Any] = {
        "host.name": socket.gethostname(),
        "process.pid": os.getpid(),
    }
    if settings.service_name:
        attributes["service.name"] = settings.service_name
    elif not os.environ.get("OTEL_SERVICE_NAME") and "service.name" not in from_env and apps:
        attributes["service.name"] = apps[0].name
    version = settings.service_version or (
        None if "service.version" in from_env else _package_version(apps)
    )
    if version:
        attributes["service.version"] = version
    if settings.environment:
        attributes["deployment.environment.name"] = settings.environment
    return Resource.create(attributes)


def _package_version(apps: list[Any]) -> str | None:
    """The installed version of the distribution named after the first app's package.

    Looked up by name (``my_app`` or ``my-app``): mapping every installed distribution
    to its packages would cost ~100 ms per process start.
    """
    if not apps:
        return None
    top_level = str(getattr(apps[0], "import_name", "")).split(".")[0]
    for distribution in dict.fromkeys((top_level, top_level.replace("_", "-"))):
        try:
            return metadata.version(distribution)
        except (metadata.PackageNotFoundError, ValueError):
            continue
    return None


def _register_exit_hooks() -> None:
    """Flush at interpreter exit and on SIGTERM (then end as the process would have)."""
    if _state.exit_hooks_registered:
        return
    _state.exit_hooks_registered = True
    atexit.register(shutdown)
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        shutdown()
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        else:
            os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)


def _as_list(value: Any | Iterable[Any] | None) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return list(value)
    return [value]


def _sync_engine(engine: Any) -> Any:
    """The engine whose statements to trace: an AsyncEngine's sync_engine, else itself."""
    from sqlalchemy.engine import Engine

    engine = getattr(engine, "sync_engine", engine)
    if not isinstance(engine, Engine):
        msg = f"engine={engine!r}: expected a SQLAlchemy Engine or AsyncEngine (or a list of them)"
        raise CvtraceConfigError(msg)
    return engine


def _exporters_argument(exporters: Iterable[str] | str | bool | None) -> Any:
    if exporters is False:
        return ("none",)
    if exporters is True:
        msg = "exporters=True: name the exporters, e.g. exporters=['otlp']"
        raise CvtraceConfigError(msg)
    return exporters
