"""Excluded requests make no span, and nothing they call makes one either."""

from __future__ import annotations

import pytest
from flask import Flask

import cvtrace
from cvtrace.noise import ExcludedUrls
from cvtrace.testing import CapturedSpans
from tests.sample_app import create_app, create_engine


def _traced_app() -> Flask:
    engine = create_engine()
    app = create_app(engine)
    cvtrace.init(app=app, engine=engine)
    return app


class TestExcludedUrls:
    @pytest.mark.parametrize(
        ("path", "excluded"),
        [
            ("/up", True),
            ("/up/", False),
            ("/upload", False),
            ("/health", True),
            ("/static/app.css", True),
            ("/static", False),
            ("/favicon.ico", True),
            ("/users/1", False),
        ],
    )
    def test_default_entries(self, path: str, excluded: bool) -> None:
        matcher = ExcludedUrls(("/up", "/health", "/static/", "/favicon.ico"), environ={})
        assert matcher.excludes({"PATH_INFO": path}) is excluded

    def test_regex_entry_matches_the_whole_path_start(self) -> None:
        matcher = ExcludedUrls([r"^/api/v\d+/ping$"], environ={})
        assert matcher.excludes_path("/api/v2/ping")
        assert not matcher.excludes_path("/api/v2/ping/more")
        assert not matcher.excludes_path("/x/api/v2/ping")

    def test_standard_variable_is_a_regex_on_the_full_url(self) -> None:
        matcher = ExcludedUrls([], environ={"OTEL_PYTHON_FLASK_EXCLUDED_URLS": "internal/.*,ping"})
        environ = {"PATH_INFO": "/internal/metrics", "HTTP_HOST": "x", "wsgi.url_scheme": "http"}
        assert matcher.excludes(environ)
        assert not matcher.excludes({**environ, "PATH_INFO": "/users"})

    def test_bad_regex_is_a_config_error_naming_the_setting(self) -> None:
        with pytest.raises(
            cvtrace.CvtraceConfigError, match=r"CVTRACE_EXCLUDE_URLS: '\^\(' is not"
        ):
            ExcludedUrls(["^("], environ={})


class TestNoSpans:
    def test_health_check_and_its_query_make_no_span(self, cvtrace_spans: CapturedSpans) -> None:
        client = _traced_app().test_client()
        for _ in range(3):
            assert client.get("/up").status_code == 200
        assert client.get("/static/app.css").status_code == 200
        assert cvtrace_spans.spans == []

    def test_traced_request_after_excluded_ones_is_whole(
        self, cvtrace_spans: CapturedSpans
    ) -> None:
        client = _traced_app().test_client()
        client.get("/up")
        client.get("/users/1")
        spans = cvtrace_spans.spans
        assert len(spans) == 2
        server = next(s for s in spans if s.name == "GET /users/<int:user_id>")
        query = next(s for s in spans if s is not server)
        assert query.parent is not None
        assert query.parent.span_id == server.context.span_id

    def test_custom_exclusions_replace_the_defaults(
        self, cvtrace_spans: CapturedSpans, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CVTRACE_EXCLUDE_URLS", "/users/")
        client = _traced_app().test_client()
        client.get("/users/1")
        client.get("/up")
        assert cvtrace_spans.names() == ["select", "GET /up"]

    def test_standard_flask_variable_is_honoured(
        self, cvtrace_spans: CapturedSpans, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "users/2")
        client = _traced_app().test_client()
        client.get("/users/2")
        client.get("/users/1")
        assert [
            (s.attributes or {})["url.path"]
            for s in cvtrace_spans.by_name("GET /users/<int:user_id>")
        ] == ["/users/1"]
