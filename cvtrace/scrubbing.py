"""Scrubbing: secrets never leave the process, whatever the exporter.

A span is scrubbed once, in the export thread, before any exporter sees it:

- the value of an attribute whose key looks sensitive (password, secret, token, api key,
  auth, cookie, session, csrf, credit card, and ``CVTRACE_SCRUB_PATTERNS``) becomes
  ``[REDACTED]``, on spans, their events and links, and on the resource;
- in URLs and query strings (``url.full``, ``url.query``, ``http.url``, ``http.target``)
  only the values of sensitive parameters, and any password in the user-info part, are
  redacted; the rest of the URL is kept;
- string and number literals in SQL (``db.query.text``, ``db.statement``) become ``?``,
  in SQLite's and PostgreSQL's syntax (:func:`scrub_sql`);
- in exception texts (``exception.message``, ``exception.stacktrace``, an error status's
  description) the statement and bound values SQLAlchemy appends to its errors, and
  PostgreSQL's ``DETAIL:`` and ``LINE n:`` lines (a row's values, the statement as sent)
  (:func:`scrub_exception_text`): a span around a failing query records them, whoever
  made the span.

Keys are classified once and remembered, so a span whose attributes are all ordinary
costs a dictionary lookup per attribute.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, Status
from opentelemetry.util.types import AttributeValue

from .exceptions import CvtraceConfigError
from .span_errors import mask_quoted
from .spans import replace_span

REDACTED = "[REDACTED]"

#: Attribute keys whose values are secrets, matched anywhere in the lower-cased key.
SENSITIVE_KEY_PATTERNS = (
    r"passw(?:or)?d",
    r"pwd",
    r"secret",
    r"token(?!s)",  # "token", "x-auth-token", not "input_tokens"
    r"api[-_.]?key",
    r"auth(?!or(?!i))",  # "auth", "authorization", "oauth", not "author"
    r"cookie",
    r"session",
    r"csrf",
    r"xsrf",
    r"credit[-_.]?card",
    r"card[-_.]?number",
    r"cvv",
)

URL_KEYS = frozenset({"url.full", "url.query", "http.url", "http.target"})
SQL_KEYS = frozenset({"db.query.text", "db.statement"})
EXCEPTION_KEYS = frozenset({"exception.message", "exception.stacktrace"})

_PLAIN, _SENSITIVE, _URL, _SQL, _EXCEPTION = range(5)

# SQL literals, in the syntax of SQLite and PostgreSQL. One pass, left to right: whichever
# token starts first wins, so a quote inside a comment, a quoted identifier or another
# literal never starts a literal of its own. A literal cut short (an attribute length
# limit cuts the statement before it is scrubbed) runs to the end and is replaced too.
# Where the cost is: the scan tries the pattern at every character of every new
# statement. The leading lookahead turns most characters away with one class test, and
# a string is matched from its quote (an ``E``, ``U&``, ``B``, ``X`` or ``N`` prefix is
# checked behind it and stays: ``E?``), not from a letter, which would let every
# letter in. Measured: 0.82x the SQLite-only pattern it replaced on the demo's
# statements, 1.03x on short literal-heavy ones (BENCHMARKS.md, "SQL scrubbing").
_SQL_TOKEN = re.compile(
    r"""
    (?=[-/"'$.\d])                              # a token starts with one of these
    (?:
        (?P<keep>                               # kept as they are:
            --[^\n]*                            #   a line comment
          | /\*[\s\S]*?(?:\*/|\Z)              #   a block comment
          | "(?:[^"]|"")*(?:"|\Z)               #   a quoted identifier
        )
      | (?<=[eE])(?<![\w$][eE])                  # E'...' (backslash escapes)
        '(?:[^'\\]|\\[\s\S]|'')*(?:'|\\?\Z)
      | '(?:[^']|'')*(?:'|\Z)                    # '...', and U&'', B'', X'', N''
      | (?<![\w$])\$(?P<tag>(?:[^\W\d]\w*)?)\$  # $$...$$, $tag$...$tag$
        [\s\S]*?(?:\$(?P=tag)\$|\Z)
      | (?<![\w.$?:@])-?                         # a number, not a parameter ($1, ?1, :1)
        (?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+
          |(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)
        (?!\w)
    )
    """,
    re.VERBOSE,
)


_URL_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:?#]*):[^/@?#]*@")


def _placeholder(match: re.Match[str]) -> str:
    return match[1] or "?"  # group 1 is "keep" (by number: a name costs a look-up)


@lru_cache(maxsize=2048)
def scrub_sql(statement: str) -> str:
    """Replace the string and number literals in a SQL statement with ``?``.

    Strings in every form SQLite and PostgreSQL write them (``'...'`` with ``''``,
    ``E'...'`` with backslash escapes, ``U&'...'``, ``B'...'``, ``X'...'``, dollar-quoted
    ``$$...$$`` and ``$tag$...$tag$``; a prefix letter stays: ``E?``), so casts
    (``'...'::type``) and arrays (``ARRAY['a']``, ``'{a,b}'``) lose their values too, and
    numbers (decimal, hex, octal, binary, with ``_`` separators). Parameters (``$1``,
    ``?``, ``:name``, ``%(name)s``), identifiers, quoted identifiers and comments are kept.
    """
    return _SQL_TOKEN.sub(_placeholder, statement)


# What SQLAlchemy's StatementError adds to a driver's message, each on its own line:
# "[SQL: statement]" (which may span lines) and "[parameters: repr of the values]".
_SQLALCHEMY_PARAMETERS = re.compile(r"^\[parameters: .*\]$", re.MULTILINE)
# PostgreSQL's message lines that quote data; "LINE n:" is followed by a caret line.
_POSTGRES_DATA_LINES = re.compile(r"^(DETAIL|LINE \d+):.*$", re.MULTILINE)
# In a database error's text: its statement, or a line that is not indented (a message,
# where the driver quotes values; a stack trace's indented lines quote file names).
_DATABASE_ERROR_PART = re.compile(
    r"""
    ^\[SQL:\ (?P<sql>.*?)\]$(?=\n\[parameters:\ |\n\(Background\ on|\n\n|\Z)
  | ^(?P<message>\S[^\n]*)$
    """,
    re.MULTILINE | re.DOTALL | re.VERBOSE,
)


def scrub_exception_text(text: str) -> str:
    """Redact the data a database error's text holds: bound values, literals, rows.

    PostgreSQL's ``DETAIL:`` and ``LINE n:`` lines go; in SQLAlchemy's error texts the
    bound values go, the statement loses its literals (:func:`scrub_sql`) and what the
    messages quote becomes ``?``, as on database spans.
    """
    if "\n" not in text:  # each part redacted starts on a line after the first
        return text
    text = _POSTGRES_DATA_LINES.sub(rf"\1: {REDACTED}", text)
    if "[SQL: " not in text:
        return text
    text = _SQLALCHEMY_PARAMETERS.sub(f"[parameters: {REDACTED}]", text)
    return _DATABASE_ERROR_PART.sub(_scrub_database_error_part, text)


def _scrub_database_error_part(match: re.Match[str]) -> str:
    if match["sql"] is not None:
        return f"[SQL: {scrub_sql(match['sql'])}]"
    return mask_quoted(match["message"])


class Scrubber:
    """Redact secrets from spans and resources.

    Args:
        extra_patterns: more regular expressions for sensitive attribute keys and
            query parameters (``CVTRACE_SCRUB_PATTERNS``), matched case-insensitively.

    Raises:
        CvtraceConfigError: a pattern is not a valid regular expression.
    """

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        patterns = list(SENSITIVE_KEY_PATTERNS)
        for pattern in extra_patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                msg = (
                    f"CVTRACE_SCRUB_PATTERNS: {pattern!r} is not a regular expression "
                    f"({error}); fix or remove it"
                )
                raise CvtraceConfigError(msg) from None
            patterns.append(f"(?:{pattern})")
        self._sensitive = re.compile("|".join(patterns), re.IGNORECASE)
        self._query_param = re.compile(r"(^|[?&;])([^=&;#]*)=([^&;#]*)")
        self._kinds: dict[str, int] = {}

    def is_sensitive_key(self, key: str) -> bool:
        """Whether the value of attribute ``key`` is redacted."""
        return self._kind(key) == _SENSITIVE

    def scrub_url(self, url: str) -> str:
        """Redact sensitive query parameters' values and a user-info password."""
        url = _URL_USERINFO.sub(rf"\1:{REDACTED}@", url)
        if "=" not in url:
            return url
        return self._query_param.sub(self._redact_param, url)

    def scrub_attributes(
        self, attributes: Mapping[str, AttributeValue] | None
    ) -> dict[str, AttributeValue] | None:
        """Return scrubbed attributes, or ``None`` when nothing needed changing."""
        if not attributes:
            return None
        changed: dict[str, AttributeValue] | None = None
        kinds = self._kinds
        for key, value in attributes.items():
            kind = kinds.get(key)
            if kind is None:
                kind = self._kind(key)
            if kind == _PLAIN:
                continue
            new_value = self._scrub_value(kind, value)
            if new_value != value:
                if changed is None:
                    changed = dict(attributes)
                changed[key] = new_value
        return changed

    def scrub_span(self, span: ReadableSpan) -> ReadableSpan:
        """Return ``span`` itself when clean, else a scrubbed copy."""
        attributes = self.scrub_attributes(span.attributes)
        span_events = span.events  # each access copies: read once
        span_links = span.links
        events = self._scrub_events(span_events) if span_events else None
        links = self._scrub_links(span_links) if span_links else None
        status = _scrub_status(span.status)
        if attributes is None and events is None and links is None and status is None:
            return span
        return replace_span(span, attributes=attributes, events=events, links=links, status=status)

    def scrub_resource(self, resource: Resource) -> Resource:
        """Return the resource with sensitive attribute values redacted."""
        attributes = self.scrub_attributes(resource.attributes)
        if attributes is None:
            return resource
        return Resource(attributes, resource.schema_url)

    def _kind(self, key: str) -> int:
        kind = self._kinds.get(key)
        if kind is None:
            if key in URL_KEYS:
                kind = _URL
            elif key in SQL_KEYS:
                kind = _SQL
            elif key in EXCEPTION_KEYS:
                kind = _EXCEPTION
            elif self._sensitive.search(key):
                kind = _SENSITIVE
            else:
                kind = _PLAIN
            if len(self._kinds) < 10_000:  # bound the memo against unbounded key sets
                self._kinds[key] = kind
        return kind

    def _scrub_value(self, kind: int, value: AttributeValue) -> AttributeValue:
        if kind == _SENSITIVE:
            return REDACTED
        if not isinstance(value, str):
            return value
        if kind == _URL:
            return self.scrub_url(value)
        if kind == _EXCEPTION:
            return scrub_exception_text(value)
        return scrub_sql(value)

    def _redact_param(self, match: re.Match[str]) -> str:
        separator, name, value = match.groups()
        if value and self._sensitive.search(name):
            return f"{separator}{name}={REDACTED}"
        return match.group(0)

    def _scrub_events(self, events: Sequence[Event]) -> list[Event] | None:
        changed: list[Event] | None = None
        for index, event in enumerate(events):
            attributes = self.scrub_attributes(event.attributes)
            if attributes is not None:
                if changed is None:
                    changed = list(events)
                changed[index] = Event(event.name, attributes, event.timestamp)
        return changed

    def _scrub_links(self, links: Sequence[Link]) -> list[Link] | None:
        changed: list[Link] | None = None
        for index, link in enumerate(links):
            attributes = self.scrub_attributes(link.attributes)
            if attributes is not None:
                if changed is None:
                    changed = list(links)
                changed[index] = Link(link.context, attributes)
        return changed


def _scrub_status(status: Status) -> Status | None:
    """A scrubbed copy of an error status whose description needs it, else ``None``."""
    description = status.description
    if not description:
        return None
    scrubbed = scrub_exception_text(description)
    return None if scrubbed == description else Status(status.status_code, scrubbed)
