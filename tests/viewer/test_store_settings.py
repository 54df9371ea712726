"""The store the viewer opens: its own retention settings, the shared tag keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvtrace.exceptions import CvtraceConfigError
from cvtrace.store import DEFAULT_MAX_SPANS, DEFAULT_TAG_KEYS
from cvtrace.viewer import create_app, get_store, store_options


def test_viewer_variables_set_the_viewers_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CVTRACE_VIEWER_MAX_SPANS", "5")
    monkeypatch.setenv("CVTRACE_VIEWER_MAX_AGE_HOURS", "2")
    monkeypatch.setenv("CVTRACE_LOCAL_MAX_SPANS", "7")  # the app exporter's, not the viewer's
    monkeypatch.setenv("CVTRACE_STORE_TAG_KEYS", "app.tenant")
    store = get_store(create_app({"DB_PATH": tmp_path / "v.sqlite3"}))
    try:
        assert (store.max_spans, store.max_age_s) == (5, 7200.0)
        assert store.tag_keys == DEFAULT_TAG_KEYS | {"app.tenant"}
    finally:
        store.close()


def test_defaults(tmp_path: Path) -> None:
    store = get_store(create_app({"DB_PATH": tmp_path / "v.sqlite3"}))
    try:
        assert (store.max_spans, store.max_age_s) == (DEFAULT_MAX_SPANS, 0)
        assert store.tag_keys == DEFAULT_TAG_KEYS
    finally:
        store.close()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CVTRACE_VIEWER_MAX_SPANS", "lots"), ("CVTRACE_VIEWER_MAX_AGE_HOURS", "-3")],
)
def test_malformed_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(CvtraceConfigError, match=f"{variable}: '{value}'"):
        create_app({"DB_PATH": tmp_path / "v.sqlite3"})
    assert not (tmp_path / "v.sqlite3").exists()


def test_outside_the_app_the_variables_give_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """``cvtrace import`` writes the viewer's store with the viewer's settings."""
    monkeypatch.setenv("CVTRACE_VIEWER_MAX_SPANS", "5")
    monkeypatch.setenv("CVTRACE_VIEWER_MAX_AGE_HOURS", "0.5")
    monkeypatch.setenv("CVTRACE_STORE_TAG_KEYS", "app.tenant")
    assert store_options({}) == {
        "max_spans": 5,
        "max_age_s": 1800.0,
        "tag_keys": DEFAULT_TAG_KEYS | {"app.tenant"},
    }
    assert store_options({"MAX_SPANS": 0})["max_spans"] == 0  # the app's config first
