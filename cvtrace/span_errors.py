"""Errors recorded on spans without the data they carry.

An exception's text can hold what the request was about. A database driver quotes
values (``Duplicate entry '...'``, PostgreSQL's ``DETAIL: Key (email)=(...)``), and
SQLAlchemy appends the statement and its bound values to every error it wraps
(``[SQL: ...]`` and ``[parameters: (...)]``). Those errors are recorded with
:func:`error_message` instead: the first line, quoted text as ``?``. Any other exception
is the app's own and is recorded as Python tells it.
"""

from __future__ import annotations

import re
import traceback

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

_QUOTED = re.compile(r""""(?:[^"]|"")*"|'(?:[^']|'')*'""")


def error_message(error: BaseException) -> str:
    """Return a driver's error message fit to export: its first line, quoted text as ``?``.

    A database's message can hold the data a statement carried. PostgreSQL's goes on
    with ``DETAIL:`` (a row's values), ``HINT:`` and ``LINE 1:`` (the statement as sent,
    literals and all), and its first line quotes input values (``invalid input syntax
    for type integer: "..."``) as it quotes names; SQLite's and MySQL's quote values
    too (``near "...": syntax error``, ``Duplicate entry '...'``). What failed stays
    readable: the error type, ``db.response.status_code`` (PostgreSQL's SQLSTATE) and
    the statement, scrubbed of literals, on the database span.
    """
    return mask_quoted(str(error).split("\n", 1)[0].strip())


def mask_quoted(text: str) -> str:
    """Replace what ``text`` quotes (``'...'``, ``"..."``) with ``?``, quotes kept."""
    return _QUOTED.sub(_masked, text)


def _masked(quoted: re.Match[str]) -> str:
    return f"{quoted[0][0]}?{quoted[0][0]}"


def is_statement_error(error: BaseException) -> bool:
    """Whether ``error`` is SQLAlchemy's wrapper of a failed statement (``StatementError``).

    Told by its attributes, so that an app without SQLAlchemy imports nothing.
    """
    return all(hasattr(error, name) for name in ("statement", "params", "orig"))


def record_error(span: trace.Span, error: BaseException, message: str | None = None) -> None:
    """Record ``error`` on ``span``: an ``exception`` event and the error status.

    With ``message``, the event's message and stack trace end with it instead of the
    exception's own text (the frames are kept; the chain of causes, whose texts are
    the same data again, is not).
    """
    if message is None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        return
    stack = "".join(traceback.format_tb(error.__traceback__))
    span.record_exception(
        error,
        attributes={
            "exception.message": message,
            "exception.stacktrace": f"{stack}{type(error).__qualname__}: {message}",
        },
    )
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {message}"))
