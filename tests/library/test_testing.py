"""cvtrace.testing: the pytest plugin users get on install."""

from __future__ import annotations

import pytest
from opentelemetry import trace

import cvtrace
from cvtrace.testing import CapturedSpans

pytest_plugins = ["pytester"]


def test_fixture_is_available_without_import(pytester: pytest.Pytester) -> None:
    """The ``cvtrace_spans`` fixture comes from the installed entry point, not a conftest."""
    pytester.makepyfile(
        """
        import flask
        import cvtrace

        def create_app():
            app = flask.Flask("users_app")

            @app.get("/hello")
            def hello():
                return "hi"

            cvtrace.init(app=app)
            return app

        def test_traced(cvtrace_spans):
            create_app().test_client().get("/hello")
            assert cvtrace_spans.names() == ["GET /hello"]
            span = cvtrace_spans.by_name("GET /hello")[0]
            assert span.resource.attributes["service.name"] == "users_app"
            cvtrace_spans.clear()
            assert cvtrace_spans.spans == []

        def test_reset_between_tests(cvtrace_spans):
            assert cvtrace.get_handle() is None
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_module_level_tracer_reaches_every_tests_spans(pytester: pytest.Pytester) -> None:
    """An app's ``tracer = trace.get_tracer(__name__)`` at import time is OpenTelemetry's
    proxy, which keeps the first provider it meets: the second test's spans went to the
    first test's, shut down, and were lost."""
    pytester.makepyfile(
        """
        import pytest
        from opentelemetry import trace
        import cvtrace

        tracer = trace.get_tracer("users_app.jobs")  # at import, before any init

        def run_job():
            with tracer.start_as_current_span("nightly job"):
                pass

        @pytest.mark.parametrize("run", [1, 2, 3])
        def test_job_is_traced(cvtrace_spans, run):
            cvtrace.init(service_name="jobs")
            run_job()
            assert cvtrace_spans.names() == ["nightly job"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_an_app_traced_at_import_is_traced_in_every_test(pytester: pytest.Pytester) -> None:
    """README's "Tracing your app" (``init()`` at module level, tracing off in the tests'
    environment) with its "Testing your app": the fixture captured nothing before."""
    pytester.makepyfile(
        users_app="""
        import cvtrace
        from flask import Flask
        from sqlalchemy import create_engine, text

        engine = create_engine("sqlite://")
        app = Flask(__name__)

        @app.get("/users/<int:user_id>")
        def user(user_id):
            with engine.connect() as connection:
                return str(connection.execute(text("SELECT 1")).scalar())

        cvtrace.init(app=app, engine=engine, exclude_urls="/up")
        """,
        test_users="""
        import pytest
        from users_app import app

        @pytest.mark.parametrize("run", [1, 2])
        def test_user_page_is_traced(cvtrace_spans, run):
            app.test_client().get("/users/1")
            assert cvtrace_spans.names() == ["SELECT", "GET /users/<int:user_id>"]

        def test_without_the_fixture_nothing_is_traced():
            import cvtrace
            app.test_client().get("/users/1")
            assert cvtrace.get_handle() is None

        def test_an_init_made_in_a_test_is_not_recorded():
            import cvtrace
            cvtrace.init(app=app, exporters=False, scrub=False)

        def test_the_fixture_makes_only_the_import_time_call_again(cvtrace_spans):
            import cvtrace
            assert cvtrace.get_handle().settings.scrub is True
            assert cvtrace.get_handle().settings.exclude_urls == ("/up",)
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_fixture_overrides_configured_exporters(
    cvtrace_spans: CapturedSpans, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with an exporter configured, spans stay in memory during the test.

    The settings still say what was configured: the fixture replaces the exporters,
    it does not rewrite the configuration. ``newrelic`` without its license key would
    stop ``init()`` if it were built.
    """
    monkeypatch.setenv("CVTRACE_EXPORTERS", "newrelic")
    handle = cvtrace.init()
    assert handle.enabled
    assert handle.settings.exporters == ("newrelic",)
    trace.get_tracer("tests").start_span("kept in memory").end()
    assert cvtrace_spans.names() == ["kept in memory"]


def test_fixture_turns_tracing_on_when_nothing_is_configured(
    cvtrace_spans: CapturedSpans,
) -> None:
    handle = cvtrace.init()
    assert handle.enabled
    assert handle.settings.exporters == ()
    trace.get_tracer("tests").start_span("kept in memory").end()
    assert cvtrace_spans.names() == ["kept in memory"]
