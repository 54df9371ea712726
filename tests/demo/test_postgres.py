"""The throwaway PostgreSQL server: started, used, stopped, and nothing left behind."""

from __future__ import annotations

import os
import pwd
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url, text

from cvtrace.demo.cli import Child, start_child, stop_child
from cvtrace.demo.db import make_engine
from cvtrace.demo.postgres import PostgresError, ThrowawayPostgres, find_bin_dir


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) is gone for our purposes
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def _postmaster_pid(server: ThrowawayPostgres) -> int:
    return int((server.data_dir / "postmaster.pid").read_text().split()[0])


@pytest.mark.slow
def test_a_server_of_its_own_then_nothing_left() -> None:
    with ThrowawayPostgres() as server:
        directory = server.directory
        assert directory is not None
        assert directory.parent == Path(tempfile.gettempdir())
        pid = _postmaster_pid(server)
        owner = directory.stat().st_uid
        if os.geteuid() == 0:  # PostgreSQL refuses root: Debian's postgres account runs it
            assert owner == pwd.getpwnam("postgres").pw_uid
            assert Path(f"/proc/{pid}").stat().st_uid == owner
        else:
            assert owner == os.geteuid()
        url = server.create_database("shop")
        assert make_url(url).drivername == "postgresql+psycopg"
        engine = make_engine(url)
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT current_database(), current_user, inet_server_addr()::text, "
                    "current_setting('unix_socket_directories'), current_setting('fsync')"
                )
            ).one()
        engine.dispose()
        assert tuple(row) == ("shop", "cvtrace", "127.0.0.1/32", "", "off")
        # a password is needed: other users of the machine cannot get in
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(
                host="127.0.0.1", port=server.port, user="cvtrace", password="guess", dbname="shop"
            ).close()
        server.drop_database("shop")
        with pytest.raises(PostgresError, match='database "shop" does not exist'):
            server._admin("DROP DATABASE {}", "shop")
    assert not directory.exists()
    assert not _alive(pid)
    with socket.socket() as sock:  # nothing listens on the port any more
        # (SO_REUSEADDR: the closed sessions may leave TIME_WAIT entries, which are fine)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", server.port))
        sock.listen()


@pytest.mark.slow
def test_a_failed_start_says_why_and_leaves_nothing() -> None:
    before = set(Path(tempfile.gettempdir()).glob("cvtrace-postgres-*"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ThrowawayPostgres(port=port)
        with pytest.raises(PostgresError, match="pg_ctl start exited") as raised:
            server.start()
    assert "Address already in use" in str(raised.value)  # the server's log, quoted
    assert server.directory is None
    assert set(Path(tempfile.gettempdir()).glob("cvtrace-postgres-*")) == before


def test_missing_programs_name_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cvtrace.demo.postgres.DEBIAN_BIN_DIRS", tmp_path / "none")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PostgresError, match="install Debian's postgresql package"):
        find_bin_dir()
    with pytest.raises(PostgresError, match="install Debian's postgresql package"):
        ThrowawayPostgres().start()


def test_the_newest_debian_version_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for version in ("9", "15", "13", "notaversion"):
        bin_dir = tmp_path / version / "bin"
        bin_dir.mkdir(parents=True)
        for name in ("initdb", "pg_ctl"):
            (bin_dir / name).write_text("#!/bin/sh\n")
            (bin_dir / name).chmod(0o755)
    (tmp_path / "17" / "bin").mkdir(parents=True)  # a version without server programs
    monkeypatch.setattr("cvtrace.demo.postgres.DEBIAN_BIN_DIRS", tmp_path)
    assert find_bin_dir() == tmp_path / "15" / "bin"


@pytest.mark.slow
def test_the_command_prints_the_url_and_cleans_up_on_sigterm(tmp_path: Path) -> None:
    started: list[Child] = []
    child = start_child(
        "postgres",
        [sys.executable, "-m", "cvtrace.demo.postgres", "--database", "circuits"],
        dict(os.environ, PYTHONUNBUFFERED="1"),
        tmp_path / "postgres.log",
        started=started,
        ready_line=re.compile(r"^DATABASE_URL=(\S+)"),
        timeout_s=60,
    )
    try:
        url = make_url(child.url)
        assert (url.drivername, url.host, url.database) == (
            "postgresql+psycopg",
            "127.0.0.1",
            "circuits",
        )
        engine = make_engine(child.url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
        engine.dispose()
        [directory] = re.findall(r"PostgreSQL in (\S+);", (tmp_path / "postgres.log").read_text())
        pid = int((Path(directory) / "data" / "postmaster.pid").read_text().split()[0])
    finally:
        code = stop_child(child)
    assert code == 0, child.log_tail()
    assert not Path(directory).exists()
    assert not _alive(pid)  # the server is in a session of its own: the command stopped it


def _python_for(account: pwd.struct_passwd) -> str:
    """An interpreter ``account`` can run that can import this venv's packages.

    This venv's own when the account can reach it; otherwise the system's python3 of the
    same version (the venv's compiled packages then load as they are).
    """
    probe = [sys.executable, "-c", "pass"]
    try:
        subprocess.run(probe, user=account.pw_uid, group=account.pw_gid, check=True, timeout=30)
    except (OSError, subprocess.CalledProcessError):
        pass
    else:
        return sys.executable
    system = Path("/usr/bin/python3")
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if system.exists():
        out = subprocess.run(
            [str(system), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if out == version:
            return str(system)
    pytest.fail(f"no Python {version} that the account {account.pw_name} can run")


@pytest.mark.slow
def test_an_unprivileged_user_runs_it_as_themselves() -> None:
    """A developer (not root) gets a server run as themselves; under root, nobody plays one."""
    script = (
        "import os\n"
        "from cvtrace.demo.postgres import ThrowawayPostgres\n"
        "with ThrowawayPostgres() as server:\n"
        "    url = server.create_database('mine')\n"
        "    print(os.geteuid(), server.directory.stat().st_uid, url.rsplit('/', 1)[1])\n"
        "    directory = server.directory\n"
        "print(directory.exists())\n"
    )
    if os.geteuid() != 0:
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
        uid = os.geteuid()
    else:
        account = pwd.getpwnam("nobody")
        import sqlalchemy

        paths = [str(Path(__file__).parents[2]), str(Path(sqlalchemy.__file__).parents[1])]
        result = subprocess.run(
            [_python_for(account), "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=[],
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(paths)),
            cwd="/",
        )
        uid = account.pw_uid
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(uid), str(uid), "mine", "False"]
