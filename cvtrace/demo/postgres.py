"""A throwaway PostgreSQL server for the demo, its tests and local stacks.

``ThrowawayPostgres`` runs ``initdb`` into a fresh temporary directory, starts the
server with ``pg_ctl`` on ``127.0.0.1`` and a free port (no Unix socket), and on
:meth:`~ThrowawayPostgres.stop` shuts it down and deletes the directory: nothing is
left behind, and nothing outside the directory is touched (no system cluster, no
``/var/run/postgresql``)::

    with ThrowawayPostgres() as server:
        url = server.create_database("circuits")   # postgresql+psycopg://...
        ...

From a shell (or a script that starts the demo on PostgreSQL)::

    python -m cvtrace.demo.postgres [--database circuits]

prints ``DATABASE_URL=postgresql+psycopg://...`` once the server answers, and stops
and deletes it on Ctrl-C or SIGTERM.

The server programs come from Debian's ``postgresql`` package
(``/usr/lib/postgresql/<version>/bin``, the newest version installed) or from ``PATH``.
PostgreSQL refuses to run as root, so under root (as in CI) the programs run as the
``postgres`` account that Debian's package creates (``nobody`` if there is none), and
the directory is handed to that account; anyone else runs them as themselves. The
cluster is made for speed, not safety: ``fsync``, ``synchronous_commit`` and
``full_page_writes`` are off, so a crash of the machine loses it, which is the point
of a throwaway one. Connections need the random password of the ``cvtrace`` user
(scram-sha-256), so other users of the machine cannot read or write its data.

This is development tooling beside ``cvtrace demo``: the demo app never imports it, a
deployment points ``DATABASE_URL`` at its own PostgreSQL.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType, TracebackType

from sqlalchemy.engine import URL

from cvtrace.demo.ports import free_port

DEBIAN_BIN_DIRS = Path("/usr/lib/postgresql")
USER = "cvtrace"
"""The cluster's superuser, the one every URL logs in as."""
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
_START_ATTEMPTS = 3
"""A free port can be taken between picking it and the server binding it: try again."""

#: Settings appended to the cluster's postgresql.conf.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class PostgresError(RuntimeError):
    """The throwaway server could not be found, started or used; the message says why."""


def find_bin_dir() -> Path:
    """Return the directory holding ``initdb`` and ``pg_ctl``: the newest Debian one, else PATH.

    Raises:
        PostgresError: neither has them, with the install command.
    """
    versions = []
    if DEBIAN_BIN_DIRS.is_dir():
        for entry in DEBIAN_BIN_DIRS.iterdir():
            if entry.name.isdigit() and _has_programs(entry / "bin"):
                versions.append((int(entry.name), entry / "bin"))
    if versions:
        return max(versions)[1]
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is not None and _has_programs(Path(pg_ctl).parent):
        return Path(pg_ctl).parent
    msg = (
        f"PostgreSQL's server programs (initdb, pg_ctl) are neither in "
        f"{DEBIAN_BIN_DIRS}/<version>/bin nor on PATH: install Debian's postgresql "
        "package (`make system-deps` does, as root or with sudo)"
    )
    raise PostgresError(msg)


def _has_programs(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in ("initdb", "pg_ctl"))


def _run_as() -> pwd.struct_passwd | None:
    """The account the server programs run as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    msg = "running as root, and neither a postgres nor a nobody account exists to run PostgreSQL"
    raise PostgresError(msg)


class ThrowawayPostgres:
    """A PostgreSQL server in a temporary directory, for as long as it is needed.

    Args:
        bin_dir: where ``initdb`` and ``pg_ctl`` are (default: :func:`find_bin_dir`).
        port: the port on 127.0.0.1 (default: a free one).
    """

    def __init__(self, bin_dir: Path | None = None, port: int | None = None) -> None:
        self.bin_dir = bin_dir
        self.host = "127.0.0.1"
        self.port = port or 0
        self.user = USER
        self.password = secrets.token_urlsafe(18)
        self.directory: Path | None = None
        self._account: pwd.struct_passwd | None = None

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self._directory() / "data"

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self._directory() / "postgres.log"

    def start(self) -> ThrowawayPostgres:
        """Create the cluster and start the server; return ``self``.

        Raises:
            PostgresError: a program is missing or failed (its output and the server's
                log are in the message). Nothing is left behind.
        """
        if self.directory is not None:
            msg = f"the server in {self.directory} is already started"
            raise PostgresError(msg)
        bin_dir = self.bin_dir = self.bin_dir or find_bin_dir()
        self._account = _run_as()
        self.directory = Path(tempfile.mkdtemp(prefix="cvtrace-postgres-"))
        try:
            if self._account is not None:
                os.chown(self.directory, self._account.pw_uid, self._account.pw_gid)
            self._initdb(bin_dir)
            self._start_server(bin_dir)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are ended) and delete its directory."""
        directory = self.directory
        if directory is None:
            return
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists() and self.bin_dir is not None:
            stop = [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir)]
            stop += ["-m", "fast", "-w", "-t", str(STOP_TIMEOUT_S)]
            try:
                self._run(stop, "pg_ctl stop", timeout_s=STOP_TIMEOUT_S + 10)
            except PostgresError:
                self._kill(pid_file)
        shutil.rmtree(directory, ignore_errors=True)
        self.directory = None

    def url(self, database: str = "postgres", driver: str = "psycopg") -> str:
        """Return the SQLAlchemy URL of ``database`` (``postgresql+psycopg://...``)."""
        return URL.create(
            f"postgresql+{driver}" if driver else "postgresql",
            username=self.user,
            password=self.password,
            host=self.host,
            port=self.port,
            database=database,
        ).render_as_string(hide_password=False)

    def create_database(self, name: str) -> str:
        """Create an empty database; return its SQLAlchemy URL."""
        self._admin("CREATE DATABASE {}", name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, ending the sessions still connected to it."""
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _directory(self) -> Path:
        if self.directory is None:
            msg = "the server is not started: call start() or use it in a with block"
            raise PostgresError(msg)
        return self.directory

    def _initdb(self, bin_dir: Path) -> None:
        password_file = self._directory() / "password"
        self._write_owned(password_file, self.password + "\n")
        self._run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                self.user,
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",  # a throwaway cluster: a crash may lose it
            ],
            "initdb",
        )
        password_file.unlink()
        conf = self.data_dir / "postgresql.conf"
        lines = "".join(f"{key} = {value}\n" for key, value in SETTINGS.items())
        with conf.open("a") as stream:
            stream.write("\n# cvtrace.demo.postgres: a throwaway cluster on 127.0.0.1\n" + lines)

    def _start_server(self, bin_dir: Path) -> None:
        chosen = self.port
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.port = chosen or free_port()
            start = [str(bin_dir / "pg_ctl"), "start", "-D", str(self.data_dir)]
            start += ["-l", str(self.log_path), "-w", "-t", str(START_TIMEOUT_S)]
            start += ["-o", f"-p {self.port}"]
            try:
                self._run(start, "pg_ctl start", timeout_s=START_TIMEOUT_S + 10)
                return
            except PostgresError:
                port_taken = "Address already in use" in self._log_tail()
                if chosen or not port_taken or attempt == _START_ATTEMPTS:
                    raise

    def _run(self, argv: list[str], what: str, timeout_s: float = START_TIMEOUT_S) -> None:
        account = self._account
        # PG* variables of the caller's shell (PGDATA, PGPORT, ...) must not steer it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"  # messages in English, whatever the caller's locale
        try:
            result = subprocess.run(
                argv,
                env=env,
                cwd=self._directory(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
                extra_groups=[] if account else None,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            msg = f"{what} failed: {error}"
            raise PostgresError(msg) from error
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            msg = f"{what} exited with code {result.returncode}:\n{output}"
            log = self._log_tail()
            if log:
                msg += f"\nthe server's log ({self.log_path}) ends with:\n{log}"
            raise PostgresError(msg)

    def _write_owned(self, path: Path, text: str) -> None:
        """Write a file only this process and the server's account can read."""
        path.write_text(text)
        path.chmod(0o600)
        if self._account is not None:
            os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, PostgresError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _kill(self, pid_file: Path) -> None:
        """Stop a server that pg_ctl could not: immediate shutdown, then SIGKILL."""
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _admin(self, template: str, database: str) -> None:
        """Run a statement about ``database`` (quoted into ``template``) as the superuser."""
        import psycopg  # the demo extra's driver; only these helpers need it
        from psycopg import sql

        statement = sql.SQL(template).format(sql.Identifier(database))
        try:
            with psycopg.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                dbname="postgres",
                autocommit=True,
                connect_timeout=10,
            ) as connection:
                connection.execute(statement)
        except psycopg.Error as error:
            msg = f"{template.format(database)}: {error}"
            raise PostgresError(msg) from error


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cvtrace.demo.postgres``: serve a throwaway database until stopped."""
    parser = argparse.ArgumentParser(
        prog="python -m cvtrace.demo.postgres",
        description=(
            "Start a throwaway PostgreSQL server on 127.0.0.1, print the DATABASE_URL "
            "of a fresh database, and delete it all on Ctrl-C or SIGTERM."
        ),
    )
    parser.add_argument("--database", default="circuits", help="database to create (circuits)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (a free one)")
    args = parser.parse_args(argv)
    stopped = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        with ThrowawayPostgres(port=args.port) as server:
            url = server.create_database(args.database)
            sys.stdout.write(f"DATABASE_URL={url}\n")
            sys.stdout.flush()
            sys.stderr.write(f"PostgreSQL in {server.directory}; Ctrl-C stops and deletes it\n")
            while not stopped.wait(0.5):
                pass
    except PostgresError as error:
        sys.stderr.write(f"cvtrace.demo.postgres: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
