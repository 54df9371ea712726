"""cvtrace.init(): off by default, standard variables, idempotence, the resource."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
import wrapt
from flask import Flask, got_request_exception
from opentelemetry import trace

import cvtrace
from cvtrace.testing import CapturedSpans
from tests.otlp_receiver import HttpOtlpReceiver
from tests.sample_app import create_app, create_engine


def _dialect_is_untouched(engine: sa.Engine) -> bool:
    """Whether the engine's dialect runs statements with its class's own methods.

    cvtrace traces an engine by shadowing these methods on its dialect object
    (:mod:`cvtrace.db_spans`), not through engine events.
    """
    dialect = engine.dialect
    return all(
        getattr(dialect, name).__func__ is getattr(type(dialect), name)
        for name in ("do_execute", "do_execute_no_params", "do_executemany")
    )


def _is_patched(function: object) -> bool:
    """Whether OpenTelemetry's instrumentors (which patch with wrapt) replaced it."""
    return isinstance(function, wrapt.ObjectProxy)


class TestDefaultIsOff:
    def test_no_exporter_means_nothing_installed_or_patched(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        engine = create_engine()
        app = create_app(engine)
        wsgi_app = app.wsgi_app
        record_factory = logging.getLogRecordFactory()
        caplog.set_level(logging.INFO, logger="cvtrace")

        handle = cvtrace.init(app=app, engine=engine)

        assert handle.enabled is False
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        assert app.wsgi_app == wsgi_app
        assert app.before_request_funcs == {}
        assert _dialect_is_untouched(engine)
        assert not _is_patched(sa.create_engine)
        assert not _is_patched(requests.Session.send)
        assert logging.getLogRecordFactory() is record_factory
        info = [r.getMessage() for r in caplog.records if r.name.startswith("cvtrace")]
        assert len(info) == 1
        assert "tracing is off" in info[0]
        assert "CVTRACE_EXPORTERS" in info[0]
        assert app.test_client().get("/users/1").json == {"id": 1, "name": "ada"}
        assert handle.force_flush() is True
        assert handle.stats().spans_ended == 0

    @pytest.mark.parametrize(
        ("variable", "value", "enabled"),
        [
            ("OTEL_TRACES_EXPORTER", "none", False),
            ("OTEL_TRACES_EXPORTER", "console", True),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9", True),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces", True),
            ("CVTRACE_EXPORTERS", "none", False),
            ("CVTRACE_EXPORTERS", "console", True),
        ],
    )
    def test_what_turns_tracing_on(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, enabled: bool
    ) -> None:
        monkeypatch.setenv(variable, value)
        handle = cvtrace.init()
        assert handle.enabled is enabled
        cvtrace.shutdown()

    def test_sdk_disabled_always_wins(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        handle = cvtrace.init(exporters=["console"])
        assert handle.enabled is False
        assert "OTEL_SDK_DISABLED" in handle.settings.disabled_reason

    def test_argument_beats_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CVTRACE_EXPORTERS", "console")
        assert cvtrace.init(exporters=False).enabled is False
        monkeypatch.setenv("CVTRACE_EXPORTERS", "none")
        handle = cvtrace.init(exporters="console")
        assert handle.settings.exporters == ("console",)

    def test_unknown_exporter_names_setting_value_and_choices(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CVTRACE_EXPORTERS", "otlp,jeager")
        with pytest.raises(cvtrace.CvtraceConfigError) as error:
            cvtrace.init()
        assert str(error.value) == (
            "CVTRACE_EXPORTERS: unknown exporter 'jeager'; "
            "expected one of otlp, jaeger, newrelic, local, console, none"
        )


def _process_state(app: Any, engine: sa.Engine) -> dict[str, object]:
    """What init() may change in the process, as far as it can be observed from outside."""
    return {
        "tracer provider": trace.get_tracer_provider(),
        "requests.Session.send": requests.Session.send,
        "log record factory": logging.getLogRecordFactory(),
        "environment": dict(os.environ),
        "SIGTERM handler": signal.getsignal(signal.SIGTERM),
        "app.wsgi_app": app.wsgi_app,
        "app.before_request_funcs": {k: list(v) for k, v in app.before_request_funcs.items()},
        "got_request_exception receivers": list(got_request_exception.receivers_for(app)),
        "engine dialect untouched": _dialect_is_untouched(engine),
        "handle": cvtrace.get_handle(),
    }


class TestAFailedInitChangesNothing:
    """All settings are validated before any side effect (issue 10, bug 2)."""

    @pytest.mark.parametrize(
        ("variable", "value", "message"),
        [
            (
                "CVTRACE_EXCLUDE_URLS",
                "/up,^/api/(v1",
                r"^CVTRACE_EXCLUDE_URLS: '\^/api/\(v1' is not a valid regular expression",
            ),
            (
                "OTEL_PYTHON_FLASK_EXCLUDED_URLS",
                "health)",
                r"^OTEL_PYTHON_FLASK_EXCLUDED_URLS: 'health\)' is not a valid regular",
            ),
            ("CVTRACE_SCRUB_PATTERNS", "[a-", r"^CVTRACE_SCRUB_PATTERNS: '\[a-' is not a regular"),
            ("OTEL_ATTRIBUTE_COUNT_LIMIT", "many", "^OTEL_ATTRIBUTE_COUNT_LIMIT: 'many' is not"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "^OTEL_EXPORTER_OTLP_COMPRESSION: unkno"),
            ("CVTRACE_EXPORTERS", "otlp,newrelic", "^NEW_RELIC_LICENSE_KEY: not set"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "-1", "^OTEL_BSP_MAX_QUEUE_SIZE: '-1' is not a whole"),
        ],
    )
    def test_then_a_corrected_init_installs_globally(
        self,
        monkeypatch: pytest.MonkeyPatch,
        otlp_http: HttpOtlpReceiver,
        variable: str,
        value: str,
        message: str,
    ) -> None:
        engine = create_engine()
        app = create_app(engine)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_http.base_url)
        monkeypatch.setenv(variable, value)
        before = _process_state(app, engine)
        threads_before = set(threading.enumerate())

        with pytest.raises(cvtrace.CvtraceConfigError, match=message):
            cvtrace.init(app=app, engine=engine)

        assert _process_state(app, engine) == before
        assert [t.name for t in set(threading.enumerate()) - threads_before] == []

        monkeypatch.delenv(variable)
        handle = cvtrace.init(app=app, engine=engine)
        assert handle.enabled
        assert cvtrace.get_handle() is handle
        assert trace.get_tracer_provider() is handle.provider
        with trace.get_tracer("tests").start_as_current_span("through the global provider"):
            app.test_client().get("/users/1")
        cvtrace.shutdown()
        assert sorted(s.name for s in otlp_http.spans()) == [
            "GET /users/<int:user_id>",
            "select",
            "through the global provider",
        ]


def test_a_failure_while_instrumenting_is_undone(otlp_http: HttpOtlpReceiver) -> None:
    """Only what cvtrace did is undone: an instrumentation the app made itself stays."""
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    class AlmostFlask:  # a WSGI callable, but no Flask app to hook into
        def wsgi_app(self, environ: object, start_response: object) -> list[bytes]:
            return []

    engine = create_engine()
    app = create_app(engine)
    apps_own = RequestsInstrumentor()
    apps_own.instrument()  # the app traces requests itself, before cvtrace.init()
    try:
        before = _process_state(app, engine)
        threads_before = set(threading.enumerate())
        with pytest.raises(AttributeError, match="before_request_funcs"):
            cvtrace.init(app=[app, AlmostFlask()], engine=engine, exporters="console")
        assert _process_state(app, engine) == before
        assert [t.name for t in set(threading.enumerate()) - threads_before] == []
        assert apps_own.is_instrumented_by_opentelemetry
    finally:
        apps_own.uninstrument()


class TestIdempotence:
    def test_second_init_returns_the_same_handle_and_adds_no_exporter(
        self,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
    ) -> None:
        first = cvtrace.init(exporters=["console"])
        second = cvtrace.init(exporters=["console"])
        assert second is first
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

        local_db = tmp_path / "never.sqlite3"
        third = cvtrace.init(exporters=["console", "local"], local_db=local_db)
        assert third is first
        assert any("already called with other settings" in r.getMessage() for r in caplog.records)

        trace.get_tracer("tests").start_span("the-one-span").end()
        cvtrace.shutdown()
        assert capsys.readouterr().err.count(" the-one-span ") == 1  # one console exporter
        assert not local_db.exists()  # and no local one

    def test_second_init_instruments_a_new_app_with_the_same_provider(
        self, cvtrace_spans: CapturedSpans
    ) -> None:
        engine = create_engine()
        first_app, second_app = create_app(engine), create_app(engine)
        cvtrace.init(app=first_app, engine=engine)
        cvtrace.init(app=second_app, engine=engine)
        first_app.test_client().get("/users/1")
        second_app.test_client().get("/users/2")
        spans = cvtrace_spans.spans
        assert [s.name for s in spans].count("GET /users/<int:user_id>") == 2
        assert sum("db.system.name" in (s.attributes or {}) for s in spans) == 2

    def test_several_apps_and_engines_at_once(self, cvtrace_spans: CapturedSpans) -> None:
        engines = [create_engine(), create_engine()]
        apps = [create_app(engines[0]), create_app(engines[1])]
        cvtrace.init(app=apps, engine=engines)
        for app in apps:
            app.test_client().get("/users/1")
        spans = cvtrace_spans.spans
        assert len([s for s in spans if s.kind is trace.SpanKind.SERVER]) == 2
        assert len([s for s in spans if s.kind is trace.SpanKind.CLIENT]) == 2

    def test_shutdown_then_init_starts_afresh(
        self, monkeypatch: pytest.MonkeyPatch, otlp_http: HttpOtlpReceiver
    ) -> None:
        """The same app and engine, traced again by the new handle, not the stopped one."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_http.base_url)
        engine = create_engine()
        app = create_app(engine)
        first = cvtrace.init(app=app, engine=engine)
        cvtrace.shutdown()
        assert first.enabled is False
        second = cvtrace.init(app=app, engine=engine)
        assert second is not first
        assert second.enabled
        app.test_client().get("/users/1")
        cvtrace.shutdown()
        assert sorted(s.name for s in otlp_http.spans()) == ["GET /users/<int:user_id>", "select"]


class TestResource:
    def _resource(
        self,
        app: Flask | None = None,
        service_name: str | None = None,
        service_version: str | None = None,
    ) -> dict[str, object]:
        handle = cvtrace.init(
            app,
            exporters=["console"],
            service_name=service_name,
            service_version=service_version,
        )
        assert handle.provider is not None
        return dict(handle.provider.resource.attributes)

    def test_defaults_from_the_app(self) -> None:
        resource = self._resource(app=create_app(create_engine()))
        assert resource["service.name"] == "sample_app"
        assert resource["host.name"] == socket.gethostname()
        assert resource["process.pid"] == os.getpid()
        assert "deployment.environment.name" not in resource

    def test_otel_service_name_beats_the_app_name(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=circuits,service.version=9.9")
        resource = self._resource(app=create_app(create_engine()))
        assert resource["service.name"] == "from-env"
        assert resource["team"] == "circuits"
        assert resource["service.version"] == "9.9"

    def test_arguments_beat_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
        monkeypatch.setenv("CVTRACE_ENVIRONMENT", "staging")
        resource = self._resource(service_name="from-arg", service_version="1.2.3")
        assert resource["service.name"] == "from-arg"
        assert resource["service.version"] == "1.2.3"
        assert resource["deployment.environment.name"] == "staging"

    def test_sensitive_resource_attributes_are_scrubbed(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deploy.token=s3cr3t,team=a")
        resource = self._resource()
        assert resource["deploy.token"] == "[REDACTED]"
        assert resource["team"] == "a"


class TestStandardSdkVariables:
    def test_sampler_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch, cvtrace_spans: CapturedSpans
    ) -> None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
        engine = create_engine()
        app = create_app(engine)
        cvtrace.init(app=app, engine=engine)
        app.test_client().get("/users/1")
        assert cvtrace_spans.spans == []

    def test_parent_based_by_default(self, cvtrace_spans: CapturedSpans) -> None:
        """An unsampled caller (flags 00) makes the whole request unsampled."""
        engine = create_engine()
        app = create_app(engine)
        cvtrace.init(app=app, engine=engine)
        client = app.test_client()
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"
        client.get("/users/1", headers={"traceparent": f"{parent}-00"})
        assert cvtrace_spans.spans == []
        client.get("/users/1", headers={"traceparent": f"{parent}-01"})
        server = next(s for s in cvtrace_spans.spans if s.kind is trace.SpanKind.SERVER)
        assert server.parent is not None
        assert server.parent.span_id == 0xB7AD6B7169203331
        assert server.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C

    def test_attribute_limits_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch, cvtrace_spans: CapturedSpans
    ) -> None:
        monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")
        engine = create_engine()
        app = create_app(engine)
        cvtrace.init(app=app, engine=engine)
        app.test_client().get("/users/1")
        server = next(s for s in cvtrace_spans.spans if s.kind is trace.SpanKind.SERVER)
        assert (server.attributes or {})["url.path"] == "/use"


class TestArgumentErrors:
    def test_app_must_be_a_flask_app(self) -> None:
        with pytest.raises(cvtrace.CvtraceConfigError, match=r"^app='nope': expected a Flask app"):
            cvtrace.init(app="nope", exporters=["console"])

    def test_engine_must_be_a_sqlalchemy_engine(self) -> None:
        with pytest.raises(cvtrace.CvtraceConfigError, match=r"^engine=42: expected a SQLAlchemy"):
            cvtrace.init(engine=42, exporters=["console"])


def test_service_version_defaults_to_the_apps_installed_distribution() -> None:
    import flask

    app = flask.Flask("cvtrace")  # an app whose package is an installed distribution
    handle = cvtrace.init(app=app, exporters=["console"])
    assert handle.provider is not None
    from cvtrace._version import __version__

    assert handle.provider.resource.attributes["service.version"] == __version__
