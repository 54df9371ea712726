"""The ``local`` exporter and its store file: settings, and what happens to the file."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import cvtrace
from cvtrace.exporters.local import default_db_path
from cvtrace.store import SpanStore, WriteResult


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
    def test_env_wins(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("CVTRACE_LOCAL_DB", str(tmp_path / "x.db"))
        assert default_db_path() == tmp_path / "x.db"

    def test_xdg_data_home(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
        assert default_db_path() == tmp_path / "cvtrace" / "traces.sqlite3"

    def test_home_default(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
        monkeypatch.setenv("HOME", str(tmp_path))
        assert default_db_path() == tmp_path / ".local/share/cvtrace/traces.sqlite3"


class TestSettings:
    """The exporter's store settings are its own, from the settings table."""

    def test_a_viewer_variable_does_not_set_the_exporters_retention(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("CVTRACE_VIEWER_MAX_SPANS", "5")
        monkeypatch.setenv("CVTRACE_VIEWER_MAX_AGE_HOURS", "0.000001")
        cvtrace.init(exporters="local", local_db=tmp_path / "t.sqlite3")
        make_spans(12)
        cvtrace.shutdown()
        assert stored_spans(tmp_path / "t.sqlite3") == 12

    def test_local_retention_settings(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("CVTRACE_LOCAL_MAX_SPANS", "10")
        cvtrace.init(exporters="local", local_db=tmp_path / "t.sqlite3")
        make_spans(12)
        cvtrace.shutdown()
        assert stored_spans(tmp_path / "t.sqlite3") == 9  # down to 90% of the limit

    def test_local_age_limit(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("CVTRACE_LOCAL_MAX_AGE_HOURS", "0.000001")  # 3.6 ms
        cvtrace.init(exporters="local", local_db=tmp_path / "t.sqlite3")
        make_spans(3)
        cvtrace.shutdown()
        assert stored_spans(tmp_path / "t.sqlite3") == 0

    @pytest.mark.parametrize(
        ("variable", "value"),
        [("CVTRACE_LOCAL_MAX_SPANS", "lots"), ("CVTRACE_LOCAL_MAX_AGE_HOURS", "-1")],
    )
    def test_malformed_settings_name_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str
    ) -> None:
        monkeypatch.setenv(variable, value)
        with pytest.raises(cvtrace.CvtraceConfigError, match=f"{variable}: '{value}'"):
            cvtrace.init(exporters="local", local_db=tmp_path / "t.sqlite3")

    def test_extra_tag_keys_are_indexed(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("CVTRACE_STORE_TAG_KEYS", "app.tenant, app.plan")
        cvtrace.init(exporters="local", local_db=tmp_path / "t.sqlite3")
        make_spans(2, **{"app.tenant": "acme", "app.plan": "gold", "app.other": "x"})
        cvtrace.shutdown()
        with sqlite3.connect(tmp_path / "t.sqlite3") as conn:
            keys = {key for (key,) in conn.execute("SELECT key FROM tags")}
        conn.close()
        assert {"app.tenant", "app.plan"} <= keys
        assert "app.other" not in keys


def deletion_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "deleted or replaced" in r.getMessage()]


class TestStoreFileDeleted:
    """The store's files (or their directory) removed while the app runs."""

    @pytest.mark.parametrize("removed", ["the files", "the directory"])
    def test_later_spans_go_to_a_new_store_logged_once(
        self,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
        removed: str,
    ) -> None:
        db = tmp_path / "store" / "t.sqlite3"
        cvtrace.init(exporters="local", local_db=db)
        make_spans(3)
        if removed == "the files":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink()
        else:
            shutil.rmtree(db.parent)
        with caplog.at_level(logging.INFO, logger="cvtrace"):
            make_spans(4)
            stats = make_spans(2).stats()
        cvtrace.shutdown()
        assert len(deletion_warnings(caplog)) == 1
        assert (stats.spans_exported, stats.spans_failed) == (9, 0)
        assert stored_spans(db) == 6  # the first 3 went with the deleted file

    def test_spans_written_as_the_file_goes_are_written_again(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """The deletion lands while a batch is written (after the check before it).

        No real timing can be forced: wrapping ``write_encoded`` puts the deletion
        right after the write, where a concurrent ``rm`` could land.
        """
        db = tmp_path / "t.sqlite3"
        write_encoded = SpanStore.write_encoded
        deleted: list[Path] = []

        def write_then_delete(self: SpanStore, resources: Any) -> WriteResult:
            result = write_encoded(self, resources)
            if not deleted:
                deleted.extend(Path(f"{db}{suffix}") for suffix in ("", "-wal", "-shm"))
                for path in deleted:
                    path.unlink()
            return result

        monkeypatch.setattr(SpanStore, "write_encoded", write_then_delete)
        cvtrace.init(exporters="local", local_db=db)
        stats = make_spans(3).stats()
        cvtrace.shutdown()
        assert deleted
        assert (stats.spans_exported, stats.spans_failed) == (3, 0)
        assert stored_spans(db) == 3

    def test_what_cannot_be_written_counts_as_failed(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        db = tmp_path / "store" / "t.sqlite3"
        cvtrace.init(exporters="local", local_db=db)
        make_spans(3)
        shutil.rmtree(db.parent)
        db.parent.write_text("a file where the store's directory was")
        with caplog.at_level(logging.INFO, logger="cvtrace"):
            make_spans(4)
            stats = make_spans(2).stats()
        cvtrace.shutdown()
        assert len(deletion_warnings(caplog)) == 1
        assert (stats.spans_exported, stats.spans_failed) == (3, 6)

    def test_no_new_store_beside_the_wal_of_the_deleted_one(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Only the main file deleted while another process (a viewer) has it open: its
        -wal and -shm remain, and a new file beside them would be read through them."""
        db = tmp_path / "t.sqlite3"
        cvtrace.init(exporters="local", local_db=db)
        make_spans(3)
        with SpanStore(db) as viewer, caplog.at_level(logging.WARNING, logger="cvtrace"):
            viewer.services()
            db.unlink()
            stats = make_spans(2).stats()
        assert (stats.spans_exported, stats.spans_failed) == (3, 2)
        assert not db.exists()
        assert any(
            "t.sqlite3-wal and t.sqlite3-shm remain" in r.getMessage() for r in caplog.records
        )
        for suffix in ("-wal", "-shm"):  # what the message says to do
            Path(f"{db}{suffix}").unlink()
        stats = make_spans(1).stats()
        cvtrace.shutdown()
        assert (stats.spans_exported, stats.spans_failed) == (4, 2)
        assert stored_spans(db) == 1
