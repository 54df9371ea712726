"""Fill a fresh database with realistic users, circuits, forks, stars and comments.

Run ``flask --app cvtrace.demo seed`` or ``python -m cvtrace.demo.seed [--circuits N]``; both use
``DATABASE_URL``. The data is the same for the same ``--random-seed``. Besides working
circuits it holds what a real site accumulates: latches (a cycle, which the simulator
refuses), unfinished drafts with a dangling wire, and one adder too large to preview.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Flask
from sqlalchemy import Engine, func, make_url, select
from sqlalchemy.orm import Session

from cvtrace.demo import examples
from cvtrace.demo.config import load_config
from cvtrace.demo.db import make_engine
from cvtrace.demo.hyperloglog import HyperLogLog
from cvtrace.demo.models import Base, Circuit, Comment, Star, User

_FIRST_NAMES = (
    *("ada", "alan", "grace", "claude", "edsger", "barbara", "donald", "ken", "dennis"),
    *("margaret", "john", "frances", "radia", "sophie", "linus", "guido", "bjarne"),
    *("niklaus", "tony", "leslie", "whitfield", "hedy", "katherine", "annie", "evelyn"),
    *("kathleen", "jean", "betty", "marlyn", "ruth", "adele", "mary", "lynn", "carol"),
    *("susan", "shafi", "joan", "fran"),
)
_SUFFIXES = ("", "", "_dev", "42", "_hw", "x", "_logic", "99", "_eng")

_COMMENTS = (
    "Nice and clean layout!",
    "Could you do this with NAND gates only?",
    "The carry chain here is the critical path, right?",
    "Used this for my homework, thanks.",
    "I think output s2 is wrong when both inputs are 1.",
    "Forked it to add an enable input.",
    "How many gates is the minimal version?",
    "This is exactly what I was looking for.",
    "Great example of a ripple-carry design.",
    "Why not use a lookahead carry?",
    "Simulated it, the truth table checks out.",
    "Bookmarking this for the exam.",
)

_Builder = Callable[[], dict[str, Any]]
_TEMPLATES: tuple[tuple[str, _Builder, str, int], ...] = (
    ("Half adder", examples.half_adder, "Adds two bits into a sum and a carry.", 10),
    ("Full adder", examples.full_adder, "Two half adders and an OR: adds a, b and cin.", 10),
    (
        "2-bit ripple-carry adder",
        lambda: examples.ripple_carry_adder(2),
        "Two full adders chained through their carries.",
        5,
    ),
    (
        "4-bit ripple-carry adder",
        lambda: examples.ripple_carry_adder(4),
        "The classic: four full adders, carry rippling from bit 0 to bit 3.",
        8,
    ),
    (
        "8-bit ripple-carry adder",
        lambda: examples.ripple_carry_adder(8),
        "Adds two bytes. Slow carry, but simple.",
        4,
    ),
    ("2-to-1 multiplexer", lambda: examples.multiplexer(1), "Picks d0 or d1 by s0.", 6),
    ("4-to-1 multiplexer", lambda: examples.multiplexer(2), "Two select lines.", 5),
    ("8-to-1 multiplexer", lambda: examples.multiplexer(3), "Three select lines.", 2),
    ("2-to-4 decoder", lambda: examples.decoder(2), "One-hot output, with enable.", 5),
    ("3-to-8 decoder", lambda: examples.decoder(3), "For memory address decoding.", 3),
    ("4-bit parity generator", lambda: examples.parity(4), "XOR chain over four bits.", 4),
    ("8-bit parity generator", lambda: examples.parity(8), "Even parity for a byte.", 3),
    ("Majority voter", examples.majority, "Triple modular redundancy voter.", 5),
    (
        "4-bit equality comparator",
        lambda: examples.equality_comparator(4),
        "XNOR each bit pair, AND them together.",
        4,
    ),
    ("XOR from NANDs", examples.xor_from_nands, "XOR built from four NAND gates.", 5),
    ("SR latch", examples.sr_latch, "Cross-coupled NOR gates: one bit of memory.", 4),
)
_VARIANTS = (
    "{name}",
    "{name}",
    "My {lower}",
    "{name} (homework 3)",
    "{name}, tidied up",
    "{name} v2",
    "Simple {lower}",
    "{name} for the lab",
    "Another {lower}",
    "{name} practice",
)


@dataclass(frozen=True)
class SeedCounts:
    """How many rows of each kind the database holds after seeding."""

    users: int
    circuits: int
    stars: int
    comments: int


def _draft_with_dangling_wire(rng: random.Random) -> dict[str, Any]:
    document = examples.full_adder()
    document["wires"].append({"from": "g9", "to": rng.choice(["cout", "g5"])})
    return document


def _counts(db: Session) -> SeedCounts:
    return SeedCounts(
        users=db.scalar(select(func.count(User.id))) or 0,
        circuits=db.scalar(select(func.count(Circuit.id))) or 0,
        stars=db.scalar(select(func.count(Star.id))) or 0,
        comments=db.scalar(select(func.count(Comment.id))) or 0,
    )


def seed(engine: Engine, circuits: int = 300, random_seed: int = 1) -> SeedCounts:
    """Fill an empty database; a database that has circuits already is left alone.

    Args:
        engine: the database (its tables are created if missing).
        circuits: how many circuits to create.
        random_seed: the same seed gives the same data.

    Returns:
        The row counts afterwards.
    """
    Base.metadata.create_all(engine)
    rng = random.Random(random_seed)
    now = datetime.now(timezone.utc)
    with Session(engine) as db:
        if db.scalar(select(func.count(Circuit.id))):
            return _counts(db)
        names = rng.sample(_FIRST_NAMES, k=len(_FIRST_NAMES))
        users = [
            User(
                username=f"{name}{rng.choice(_SUFFIXES)}",
                display_name=name.capitalize(),
                created_at=now - timedelta(days=rng.uniform(200, 400)),
            )
            for name in names
        ]
        db.add_all(users)
        weights = [t[3] for t in _TEMPLATES]
        made: list[Circuit] = []
        draft_every = min(97, circuits)
        for i in range(circuits):
            created = now - timedelta(days=365 * (1 - i / circuits), minutes=rng.uniform(0, 600))
            owner = rng.choice(users)
            if made and rng.random() < 0.2:
                source = rng.choice(made)
                circuit = Circuit(
                    owner=owner,
                    name=f"{source.name} (fork)"[:120],
                    description=source.description,
                    document=source.document,
                    forked_from=source,
                )
            elif i % draft_every == draft_every // 2:
                circuit = Circuit(
                    owner=owner,
                    name="Unfinished full adder (draft)",
                    description="Work in progress, not wired up yet.",
                    document=_draft_with_dangling_wire(rng),
                )
            else:
                name, build, description, _ = rng.choices(_TEMPLATES, weights)[0]
                variant = rng.choice(_VARIANTS).format(name=name, lower=name[0].lower() + name[1:])
                circuit = Circuit(
                    owner=owner, name=variant, description=description, document=build()
                )
            circuit.created_at = circuit.updated_at = created
            views = HyperLogLog()
            views.update(f"seed:{i}:{v}" for v in range(min(5000, int(rng.paretovariate(1.2) * 5))))
            circuit.views_hll = views.to_bytes()
            made.append(circuit)
        made.append(
            Circuit(
                owner=rng.choice(users),
                name="64-bit ripple-carry adder",
                description="Generated by a script. 320 gates: good luck viewing it.",
                document=examples.ripple_carry_adder(64),
                created_at=now - timedelta(days=3),
                updated_at=now - timedelta(days=3),
            )
        )
        db.add_all(made)
        for circuit in made:
            for user in rng.sample(users, k=min(len(users), int(rng.paretovariate(1.5)) - 1)):
                db.add(Star(user=user, circuit=circuit))
            for _ in range(rng.choice((0, 0, 0, 1, 1, 2, 3))):
                db.add(
                    Comment(
                        circuit=circuit,
                        author=rng.choice(users),
                        body=rng.choice(_COMMENTS),
                        created_at=circuit.created_at + timedelta(hours=rng.uniform(1, 500)),
                    )
                )
        db.commit()
        return _counts(db)


def describe(counts: SeedCounts) -> str:
    """Return a one-line summary of the counts."""
    return (
        f"{counts.users} users, {counts.circuits} circuits, {counts.stars} stars, "
        f"{counts.comments} comments"
    )


def shown_url(url: str) -> str:
    """Return ``url`` fit to print: its password, if any, as ``***``."""
    return make_url(url).render_as_string(hide_password=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cvtrace.demo.seed``: seed the database at ``DATABASE_URL``."""
    parser = argparse.ArgumentParser(prog="python -m cvtrace.demo.seed", description=__doc__)
    parser.add_argument("--circuits", type=int, default=300, help="circuits to create")
    parser.add_argument("--random-seed", type=int, default=1)
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL (default: $DATABASE_URL, else the app's default SQLite file)",
    )
    args = parser.parse_args(argv)
    if args.circuits < 1:
        parser.error(f"--circuits must be at least 1, got {args.circuits}")
    # The app's settings say where the database is; the engine is a plain one, so that
    # seeding makes no spans even when tracing is configured.
    app = Flask("cvtrace.demo.app", instance_relative_config=True)
    config = {"SECRET_KEY": "not-used-by-seeding"}
    if args.database_url:
        config["DATABASE_URL"] = args.database_url
    load_config(app, config)
    url = app.config["DATABASE_URL"]
    engine = make_engine(url)
    counts = seed(engine, args.circuits, args.random_seed)
    engine.dispose()
    sys.stdout.write(f"{shown_url(url)}: {describe(counts)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
