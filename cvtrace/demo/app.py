"""The app factory of the circuit-sharing demo (service ``circuits``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
from flask import Flask, current_app

import cvtrace
from cvtrace.demo import auth, circuits, db, health
from cvtrace.demo.config import load_config, service_name
from cvtrace.demo.errors import register_error_handlers
from cvtrace.demo.jobs import JobRunner
from cvtrace.demo.logs import configure_logging

SERVICE_NAME = "circuits"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Create the demo app.

    Args:
        config: settings that win over the environment (see :mod:`cvtrace.demo.config`).

    Returns:
        The app, traced by cvtrace when an exporter is configured (``CVTRACE_EXPORTERS``).
    """
    configure_logging()
    app = Flask(__name__, instance_relative_config=True)
    load_config(app, config)
    engine = db.make_engine(app.config["DATABASE_URL"])
    db.init_app(app, engine)
    app.extensions["demo_jobs"] = JobRunner()
    app.register_blueprint(health.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(circuits.bp)
    register_error_handlers(app)
    app.cli.add_command(seed_command)
    cvtrace.init(app=app, engine=engine, service_name=service_name(SERVICE_NAME))
    return app


@click.command("seed")
@click.option("--circuits", default=300, show_default=True, type=click.IntRange(min=1))
@click.option("--random-seed", default=1, show_default=True, type=int)
def seed_command(circuits: int, random_seed: int) -> None:
    """Fill a fresh database with realistic circuits (``flask --app cvtrace.demo seed``)."""
    from cvtrace.demo import (
        seed,  # imported here so that ``python -m cvtrace.demo.seed`` runs cleanly
    )

    engine = db.make_engine(current_app.config["DATABASE_URL"])  # untraced: no orphan spans
    counts = seed.seed(engine, circuits, random_seed)
    engine.dispose()
    click.echo(f"{seed.shown_url(current_app.config['DATABASE_URL'])}: {seed.describe(counts)}")
