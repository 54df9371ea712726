"""Who is asking: logged-in users and anonymous visitors.

The demo has no passwords: ``POST /login`` with the name of an existing user logs in as
them (the seed creates users; ``POST /users`` signs up). Every browser also gets a random
visitor id in its session, which the unique-view counter hashes.
"""

from __future__ import annotations

import re
import secrets

from flask import Blueprint, jsonify, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import BadRequest, Conflict, NotFound, Unauthorized

from cvtrace.demo.db import get_db
from cvtrace.demo.inputs import body, text_field, wants_json
from cvtrace.demo.models import Circuit, User

bp = Blueprint("auth", __name__)

_USERNAME = re.compile(r"^[a-z0-9_]{2,40}$")


def current_user() -> User | None:
    """Return the logged-in user, or ``None``."""
    user_id = session.get("user_id")
    if user_id is None:
        return None
    return get_db().get(User, user_id)


def require_user() -> User:
    """Return the logged-in user, or answer 401."""
    user = current_user()
    if user is None:
        msg = "log in first: POST /login with your username"
        raise Unauthorized(msg)
    return user


def visitor_id() -> str:
    """Return a stable id for whoever is asking: the user, or the browser's session."""
    user_id = session.get("user_id")
    if user_id is not None:
        return f"user:{user_id}"
    if "visitor" not in session:
        session["visitor"] = secrets.token_hex(8)
    return f"visitor:{session['visitor']}"


def user_json(user: User) -> dict[str, object]:
    """Return the public fields of a user."""
    return {
        "username": user.username,
        "display_name": user.display_name,
        "url": url_for("auth.profile", username=user.username),
    }


@bp.get("/login")
def login_form() -> str:
    """Show the login form."""
    return render_template("login.html")


@bp.post("/login")
def login() -> ResponseReturnValue:
    """Log in as an existing user."""
    username = text_field(body(), "username", max_length=40, required=True).lower()
    user = get_db().scalar(select(User).where(User.username == username))
    if user is None:
        msg = f"no user named {username!r}; sign up with POST /users"
        raise NotFound(msg)
    session["user_id"] = user.id
    if wants_json():
        return jsonify(user=user_json(user))
    return redirect(url_for("circuits.index"))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """Log out."""
    session.pop("user_id", None)
    if wants_json():
        return jsonify(ok=True)
    return redirect(url_for("circuits.index"))


@bp.post("/users")
def sign_up() -> ResponseReturnValue:
    """Create a user and log in as them."""
    data = body()
    username = text_field(data, "username", max_length=40, required=True).lower()
    if not _USERNAME.match(username):
        msg = "username must be 2 to 40 lowercase letters, digits or underscores"
        raise BadRequest(msg)
    display_name = text_field(data, "display_name", max_length=80, required=False) or username
    db = get_db()
    if db.scalar(select(User.id).where(User.username == username)) is not None:
        msg = f"the username {username!r} is taken"
        raise Conflict(msg)
    user = User(username=username, display_name=display_name)
    db.add(user)
    try:
        db.commit()
    except IntegrityError:  # taken by a simultaneous sign-up
        db.rollback()
        msg = f"the username {username!r} is taken"
        raise Conflict(msg) from None
    session["user_id"] = user.id
    if not wants_json():
        return redirect(url_for("circuits.index"), code=303)
    return jsonify(user=user_json(user)), 201


@bp.get("/users/<username>")
def profile(username: str) -> ResponseReturnValue:
    """Show a user and their circuits."""
    db = get_db()
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        msg = f"no user named {username!r}"
        raise NotFound(msg)
    circuits = db.scalars(
        select(Circuit).where(Circuit.owner_id == user.id).order_by(Circuit.created_at.desc())
    ).all()
    if wants_json():
        return jsonify(
            user=user_json(user),
            circuits=[
                {"id": c.id, "name": c.name, "url": url_for("circuits.show", circuit_id=c.id)}
                for c in circuits
            ],
        )
    return render_template("user.html", user=user, circuits=circuits)
