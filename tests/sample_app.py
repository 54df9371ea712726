"""A small Flask + SQLAlchemy app for the library's tests, built by a factory."""

from __future__ import annotations

import logging

import flask
import requests
import sqlalchemy as sa

logger = logging.getLogger("sample_app")


def create_engine() -> sa.Engine:
    """A fresh in-memory SQLite engine with one table."""
    engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)
    with engine.begin() as connection:
        connection.execute(sa.text("create table users (id integer primary key, name text)"))
        connection.execute(sa.text("insert into users values (1, 'ada'), (2, 'alan')"))
    return engine


def create_app(engine: sa.Engine) -> flask.Flask:
    """The app: a user page, a health check, an outgoing call, failures, secrets."""
    app = flask.Flask("sample_app")

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> dict[str, object]:
        with engine.connect() as connection:
            name = connection.execute(
                sa.text("select name from users where id = :id"), {"id": user_id}
            ).scalar()
        logger.info("looked up user %s", user_id)
        return {"id": user_id, "name": name}

    @app.get("/up")
    def up() -> str:
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
        return "ok"

    @app.get("/static/app.css")
    def css() -> str:
        return "body {}"

    @app.get("/call")
    def call() -> str:
        response = requests.get(flask.request.args["url"], timeout=5)
        return response.text

    @app.get("/fail")
    def fail() -> str:
        raise RuntimeError("boom")

    @app.post("/login")
    def login() -> str:
        from opentelemetry import trace

        form = flask.request.form
        span = trace.get_current_span()
        span.set_attribute("app.user.password", form["password"])
        span.set_attribute("app.api_key", form["api_key"])
        span.add_event("login", {"session_token": form["password"], "user": form["user"]})
        with engine.connect() as connection:
            user, password = form["user"], form["password"]
            connection.exec_driver_sql(
                f"select id from users where name = '{user}' and 'x' != '{password}'"
            )
        return "welcome"

    @app.post("/signup")
    def signup() -> str:
        from opentelemetry import trace

        # User 1 exists: SQLAlchemy's IntegrityError, whose text holds the bound values,
        # recorded by the app's own span and by the server span (the app answers 500).
        tracer = trace.get_tracer("sample_app")
        with tracer.start_as_current_span("create user"), engine.begin() as connection:
            connection.execute(
                sa.text("insert into users (id, name) values (:id, :name)"),
                {"id": 1, "name": flask.request.form["password"]},
            )
        return "welcome"

    return app
