"""The seed data: hundreds of realistic circuits in a fresh database."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cvtrace.demo.db import make_engine
from cvtrace.demo.document import CircuitError, parse_circuit
from cvtrace.demo.models import Circuit
from cvtrace.demo.seed import seed
from cvtrace.demo.simulator import compile_circuit


def test_seed_fills_a_fresh_database_once(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'seed.sqlite3'}")
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


def test_seed_module_runs_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    result = subprocess.run(
        [sys.executable, "-m", "cvtrace.demo.seed", "--circuits", "25", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    last_line = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        r".*cli\.sqlite3: \d+ users, 26 circuits, \d+ stars, \d+ comments", last_line
    )
    assert "RuntimeWarning" not in result.stderr
