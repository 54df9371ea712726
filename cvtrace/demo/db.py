"""The database: one engine per app, one session per request.

Each request works in one session and commits once, at the end of a successful view;
anything else (an error, a 4xx raised halfway) rolls back when the session closes, so a
failed request leaves nothing half-written.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from cvtrace.demo.models import Base

_EXTENSION = "demo_db"
_ENGINE = "demo_engine"


def make_engine(url: str) -> Engine:
    """Create the engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


def init_app(app: Flask, engine: Engine) -> None:
    """Create the tables, keep the session factory on the app, close sessions after requests."""
    Base.metadata.create_all(engine)
    # gunicorn --preload imports the app in the master and then forks: connections opened
    # here must not be shared with the workers, so close them now and after any fork.
    engine.dispose()
    engine_ref = weakref.ref(engine)
    os.register_at_fork(after_in_child=lambda: _dispose_in_child(engine_ref))
    app.extensions[_EXTENSION] = sessionmaker(engine, expire_on_commit=False)
    app.extensions[_ENGINE] = engine
    app.teardown_appcontext(_close_session)


def _dispose_in_child(engine_ref: weakref.ref[Engine]) -> None:
    engine = engine_ref()
    if engine is not None:
        engine.dispose(close=False)


def engine_of(app: Flask) -> Engine:
    """Return the app's engine."""
    engine: Engine = app.extensions[_ENGINE]
    return engine


def session_factory(app: Flask) -> sessionmaker[Session]:
    """Return the app's session factory, for work outside a request (jobs, seeding)."""
    factory: sessionmaker[Session] = app.extensions[_EXTENSION]
    return factory


def get_db() -> Session:
    """Return this request's session, opening it on first use."""
    if "db" not in g:
        g.db = session_factory(current_app)()
    session: Session = g.db
    return session


def _close_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db", None)
    if session is not None:
        session.close()  # rolls back whatever was not committed
