"""``cvtrace export`` as a real subprocess: the file it writes, where, and its errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from cvtrace.cli import main
from cvtrace.store import SpanStore
from tests.viewer.support import make_request, simple_trace, store_snapshot
from tests.viewer.test_exporting import point_the_trace_page_at_a_missing_url

pytestmark = pytest.mark.slow


def cvtrace(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cvtrace.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, str]:
    """A store file holding one trace; its path and the trace's id."""
    path = tmp_path / "traces.sqlite3"
    specs = simple_trace(service="checkout", children=2)
    with SpanStore(path, max_spans=0) as store:
        store.write_request(make_request(specs))
    return path, specs[0].trace_id.hex()


def is_export_of(path: Path, trace_hex: str) -> bool:
    text = path.read_text(encoding="utf-8")
    return (
        text.startswith("<!doctype html>")
        and f'data-page="/trace/{trace_hex}"' in text
        and text.rstrip().endswith("</html>")
    )


def test_default_file_name_in_the_current_directory(
    stored: tuple[Path, str], tmp_path: Path
) -> None:
    db, trace_hex = stored
    work = tmp_path / "work"
    work.mkdir()
    done = cvtrace("export", trace_hex, "--db", str(db), cwd=work)
    assert done.returncode == 0, done.stderr
    written = work / f"trace-{trace_hex}.html"
    assert is_export_of(written, trace_hex)
    assert f"wrote trace-{trace_hex}.html" in done.stdout
    assert sorted(p.name for p in work.iterdir()) == [written.name]  # no .part left


def test_output_option_and_a_short_id(tmp_path: Path) -> None:
    """-o names the file; an id with leading zeros may be given without them."""
    db = tmp_path / "traces.sqlite3"
    specs = simple_trace()
    for spec in specs:
        spec.trace_id = bytes(4) + spec.trace_id[4:]
    with SpanStore(db, max_spans=0) as store:
        store.write_request(make_request(specs))
    target = tmp_path / "out" / "for-alice.html"
    target.parent.mkdir()
    short = specs[0].trace_id.hex().lstrip("0")
    done = cvtrace("export", short, "-o", str(target), "--db", str(db), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert is_export_of(target, specs[0].trace_id.hex())


def test_standard_output(stored: tuple[Path, str], tmp_path: Path) -> None:
    db, trace_hex = stored
    done = cvtrace("export", trace_hex, "-o", "-", "--db", str(db), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("<!doctype html>")
    assert f'data-page="/trace/{trace_hex}"' in done.stdout


def test_the_store_from_the_environment_and_left_as_it_was(
    stored: tuple[Path, str], tmp_path: Path
) -> None:
    """Without --db, the store the local exporter and cvtrace view use; read-only."""
    db, trace_hex = stored
    before = store_snapshot(db)
    done = cvtrace("export", trace_hex, cwd=tmp_path, env={"CVTRACE_LOCAL_DB": str(db)})
    assert done.returncode == 0, done.stderr
    assert is_export_of(tmp_path / f"trace-{trace_hex}.html", trace_hex)
    assert store_snapshot(db) == before


def test_unknown_trace(stored: tuple[Path, str], tmp_path: Path) -> None:
    db, _ = stored
    done = cvtrace("export", "ab" * 16, "--db", str(db), "-o", "x.html", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == f"cvtrace export: trace {'ab' * 16} is not in the store {db}\n"
    assert not (tmp_path / "x.html").exists()


def test_not_a_trace_id(stored: tuple[Path, str], tmp_path: Path) -> None:
    db, _ = stored
    done = cvtrace("export", "not-hex", "--db", str(db), cwd=tmp_path)
    assert done.returncode == 2
    assert "'not-hex' is not a trace id: give up to 32 hex digits" in done.stderr


def test_no_store_there(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.sqlite3"
    done = cvtrace("export", "ab" * 16, "--db", str(missing), cwd=tmp_path)
    assert done.returncode == 1
    assert f"no store at {missing}; name it with --db" in done.stderr
    assert not missing.exists()  # not created by looking


def test_not_a_store(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    done = cvtrace("export", "ab" * 16, "--db", str(other), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("cvtrace export: ")
    assert str(other) in done.stderr
    assert other.read_text() == "hello\n"


def test_an_unwritable_target(stored: tuple[Path, str], tmp_path: Path) -> None:
    db, trace_hex = stored
    target = tmp_path / "no-such-dir" / "x.html"
    done = cvtrace("export", trace_hex, "--db", str(db), "-o", str(target), cwd=tmp_path)
    assert done.returncode == 1
    assert (
        done.stderr.strip() == f"cvtrace export: cannot write {target}: No such file or directory"
    )
    assert ".part" not in done.stderr  # the temporary file is the tool's business


def test_a_reader_that_stops_early_gets_no_error(tmp_path: Path) -> None:
    """``cvtrace export ID -o - | head -c 10``: the pipe closes; no message, no traceback."""
    db = tmp_path / "big.sqlite3"
    specs = simple_trace(service="checkout", children=5000)  # megabytes: more than a pipe holds
    with SpanStore(db, max_spans=0) as store:
        store.write_request(make_request(specs))
    trace_hex = specs[0].trace_id.hex()
    command = [sys.executable, "-m", "cvtrace.cli", "export", trace_hex, "-o", "-", "--db", str(db)]
    export = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert export.stdout is not None
    assert export.stdout.read(10) == b"<!doctype "
    export.stdout.close()
    _, err = export.communicate(timeout=60)
    assert err == b""
    assert export.returncode == 1


def test_help(tmp_path: Path) -> None:
    done = cvtrace("export", "--help", cwd=tmp_path, env={"COLUMNS": "100"})
    assert done.returncode == 0
    shown = " ".join(done.stdout.split())  # argparse wraps lines (at 100 columns here)
    for text in ("TRACE_ID", "-o OUTPUT", "--db DB", "no network", "read-only"):
        assert text in shown, text
    listed = cvtrace("--help", cwd=tmp_path).stdout
    assert "export" in listed
    assert "single HTML file" in listed


def test_a_page_the_export_cannot_carry(
    stored: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In process: the viewer's trace page is given a data URL no route answers (as a
    trace page piece that broke the contract would); the command says so, writes nothing."""
    import cvtrace.viewer

    db, trace_hex = stored
    create_app = cvtrace.viewer.create_app

    def with_broken_page(config: Any) -> Flask:
        app = create_app(config)
        point_the_trace_page_at_a_missing_url(app)
        return app

    monkeypatch.setattr(cvtrace.viewer, "create_app", with_broken_page)
    target = tmp_path / "x.html"
    assert main(["export", trace_hex, "--db", str(db), "-o", str(target)]) == 1
    assert capsys.readouterr().err == (
        "cvtrace export: cannot make the file: the trace page's data-nowhere-url "
        "(/api/no-such-thing) answered HTTP 404; the export needs 200\n"
    )
    assert not target.exists()
