"""The circuit routes: list and search, view, create, edit, fork, star, comment, simulate.

Each route answers HTML to browsers and JSON to clients that send JSON or prefer it in
``Accept``. Writes require a logged-in user, happen in the request's one session and are
committed once at the end, so a request that fails leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, undefer
from werkzeug.exceptions import BadGateway, BadRequest, Forbidden, NotFound

from cvtrace.demo.auth import current_user, require_user, user_json, visitor_id
from cvtrace.demo.db import get_db
from cvtrace.demo.document import CircuitError, parse_circuit
from cvtrace.demo.hyperloglog import HyperLogLog
from cvtrace.demo.inputs import body, int_arg, text_field, wants_json
from cvtrace.demo.models import Circuit, Comment, Star, User, utcnow
from cvtrace.demo.preview_client import PreviewUnavailable, fetch_preview, regenerate_preview
from cvtrace.demo.simulator import CompiledCircuit, compile_circuit, simulate, truth_table

logger = logging.getLogger(__name__)
bp = Blueprint("circuits", __name__)
tracer = trace.get_tracer(__name__)

SORTS = {"new", "stars", "name"}
MAX_TRUTH_TABLE_INPUTS = 10
"""Truth tables (and the equivalence search) are computed for at most this many inputs."""
MAX_EQUIVALENCE_SCAN = 1000
"""The equivalence search looks at this many circuits at most."""


def _stars_subquery() -> Any:
    return (
        select(Star.circuit_id, func.count(Star.id).label("stars"))
        .group_by(Star.circuit_id)
        .subquery()
    )


def _get_circuit(db: Session, circuit_id: int, *undeferred: Any) -> Circuit:
    """Load a circuit (with the deferred columns named), or answer 404."""
    if undeferred:
        circuit = db.scalar(
            select(Circuit)
            .where(Circuit.id == circuit_id)
            .options(*(undefer(column) for column in undeferred))
        )
    else:
        circuit = db.get(Circuit, circuit_id)
    if circuit is None:
        msg = f"no circuit with id {circuit_id}"
        raise NotFound(msg)
    return circuit


def _star_count(db: Session, circuit_id: int) -> int:
    count = db.scalar(select(func.count(Star.id)).where(Star.circuit_id == circuit_id))
    return count or 0


def _compile(document: dict[str, Any]) -> CompiledCircuit:
    return compile_circuit(parse_circuit(document))


def summary_json(circuit: Circuit, stars: int) -> dict[str, Any]:
    """Return what a listing shows of a circuit."""
    return {
        "id": circuit.id,
        "name": circuit.name,
        "description": circuit.description,
        "owner": circuit.owner.username,
        "stars": stars,
        "forked_from": circuit.forked_from_id,
        "created_at": circuit.created_at.isoformat(),
        "updated_at": circuit.updated_at.isoformat(),
        "url": url_for("circuits.show", circuit_id=circuit.id),
    }


def _document_field(data: dict[str, Any]) -> dict[str, Any]:
    raw = data.get("circuit")
    if raw is None:
        msg = "circuit is required: a JSON object with inputs, outputs, gates and wires"
        raise BadRequest(msg)
    if isinstance(raw, str):  # from the HTML form's text area
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            msg = f"circuit is not valid JSON: {exc}"
            raise BadRequest(msg) from None
    try:
        return parse_circuit(raw).to_json()
    except CircuitError as exc:
        raise BadRequest(str(exc)) from None


def _created(circuit: Circuit, stars: int = 0) -> ResponseReturnValue:
    """Queue the preview job for a new circuit and answer 201 (or redirect a browser)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    circuit_id = circuit.id
    current_app.extensions["demo_jobs"].submit(
        "regenerate preview", lambda: regenerate_preview(app, circuit_id)
    )
    location = url_for("circuits.show", circuit_id=circuit_id)
    if not wants_json():
        return redirect(location, code=303)
    return jsonify(circuit=summary_json(circuit, stars)), 201, {"Location": location}


@bp.get("/")
def home() -> ResponseReturnValue:
    """Send visitors to the circuit list."""
    return redirect(url_for("circuits.index"))


@bp.get("/circuits")
def index() -> ResponseReturnValue:
    """List circuits, newest first; search by text, owner, or behaviour.

    Query arguments: ``q`` (in names and descriptions), ``owner`` (a username), ``sort``
    (new, stars, name), ``page`` and ``per_page`` (1 to 100), and ``equivalent_to`` (a
    circuit id: circuits with the same truth table, the demo's deliberately slow search).
    """
    query = request.args.get("q", "").strip()
    if len(query) > 200:
        msg = f"q is too long ({len(query)} characters, at most 200)"
        raise BadRequest(msg)
    sort = request.args.get("sort", "new")
    if sort not in SORTS:
        msg = f"sort must be one of {', '.join(sorted(SORTS))}, got {sort!r}"
        raise BadRequest(msg)
    page = int_arg("page", 1, low=1, high=100_000)
    per_page = int_arg("per_page", 20, low=1, high=100)
    db = get_db()
    stars = _stars_subquery()
    star_count = func.coalesce(stars.c.stars, 0)
    stmt: Select[Any] = select(Circuit, star_count).outerjoin(
        stars, stars.c.circuit_id == Circuit.id
    )
    if query:
        stmt = stmt.where(
            Circuit.name.icontains(query, autoescape=True)
            | Circuit.description.icontains(query, autoescape=True)
        )
    owner = request.args.get("owner", "").strip()
    if owner:
        stmt = stmt.join(User, User.id == Circuit.owner_id).where(User.username == owner)
    if request.args.get("equivalent_to"):
        target_id = int_arg("equivalent_to", 0, low=1, high=2**62)
        stmt = stmt.where(Circuit.id.in_(_equivalent_ids(db, target_id)))
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    order: tuple[Any, ...] = {
        "new": (Circuit.created_at.desc(), Circuit.id.desc()),
        "stars": (star_count.desc(), Circuit.created_at.desc()),
        "name": (Circuit.name.asc(), Circuit.id.asc()),
    }[sort]
    rows = db.execute(stmt.order_by(*order).limit(per_page).offset((page - 1) * per_page)).all()
    pages = max(1, -(-total // per_page))
    if wants_json():
        return jsonify(
            circuits=[summary_json(c, n) for c, n in rows],
            page=page,
            per_page=per_page,
            total=total,
            pages=pages,
        )
    return render_template(
        "index.html", rows=rows, query=query, sort=sort, page=page, pages=pages, total=total
    )


def _equivalent_ids(db: Session, target_id: int) -> list[int]:
    """Return the circuits computing the same truth table as ``target_id``.

    Deliberately naive, for the demo: it loads the circuits one query at a time (the N+1
    pattern) and simulates each, so its trace shows hundreds of database spans.
    """
    target = _get_circuit(db, target_id)
    try:
        compiled = _compile(target.document)
    except CircuitError as exc:
        msg = f"circuit {target_id} cannot be simulated, so it has no truth table: {exc}"
        raise BadRequest(msg) from None
    if len(compiled.inputs) > MAX_TRUTH_TABLE_INPUTS:
        msg = (
            f"circuit {target_id} has {len(compiled.inputs)} inputs; equivalence search "
            f"handles at most {MAX_TRUTH_TABLE_INPUTS}"
        )
        raise BadRequest(msg)
    wanted = truth_table(compiled)
    with tracer.start_as_current_span("search equivalent circuits") as span:
        ids = db.scalars(
            select(Circuit.id)
            .where(Circuit.id != target_id)
            .order_by(Circuit.id)
            .limit(MAX_EQUIVALENCE_SCAN)
        ).all()
        matches = []
        for circuit_id in ids:
            document = db.scalar(select(Circuit.document).where(Circuit.id == circuit_id))
            try:
                candidate = _compile(document or {})
            except CircuitError:
                continue
            if len(candidate.inputs) != len(compiled.inputs) or len(candidate.outputs) != len(
                compiled.outputs
            ):
                continue
            if truth_table(candidate) == wanted:
                matches.append(circuit_id)
        span.set_attribute("demo.circuits_scanned", len(ids))
        span.set_attribute("demo.matches", len(matches))
        logger.info(
            "equivalence search for circuit %d: %d circuits scanned, %d matches",
            target_id,
            len(ids),
            len(matches),
        )
    return matches


@bp.get("/circuits/new")
def new() -> str:
    """Show the form for a new circuit."""
    return render_template("new.html")


@bp.post("/circuits")
def create() -> ResponseReturnValue:
    """Save a new circuit: ``name``, ``description`` and ``circuit`` (the document)."""
    user = require_user()
    data = body()
    now = utcnow()
    circuit = Circuit(
        owner=user,
        created_at=now,
        updated_at=now,
        name=text_field(data, "name", max_length=120, required=True),
        description=text_field(data, "description", max_length=4000, required=False),
        document=_document_field(data),
    )
    db = get_db()
    db.add(circuit)
    db.commit()
    logger.info("circuit %d created by %s", circuit.id, user.username)
    return _created(circuit)


def _count_view(db: Session, circuit_id: int, views: HyperLogLog) -> HyperLogLog:
    """Add this visitor to the circuit's unique views; return the registers as stored.

    Registers only grow (merging is a maximum), so a new visitor's registers are merged
    into the row as it is once locked: two first views at once both count. The no-op
    UPDATE takes the lock: SQLite's write lock, or the row lock elsewhere.
    """
    if not views.add(visitor_id()):
        return views  # a known visitor, or one whose registers are covered already
    this_row = Circuit.id == circuit_id
    no_sync = {"synchronize_session": False}
    lock = update(Circuit).where(this_row).values(views_hll=Circuit.views_hll)
    db.execute(lock, execution_options=no_sync)
    stored = HyperLogLog.from_bytes(db.scalar(select(Circuit.views_hll).where(this_row)))
    stored.merge(views)
    write = update(Circuit).where(this_row).values(views_hll=stored.to_bytes())
    db.execute(write, execution_options=no_sync)
    db.commit()
    return stored


@bp.get("/circuits/<int:circuit_id>")
def show(circuit_id: int) -> ResponseReturnValue:
    """Show a circuit, and count the view (unique visitors, by HyperLogLog)."""
    db = get_db()
    circuit = _get_circuit(db, circuit_id, Circuit.views_hll)
    views = _count_view(db, circuit_id, HyperLogLog.from_bytes(circuit.views_hll))
    stars = _star_count(db, circuit_id)
    user = current_user()
    starred = user is not None and (
        db.scalar(select(Star.id).where(Star.circuit_id == circuit_id, Star.user_id == user.id))
        is not None
    )
    problem = None
    table = None
    try:
        compiled = _compile(circuit.document)
        if len(compiled.inputs) <= 6:
            table = truth_table(compiled)
    except CircuitError as exc:
        problem = str(exc)
        compiled = None
    if wants_json():
        return jsonify(
            circuit={
                **summary_json(circuit, stars),
                "document": circuit.document,
                "unique_views": len(views),
                "starred": starred,
                "simulatable": problem is None,
                "problem": problem,
                "comments": [
                    {
                        "id": c.id,
                        "author": c.author.username,
                        "body": c.body,
                        "created_at": c.created_at.isoformat(),
                    }
                    for c in circuit.comments
                ],
                "preview_url": url_for("circuits.preview", circuit_id=circuit_id),
            }
        )
    return render_template(
        "show.html",
        circuit=circuit,
        stars=stars,
        starred=starred,
        unique_views=len(views),
        problem=problem,
        compiled=compiled,
        table=table,
        user=user,
    )


@bp.put("/circuits/<int:circuit_id>")
def edit(circuit_id: int) -> ResponseReturnValue:
    """Change a circuit's name, description or document (its owner only)."""
    user = require_user()
    db = get_db()
    circuit = _get_circuit(db, circuit_id)
    if circuit.owner_id != user.id:
        msg = f"circuit {circuit_id} belongs to {circuit.owner.username}; fork it to change it"
        raise Forbidden(msg)
    data = body()
    if "name" in data:
        circuit.name = text_field(data, "name", max_length=120, required=True)
    if "description" in data:
        circuit.description = text_field(data, "description", max_length=4000, required=False)
    if "circuit" in data:
        circuit.document = _document_field(data)
        circuit.preview_svg = None
    circuit.updated_at = utcnow()
    db.commit()
    return jsonify(circuit=summary_json(circuit, _star_count(db, circuit_id)))


@bp.post("/circuits/<int:circuit_id>/fork")
def fork(circuit_id: int) -> ResponseReturnValue:
    """Copy a circuit into the logged-in user's circuits."""
    user = require_user()
    db = get_db()
    source = _get_circuit(db, circuit_id)
    data = body() if request.content_length else {}
    name = text_field(data, "name", max_length=120, required=False)
    if not name:
        name = f"{source.name[:110]} (fork)"
    now = utcnow()
    circuit = Circuit(
        owner=user,
        created_at=now,
        updated_at=now,
        name=name,
        description=source.description,
        document=source.document,
        forked_from_id=source.id,
    )
    db.add(circuit)
    db.commit()
    logger.info("circuit %d forked from %d by %s", circuit.id, source.id, user.username)
    return _created(circuit)


@bp.route("/circuits/<int:circuit_id>/star", methods=["POST", "DELETE"])
def star(circuit_id: int) -> ResponseReturnValue:
    """Star a circuit (POST) or take the star back (DELETE); both are idempotent."""
    user = require_user()
    db = get_db()
    _get_circuit(db, circuit_id)
    existing = db.scalar(select(Star).where(Star.circuit_id == circuit_id, Star.user_id == user.id))
    if request.method == "POST" and existing is None:
        db.add(Star(circuit_id=circuit_id, user_id=user.id))
    elif request.method == "DELETE" and existing is not None:
        db.execute(delete(Star).where(Star.id == existing.id))
    try:
        db.commit()
    except IntegrityError:  # the same user's star from a simultaneous request won
        db.rollback()
    if not wants_json():
        return redirect(url_for("circuits.show", circuit_id=circuit_id), code=303)
    return jsonify(starred=request.method == "POST", stars=_star_count(db, circuit_id))


@bp.post("/circuits/<int:circuit_id>/comments")
def comment(circuit_id: int) -> ResponseReturnValue:
    """Add a comment (``body``, 1 to 2000 characters)."""
    user = require_user()
    db = get_db()
    _get_circuit(db, circuit_id)
    text = text_field(body(), "body", max_length=2000, required=True)
    new_comment = Comment(circuit_id=circuit_id, user_id=user.id, body=text)
    db.add(new_comment)
    db.commit()
    if not wants_json():
        return redirect(url_for("circuits.show", circuit_id=circuit_id), code=303)
    return jsonify(
        comment={
            "id": new_comment.id,
            "author": user_json(user),
            "body": text,
            "created_at": new_comment.created_at.isoformat(),
        }
    ), 201


@bp.post("/circuits/<int:circuit_id>/simulate")
def simulate_circuit(circuit_id: int) -> ResponseReturnValue:
    """Evaluate the circuit: ``{"inputs": {"a": 1, ...}}``, or ``{"truth_table": true}``."""
    db = get_db()
    circuit = _get_circuit(db, circuit_id)
    data = body()
    with tracer.start_as_current_span("simulate circuit") as span:
        span.set_attribute("demo.circuit_id", circuit_id)
        try:
            compiled = _compile(circuit.document)
            span.set_attribute("demo.gates", len(compiled.order))
            if data.get("truth_table") is True:
                if len(compiled.inputs) > MAX_TRUTH_TABLE_INPUTS:
                    msg = (
                        f"the circuit has {len(compiled.inputs)} inputs; truth tables are "
                        f"computed for at most {MAX_TRUTH_TABLE_INPUTS}"
                    )
                    raise CircuitError(msg)
                rows = truth_table(compiled)
                return jsonify(
                    inputs=list(compiled.inputs),
                    outputs=list(compiled.outputs),
                    rows=[[[int(v) for v in ins], [int(v) for v in outs]] for ins, outs in rows],
                )
            inputs = data.get("inputs")
            if not isinstance(inputs, dict):
                msg = 'inputs must be an object of input values, e.g. {"a": 1, "b": 0}'
                raise CircuitError(msg)
            outputs = simulate(compiled, inputs)
        except CircuitError as exc:
            logger.info("simulation of circuit %d refused: %s", circuit_id, exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            msg = f"cannot simulate circuit {circuit_id}: {exc}"
            raise BadRequest(msg) from None
    return jsonify(outputs={name: int(value) for name, value in outputs.items()})


@bp.get("/circuits/<int:circuit_id>/preview.svg")
def preview(circuit_id: int) -> ResponseReturnValue:
    """Return the circuit's drawing, asking the preview service if none is stored yet."""
    db = get_db()
    circuit = _get_circuit(db, circuit_id, Circuit.preview_svg)
    svg = circuit.preview_svg
    if svg is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        try:
            svg = fetch_preview(app, circuit.document, circuit.name)
        except PreviewUnavailable as exc:
            logger.warning("no preview for circuit %d: %s", circuit_id, exc)
            raise BadGateway(str(exc)) from None
        circuit.preview_svg = svg
        circuit.preview_updated_at = utcnow()
        db.commit()
    return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "max-age=60"})
