"""The ``local`` exporter and its store file: settings, and what happens to the file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import cvtrace
from cvtrace.exporters.local import default_db_path
from cvtrace.store import SpanStore


def make_spans(count: int, **span_attributes: str) -> cvtrace.Handle:
    """End ``count`` root spans (each its own trace) and export them now."""
    handle = cvtrace.get_handle()
    assert handle is not None
    assert handle.provider is not None
    tracer = handle.provider.get_tracer("tests")
    for index in range(count):
        with tracer.start_as_current_span(f"span-{index}") as span:
            span.set_attributes(span_attributes)
    assert handle.force_flush()
    return handle


def stored_spans(path: Path) -> int:
    with SpanStore(path, max_spans=0) as store:
        return store.span_count()


class TestDefaultPath:
    def test_env_wins(self, clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
        clean_env.setenv("CVTRACE_LOCAL_DB", str(tmp_path / "x.db"))
        assert default_db_path() == tmp_path / "x.db"

    def test_xdg_data_home(self, clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
        clean_env.setenv("XDG_DATA_HOME", str(tmp_path))
        assert default_db_path() == tmp_path / "cvtrace" / "traces.sqlite3"

    def test_home_default(self, clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
        clean_env.delenv("XDG_DATA_HOME", raising=False)
        clean_env.setenv("HOME", str(tmp_path))
        assert default_db_path() == tmp_path / ".local/share/cvtrace/traces.sqlite3"


class TestSettings:
    """The exporter's store settings are its own, from the settings table."""

    def test_a_viewer_variable_does_not_set_the_exporters_retention(
        self, clean_env: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        clean_env.setenv("CVTRACE_VIEWER_MAX_SPANS", "5")
        clean_env.setenv("CVTRACE_VIEWER_MAX_AGE_HOURS", "0.000001")
        cvtrace.init(exporters="local", local_db=tmp_path / "t.sqlite3")
        make_spans(12)
        cvtrace.shutdown()
        assert stored_spans(tmp_path / "t.sqlite3") == 12

    def test_local_retention_settings(self, clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
        clean_env.setenv("CVTRACE_LOCAL_MAX_SPANS", "10")
        cvtrace.init(exporters="local", local_db=tmp_path / "t.sqlite3")
        make_spans(12)
        cvtrace.shutdown()
        assert stored_spans(tmp_path / "t.sqlite3") == 9  # down to 90% of the limit

    def test_local_age_limit(self, clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
        clean_env.setenv("CVTRACE_LOCAL_MAX_AGE_HOURS", "0.000001")  # 3.6 ms
        cvtrace.init(exporters="local", local_db=tmp_path / "t.sqlite3")
        make_spans(3)
        cvtrace.shutdown()
        assert stored_spans(tmp_path / "t.sqlite3") == 0

    @pytest.mark.parametrize(
        ("variable", "value"),
        [("CVTRACE_LOCAL_MAX_SPANS", "lots"), ("CVTRACE_LOCAL_MAX_AGE_HOURS", "-1")],
    )
    def test_malformed_settings_name_the_variable(
        self, clean_env: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str
    ) -> None:
        clean_env.setenv(variable, value)
        with pytest.raises(cvtrace.CvtraceConfigError, match=f"{variable}: '{value}'"):
            cvtrace.init(exporters="local", local_db=tmp_path / "t.sqlite3")

    def test_extra_tag_keys_are_indexed(
        self, clean_env: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        clean_env.setenv("CVTRACE_STORE_TAG_KEYS", "app.tenant, app.plan")
        cvtrace.init(exporters="local", local_db=tmp_path / "t.sqlite3")
        make_spans(2, **{"app.tenant": "acme", "app.plan": "gold", "app.other": "x"})
        cvtrace.shutdown()
        with sqlite3.connect(tmp_path / "t.sqlite3") as conn:
            keys = {key for (key,) in conn.execute("SELECT key FROM tags")}
        conn.close()
        assert {"app.tenant", "app.plan"} <= keys
        assert "app.other" not in keys
