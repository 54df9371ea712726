"""The seed data: hundreds of realistic circuits in a fresh database (SQLite, PostgreSQL)."""

from __future__ import annotations

import re
import subprocess
import sys

from sqlalchemy import func, make_url, select
from sqlalchemy.orm import Session

from cvtrace.demo.db import make_engine
from cvtrace.demo.document import CircuitError, parse_circuit
from cvtrace.demo.models import Circuit
from cvtrace.demo.seed import seed
from cvtrace.demo.simulator import compile_circuit


def test_seed_fills_a_fresh_database_once(database_url: str) -> None:
    engine = make_engine(database_url)
    counts = seed(engine, circuits=300)
    assert counts.circuits == 301  # and the oversized adder
    assert counts.users >= 30
    assert counts.stars > 100
    assert counts.comments > 100
    assert seed(engine, circuits=300) == counts  # a second run adds nothing
    with Session(engine) as db:
        circuits = db.scalars(select(Circuit)).all()
        forks = sum(1 for c in circuits if c.forked_from_id is not None)
        assert 30 < forks < 100
        problems = []
        for circuit in circuits:
            try:
                compile_circuit(parse_circuit(circuit.document))
            except CircuitError as exc:
                problems.append(str(exc))
        # mostly working circuits; some latches (cycles) and drafts (dangling wires)
        assert 0 < len(problems) < 40
        assert any("cycle" in p for p in problems)
        assert any("dangling wire" in p for p in problems)
        assert db.scalar(select(func.count()).where(Circuit.name.contains("ripple-carry")))
    engine.dispose()


def test_seed_module_runs_from_the_command_line(database_url: str) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "cvtrace.demo.seed"),
            *("--circuits", "25", "--database-url", database_url),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    last_line = result.stdout.strip().splitlines()[-1]
    shown = make_url(database_url).render_as_string(hide_password=True)
    assert last_line.startswith(f"{shown}: ")
    counts = last_line.removeprefix(f"{shown}: ")
    assert re.fullmatch(r"\d+ users, 26 circuits, \d+ stars, \d+ comments", counts)
    password = make_url(database_url).password
    if password:  # PostgreSQL's: printed as ***, never in clear
        assert password not in result.stdout + result.stderr
        assert ":***@" in last_line
    assert "RuntimeWarning" not in result.stderr
