"""Where the viewer's pages read traces: the local store, a remote Jaeger, or both.

The routes read through :func:`get_source`, a :class:`Sources` with the read methods
of :class:`cvtrace.store.SpanStore` they use; the receivers, imports and retention
keep the store itself (:func:`cvtrace.viewer.get_store`).

With both sources on:

- a trace id is looked up in the local store first, then in the remote (ids are
  global: a trace saved locally is shown from the local copy);
- services and operations are the union of both; searches ask both and merge the
  results by start time, newest first, each trace once (the local copy wins), and
  :meth:`Sources.origin` says where each came from;
- when the remote fails, what the local store found is still shown, with the
  remote's error as a note on the page (:func:`remote_problems`) and in the log.

With the remote alone (``--no-local``), or for a trace only the remote may have, a
remote failure raises :class:`~cvtrace.viewer.remote.RemoteError`, which the app
answers with a 502 page or Jaeger's error envelope, never a 500.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from flask import Flask, current_app, g, has_app_context

from cvtrace.store import SpanStore, StoredSpan, TraceQuery, TraceSummary
from cvtrace.viewer.remote import JaegerSource, RemoteError, RemoteTrace

Origin = Literal["local", "remote"]
_PROBLEMS = "cvtrace_remote_problems"
_FAILED = "cvtrace_remote_failed"
_SOURCE_KEY = "cvtrace.source"


def note_problem(error: RemoteError) -> None:
    """Keep a remote failure to show on the page being answered (once per text)."""
    if has_app_context():
        problems: list[str] = g.setdefault(_PROBLEMS, [])
        if str(error) not in problems:
            problems.append(str(error))


def remote_problems() -> list[str]:
    """Return the remote failures met while answering this request."""
    return list(g.get(_PROBLEMS, [])) if has_app_context() else []


class Sources:
    """The local store, a remote Jaeger, or both, read as one (see the module docs).

    Args:
        local: The store; None when it is not shown (``--no-local``).
        remote: The remote Jaeger, if any.
    """

    def __init__(self, local: SpanStore | None, remote: JaegerSource | None) -> None:
        if local is None and remote is None:
            msg = "a trace source needs the local store, a remote Jaeger, or both"
            raise ValueError(msg)
        self.local = local
        self.remote = remote

    def describe(self) -> str:
        """Return where the traces come from, for pages and logs."""
        parts = []
        if self.local is not None:
            parts.append(f"the local store {self.local.path}")
        if self.remote is not None:
            parts.append(f"the Jaeger at {self.remote.url}")
        return " and ".join(parts)

    def _ask_remote(self, call: str, *args: object) -> Any:
        """Call the remote, once per request if it fails: a later call in the same
        request raises the same error at once (a page never waits twice for a timeout).
        """
        failed: RemoteError | None = g.get(_FAILED) if has_app_context() else None
        if failed is not None:
            raise failed
        try:
            return getattr(self.remote, call)(*args)
        except RemoteError as exc:
            if has_app_context():
                setattr(g, _FAILED, exc)
            raise

    def _from_remote(self, call: str, *args: object) -> Any:
        """Call the remote; with a local store too, a failure becomes a page note."""
        assert self.remote is not None
        try:
            return self._ask_remote(call, *args)
        except RemoteError as exc:
            if self.local is None:
                raise
            note_problem(exc)
            return None

    # -- lists -------------------------------------------------------------------

    def services(self) -> list[str]:
        """Return the service names of both sources, sorted."""
        names = set(self.local.services()) if self.local is not None else set()
        if self.remote is not None:
            names.update(self._from_remote("services") or [])
        return sorted(names)

    def operations(self, service: str) -> list[str]:
        """Return one service's operation names in both sources, sorted."""
        names = set(self.local.operations(service)) if self.local is not None else set()
        if self.remote is not None:
            names.update(self._from_remote("operations", service) or [])
        return sorted(names)

    def search(self, query: TraceQuery) -> list[TraceSummary]:
        """Return the newest traces of both sources matching ``query``, each once."""
        local = self.local.search(query) if self.local is not None else []
        if self.remote is None:
            return local
        remote: list[TraceSummary] = self._from_remote("search", query) or []
        seen = {s.trace_id for s in local}
        merged = heapq.merge(
            local,
            [s for s in remote if s.trace_id not in seen],
            key=lambda s: -s.start_ns,
        )
        return list(merged)[: query.limit]

    def span_count(self) -> int:
        """Return how many spans the local store holds (0 without one)."""
        return self.local.span_count() if self.local is not None else 0

    # -- one trace -----------------------------------------------------------------

    def origin(self, trace_id: bytes) -> Origin:
        """Return where a trace is read from: the local store if it has it."""
        if self.local is not None and self.local.get_summary(trace_id) is not None:
            return "local"
        return "remote" if self.remote is not None else "local"

    def _remote_for(self, trace_id: bytes) -> JaegerSource | None:
        """Return the remote if it is where ``trace_id`` is read from."""
        return self.remote if self.origin(trace_id) == "remote" else None

    def remote_trace(self, trace_id: bytes) -> RemoteTrace | None:
        """Return a trace as the remote has it (to save it locally), or None."""
        if self.remote is None:
            return None
        return self._ask_remote("trace", trace_id)  # type: ignore[no-any-return]

    def get_summary(self, trace_id: bytes) -> TraceSummary | None:
        """Return one trace's summary, from the first source that has it."""
        if self.local is not None:
            found = self.local.get_summary(trace_id)
            if found is not None:
                return found
        return self._ask_remote("get_summary", trace_id) if self.remote is not None else None

    def get_trace(self, trace_id: bytes) -> list[StoredSpan]:
        """Return the spans of one trace in start order; [] if unknown."""
        remote = self._remote_for(trace_id)
        if remote is not None:
            return self._ask_remote("get_trace", trace_id)  # type: ignore[no-any-return]
        assert self.local is not None
        return self.local.get_trace(trace_id)

    def get_traces(self, trace_ids: Sequence[bytes]) -> dict[bytes, list[StoredSpan]]:
        """Return the spans of the known traces among ``trace_ids``."""
        found = self.local.get_traces(trace_ids) if self.local is not None else {}
        if self.remote is not None:
            missing = [t for t in trace_ids if t not in found]
            if missing:
                found.update(self._ask_remote("get_traces", missing))
        return found

    def trace_pieces(self, trace_id: bytes) -> Iterable[Sequence[StoredSpan]] | None:
        """Return one trace to read in pieces (the remote's: one piece), or None."""
        remote = self._remote_for(trace_id)
        if remote is not None:
            return self._ask_remote("trace_pieces", trace_id)  # type: ignore[no-any-return]
        assert self.local is not None
        return self.local.trace_pieces(trace_id)

    def get_span(self, trace_id: bytes, span_id: bytes) -> StoredSpan | None:
        """Return one span of one trace, or None."""
        remote = self._remote_for(trace_id)
        if remote is not None:
            return self._ask_remote("get_span", trace_id, span_id)  # type: ignore[no-any-return]
        assert self.local is not None
        return self.local.get_span(trace_id, span_id)


def init_app(app: Flask, local: SpanStore | None, remote: JaegerSource | None) -> None:
    """Give ``app`` its trace source."""
    app.extensions[_SOURCE_KEY] = Sources(local, remote)


def get_source(app: Flask | None = None) -> Sources:
    """Return the trace source of ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    source: Sources = target.extensions[_SOURCE_KEY]
    return source
