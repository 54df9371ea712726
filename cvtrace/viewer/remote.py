"""A Jaeger query service as a read-only trace source (``cvtrace view --jaeger-url``).

:class:`JaegerSource` answers what the viewer's pages read from the store
(services, operations, searches, a trace by id, a span) from a remote Jaeger, so that
the pages, the Jaeger API, the analyses and the downloads work on its traces with
the code they use for stored ones. Design notes, the API variants and the versions
tested: docs/design/remote-jaeger.md.

- **API.** Jaeger's API v3 (``/api/v3/services``, ``/api/v3/operations``,
  ``/api/v3/traces``, ``/api/v3/traces/{id}``; OTLP JSON answers) when the server
  serves it, else the older ``/api/services`` family (Jaeger JSON), which older
  Jaegers and another ``cvtrace view`` serve. Which one is found on first use (and
  logged). A search on tags (or errors only) uses ``/api/traces`` on any server: the
  v3 HTTP gateway of Jaeger 2.12 takes no attribute filter.
- **Mapping.** Every answer becomes OTLP (:func:`cvtrace.otlp.json_form.parse_otlp_dict`
  or :func:`cvtrace.otlp.jaeger_json.trace_to_request`), then :class:`StoredSpan`\\ s,
  with summaries computed by the store's own summary code (:class:`TraceBatch`).
- **Errors.** Every failure (nothing listening, a timeout, 401/403, a redirect, 5xx,
  an answer that is not JSON or not Jaeger's) raises :class:`RemoteError`, whose
  text says what happened and which setting or flag fixes it. Connecting waits at
  most ``min(3 s, timeout)``, and a whole answer at most ``timeout_s``
  (``CVTRACE_VIEWER_JAEGER_TIMEOUT_S``), however slowly it trickles in.
- **Cache.** The last :data:`CACHED_TRACES` traces fetched (by a search or by id)
  are kept for :data:`CACHE_TTL_S`: a trace page asks for its trace several times
  (summary, waterfall, notes, span details).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from cvtrace.exceptions import CvtraceConfigError
from cvtrace.otlp.jaeger_json import JaegerJsonError, jaeger_traces, trace_to_request
from cvtrace.otlp.json_form import OtlpJsonError, parse_otlp_dict
from cvtrace.store import StoredSpan, TraceQuery, TraceSummary
from cvtrace.store.batches import UNKNOWN_SERVICE, prepare_request

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
"""How long one answer of the remote may take, whole (``CVTRACE_VIEWER_JAEGER_TIMEOUT_S``)."""
CONNECT_TIMEOUT_S = 3.0
"""How long connecting may take at most (less if the timeout is shorter)."""
MAX_BODY_BYTES = 256 * 1024 * 1024
"""The largest answer read from the remote: more is an error, not an out-of-memory."""
SEARCH_CAP = 200
"""The most traces one search asks the remote for: each comes whole, with its spans."""
ANY_TIME_LOOKBACK_S = 7 * 86400
"""What "any time" searches on the remote (Jaeger needs a time range; its storages
keep a few days by default)."""
CACHED_TRACES = SEARCH_CAP + 56
"""Traces kept: a whole search's answer, whose traces the Jaeger API then writes out."""
CACHE_TTL_S = 60.0
_SNIPPET = 160


class RemoteError(Exception):
    """The remote Jaeger could not answer; the text says why and what to do."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"Jaeger at {url}: {message}")
        self.url = url
        self.reason = message


@dataclass(frozen=True)
class RemoteOptions:
    """Where the remote Jaeger is and how to ask it."""

    url: str
    """The query service's base URL (``http://jaeger:16686``)."""
    headers: Mapping[str, str]
    """Sent with every request (``Authorization: Bearer ...``)."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    """How long one answer may take, whole."""
    no_local: bool = False
    """Show the remote's traces only, not the local store's."""


def parse_url(name: str, value: str) -> str:
    """Return a Jaeger base URL without its trailing slash.

    Raises:
        CvtraceConfigError: It is not an http(s) URL with a host.
    """
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        msg = (
            f"{name}: {value[:200]!r} is not the URL of a Jaeger query service; give "
            "http(s)://HOST:PORT, e.g. http://jaeger:16686"
        )
        raise CvtraceConfigError(msg)
    return text.rstrip("/")


def parse_header(name: str, value: str) -> tuple[str, str]:
    """Return one ``Name: value`` header as a pair.

    Raises:
        CvtraceConfigError: It has no name, or characters a header cannot hold.
    """
    key, sep, rest = value.partition(":")
    key, rest = key.strip(), rest.strip()
    if not sep or not key or any(c in key for c in " \t\r\n") or any(c in rest for c in "\r\n"):
        msg = (
            f"{name}: {value[:80]!r} is not a header; give 'Name: value', e.g. "
            "'Authorization: Bearer TOKEN'"
        )
        raise CvtraceConfigError(msg)
    return key, rest


def parse_env_headers(name: str, value: str) -> dict[str, str]:
    """Return the headers of ``Name=value,Name2=value2`` (values URL-encoded), as
    ``OTEL_EXPORTER_OTLP_HEADERS`` writes them.

    Raises:
        CvtraceConfigError: An item is not ``Name=value``.
    """
    headers: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        key, sep, rest = item.partition("=")
        if not sep:
            msg = (
                f"{name}: {item.strip()[:80]!r} is not Name=value; give e.g. "
                "Authorization=Bearer%20TOKEN (several separated by commas, values URL-encoded)"
            )
            raise CvtraceConfigError(msg)
        pair = parse_header(name, f"{unquote(key.strip())}: {unquote(rest.strip())}")
        headers[pair[0]] = pair[1]
    return headers


def parse_timeout(name: str, value: object) -> float:
    """Return a timeout in seconds, above zero.

    Raises:
        CvtraceConfigError: It is not a positive number.
    """
    try:
        seconds = float(str(value).strip())
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < 86400:
        msg = f"{name}: {str(value)[:40]!r} is not a number of seconds; give e.g. 10 (the default)"
        raise CvtraceConfigError(msg)
    return seconds


# -- OTLP to stored spans ------------------------------------------------------------


@dataclass(frozen=True)
class RemoteTrace:
    """One trace as the remote answered it: as OTLP (to save) and as the store reads it."""

    request: ExportTraceServiceRequest
    spans: list[StoredSpan]
    summary: TraceSummary


def split_traces(request: ExportTraceServiceRequest) -> dict[bytes, RemoteTrace]:
    """Return the traces of an OTLP request, each with its spans in start order and
    its summary, computed by the store's summary code (spans it would refuse left out)."""
    requests_by_trace: dict[bytes, ExportTraceServiceRequest] = {}
    spans_by_trace: dict[bytes, list[StoredSpan]] = {}
    for rs in request.resource_spans:
        service = UNKNOWN_SERVICE
        for kv in rs.resource.attributes:
            if kv.key == "service.name":
                service = kv.value.string_value or UNKNOWN_SERVICE
        for ss in rs.scope_spans:
            targets: dict[bytes, Any] = {}
            for span in ss.spans:
                trace_id = span.trace_id
                target = targets.get(trace_id)
                if target is None:
                    out = requests_by_trace.setdefault(trace_id, ExportTraceServiceRequest())
                    if not out.resource_spans or out.resource_spans[-1].resource != rs.resource:
                        out_rs = out.resource_spans.add()
                        out_rs.resource.CopyFrom(rs.resource)
                        out_rs.schema_url = rs.schema_url
                    target = targets[trace_id] = out.resource_spans[-1].scope_spans.add()
                    target.scope.CopyFrom(ss.scope)
                    target.schema_url = ss.schema_url
                target.spans.append(span)
                spans_by_trace.setdefault(trace_id, []).append(
                    StoredSpan(
                        target.spans[-1],
                        rs.resource,
                        rs.schema_url,
                        ss.scope,
                        ss.schema_url,
                        service,
                    )
                )
    traces: dict[bytes, RemoteTrace] = {}
    for trace_id, one in requests_by_trace.items():
        batch = prepare_request(one, None, frozenset()).traces.get(trace_id)
        if batch is None or not batch.spans:  # invalid ids: nothing the store would keep
            continue
        batch.summarize(None)
        kept = batch.spans.keys()
        spans = [s for s in spans_by_trace[trace_id] if s.span.span_id in kept]
        spans.sort(key=lambda s: s.span.start_time_unix_nano)
        summary = TraceSummary(
            trace_id=trace_id,
            start_ns=batch.start_ns,
            end_ns=batch.end_ns,
            span_count=len(batch.spans),
            error_count=batch.errors,
            root_name=batch.root_name,
            root_service=batch.root_service,
            has_root=batch.has_root,
            services=batch.services,
        )
        traces[trace_id] = RemoteTrace(one, spans, summary)
    return traces


def _rfc3339(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // 1_000_000_000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}Z"


# -- the source ----------------------------------------------------------------------


class JaegerSource:
    """A remote Jaeger query service, read like the span store (see the module docs).

    Thread safe: the viewer's threads share it (one HTTP session each).
    """

    def __init__(self, options: RemoteOptions) -> None:
        self.options = options
        self.url = options.url
        self._version: str | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, tuple[float, RemoteTrace]] = OrderedDict()

    def __repr__(self) -> str:
        return f"JaegerSource({self.url!r})"

    # -- HTTP --------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # no ~/.netrc, no proxy variables: what is sent is what the options say
            session.trust_env = False
            session.headers.update({"Accept": "application/json", **self.options.headers})
            self._local.session = session
        return session

    def _fail(self, message: str, *, log: bool = True) -> RemoteError:
        error = RemoteError(self.url, message)
        if log and not getattr(self._local, "probing", False):
            logger.warning("%s", error)
        return error

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        """GET ``path`` and return its status (200 or 404) and parsed JSON.

        Each failure is logged as a warning (except while probing for the API).

        Raises:
            RemoteError: No answer in time, or one that is neither 200 nor 404 JSON.
        """
        timeout = self.options.timeout_s
        deadline = time.monotonic() + timeout
        try:
            with self._session().get(
                self.url + path,
                params=params,
                timeout=(min(CONNECT_TIMEOUT_S, timeout), timeout),
                allow_redirects=False,
                stream=True,
            ) as response:
                body = bytearray()
                for chunk in _chunks(response):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise self._fail(
                            f"{path} answered more than {MAX_BODY_BYTES >> 20} MiB; narrow "
                            "the search (fewer traces, a shorter time range)"
                        )
                    if time.monotonic() > deadline:
                        raise requests.Timeout
                status = response.status_code
                content_type = response.headers.get("Content-Type", "no content type")
                location = response.headers.get("Location", "")
        except requests.Timeout:
            msg = (
                f"no answer to {path} within {timeout:g} s; it may be overloaded, or "
                "raise CVTRACE_VIEWER_JAEGER_TIMEOUT_S (--jaeger-timeout)"
            )
            raise self._fail(msg) from None
        except requests.ConnectionError as exc:
            if "timed out" in str(exc):  # a read timeout while the body streams
                msg = (
                    f"no answer to {path} within {timeout:g} s; it may be overloaded, or "
                    "raise CVTRACE_VIEWER_JAEGER_TIMEOUT_S (--jaeger-timeout)"
                )
                raise self._fail(msg) from None
            reason = _reason(exc)
            msg = (
                f"cannot connect ({reason}); is its query service running there? Check "
                "--jaeger-url (CVTRACE_VIEWER_JAEGER_URL): Jaeger's query port is 16686"
            )
            raise self._fail(msg) from None
        except requests.RequestException as exc:
            raise self._fail(f"{path}: {exc}") from None
        return self._answer(path, status, content_type, location, bytes(body))

    def _answer(
        self, path: str, status: int, content_type: str, location: str, body: bytes
    ) -> tuple[int, Any]:
        text = body[:_SNIPPET].decode("utf-8", "replace")
        if status in (401, 403):
            msg = (
                f"refused access to {path} ({status}); pass its credentials with "
                "--jaeger-header 'Authorization: Bearer TOKEN' (CVTRACE_VIEWER_JAEGER_HEADERS)"
            )
            raise self._fail(msg)
        if 300 <= status < 400:
            msg = (
                f"{path} answered {status}, a redirect to {location[:200] or '(nowhere)'}: "
                "give --jaeger-url the query service's own URL (a login page needs "
                "--jaeger-header with credentials)"
            )
            raise self._fail(msg)
        try:
            data = _json(body)
        except ValueError:
            data = None
            parsed = False
        else:
            parsed = True
        if status >= 500:
            detail = _error_text(data) if parsed else text
            raise self._fail(f"{path} failed with {status}: {detail}")
        if not parsed:
            msg = (
                f"{path} answered {status} with something that is not JSON ({content_type}: "
                f"{text.strip()[:80]!r}); is --jaeger-url a Jaeger query service "
                "(its HTTP port, 16686 by default)?"
            )
            raise self._fail(msg)
        if status not in (200, 404):
            raise self._fail(f"{path} refused the request ({status}): {_error_text(data)}")
        return status, data

    # -- which API ---------------------------------------------------------------

    def version(self) -> str:
        """Return ``"v3"`` or ``"v1"``: the API this server serves (asked once).

        Raises:
            RemoteError: It does not answer, or serves neither.
        """
        if self._version is not None:
            return self._version
        version = None
        self._local.probing = True  # an older Jaeger has no v3: not worth a warning
        try:
            status, data = self.get_json("/api/v3/services")
            # protobuf's JSON leaves an empty list out: a Jaeger with no traces yet says {}
            if (
                status == 200
                and isinstance(data, dict)
                and set(data) <= {"services"}
                and isinstance(data.get("services", []), list)
            ):
                version = "v3"
        except RemoteError as exc:
            if "not JSON" not in str(exc) and "refused the request" not in str(exc):
                logger.warning("%s", exc)
                raise
        finally:
            self._local.probing = False
        if version is None:
            status, data = self.get_json("/api/services")
            names = data.get("data", False) if isinstance(data, dict) else False
            if status != 200 or not isinstance(names, (list, type(None))):  # null: none yet
                msg = (
                    "neither /api/v3/services nor /api/services answered as Jaeger does; "
                    "is --jaeger-url a Jaeger query service (its HTTP port, 16686 by default)?"
                )
                raise self._fail(msg)
            version = "v1"
        with self._lock:
            if self._version is None:
                logger.info("remote Jaeger at %s: API %s", self.url, version)
            self._version = version
        return version

    # -- what the pages read ------------------------------------------------------

    def services(self) -> list[str]:
        """Return the remote's service names, sorted."""
        if self.version() == "v3":
            _, data = self._ok(self.get_json("/api/v3/services"), "/api/v3/services")
            names = data.get("services")
        else:
            _, data = self._ok(self.get_json("/api/services"), "/api/services")
            names = data.get("data")
        return sorted(str(n) for n in names or [])

    def operations(self, service: str) -> list[str]:
        """Return one service's operation names, sorted."""
        if self.version() == "v3":
            status, data = self.get_json("/api/v3/operations", {"service": service})
            found = data.get("operations") if status == 200 and isinstance(data, dict) else None
            names = {str(op.get("name", "")) for op in found or [] if isinstance(op, dict)}
        else:
            path = f"/api/services/{quote(service, safe='')}/operations"
            status, data = self.get_json(path)
            found = data.get("data") if status == 200 and isinstance(data, dict) else None
            names = {str(n) for n in found or []}
        return sorted(names - {""})

    def search(self, query: TraceQuery) -> list[TraceSummary]:
        """Return the remote's traces matching ``query``, newest start first (at most
        :data:`SEARCH_CAP`)."""
        limit = max(1, min(query.limit, SEARCH_CAP))
        now = time.time_ns()
        start_min = query.start_min_ns
        if start_min is None:
            start_min = max(0, now - ANY_TIME_LOOKBACK_S * 1_000_000_000)
        start_max = query.start_max_ns if query.start_max_ns is not None else now + 3600 * 10**9
        tags = dict(query.tags)
        if query.errors_only:
            # checked here, over the newest SEARCH_CAP traces found: Jaeger's own error
            # filter differs by storage (2.12's memory storage reads the API's "true"
            # as false, and finds the traces without errors)
            limit = SEARCH_CAP
        if self.version() == "v3" and not tags:
            params: dict[str, Any] = {
                "query.start_time_min": _rfc3339(start_min),
                "query.start_time_max": _rfc3339(start_max),
                "query.num_traces": limit,
            }
            if query.service:
                params["query.service_name"] = query.service
            if query.operation:
                params["query.operation_name"] = query.operation
            if query.min_duration_ns is not None:
                params["query.duration_min"] = f"{query.min_duration_ns}ns"
            if query.max_duration_ns is not None:
                params["query.duration_max"] = f"{query.max_duration_ns}ns"
            found = self._traces_v3("/api/v3/traces", params)
        else:
            params = {"start": start_min // 1000, "end": start_max // 1000, "limit": limit}
            if query.service:
                params["service"] = query.service
            if query.operation:
                params["operation"] = query.operation
            if tags:
                params["tags"] = _json_text(tags)
            if query.min_duration_ns is not None:
                params["minDuration"] = f"{query.min_duration_ns}ns"
            if query.max_duration_ns is not None:
                params["maxDuration"] = f"{query.max_duration_ns}ns"
            found = self._traces_v1("/api/traces", params)
        self._remember(found.values())
        summaries = [t.summary for t in found.values()]
        if query.errors_only:
            summaries = [s for s in summaries if s.error_count]
        summaries.sort(key=lambda s: s.start_ns, reverse=True)
        return summaries[: max(1, min(query.limit, SEARCH_CAP))]

    def trace(self, trace_id: bytes) -> RemoteTrace | None:
        """Return one trace (from the cache if fetched lately), or None if unknown."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(trace_id)
            if hit is not None and now - hit[0] < CACHE_TTL_S:
                self._cache.move_to_end(trace_id)
                return hit[1]
        if self.version() == "v3":
            found = self._traces_v3(f"/api/v3/traces/{trace_id.hex()}", None)
        else:
            found = self._traces_v1(f"/api/traces/{trace_id.hex()}", None)
        self._remember(found.values())
        return found.get(trace_id)

    def get_summary(self, trace_id: bytes) -> TraceSummary | None:
        """Return one trace's summary, or None if the remote does not have it."""
        found = self.trace(trace_id)
        return found.summary if found is not None else None

    def get_trace(self, trace_id: bytes) -> list[StoredSpan]:
        """Return the spans of one trace in start order; [] if unknown."""
        found = self.trace(trace_id)
        return list(found.spans) if found is not None else []

    def get_traces(self, trace_ids: Sequence[bytes]) -> dict[bytes, list[StoredSpan]]:
        """Return the spans of the remote's traces among ``trace_ids``."""
        out = {}
        for trace_id in trace_ids:
            spans = self.get_trace(trace_id)
            if spans:
                out[trace_id] = spans
        return out

    def trace_pieces(self, trace_id: bytes) -> list[list[StoredSpan]] | None:
        """Return one trace as one piece (the remote answers it whole), or None."""
        spans = self.get_trace(trace_id)
        return [spans] if spans else None

    def get_span(self, trace_id: bytes, span_id: bytes) -> StoredSpan | None:
        """Return one span of one trace, or None."""
        for stored in self.get_trace(trace_id):
            if stored.span.span_id == span_id:
                return stored
        return None

    # -- answers to traces ----------------------------------------------------------

    def _ok(self, answer: tuple[int, Any], path: str) -> tuple[int, Any]:
        status, data = answer
        if status != 200 or not isinstance(data, dict):
            raise self._fail(f"{path} answered {status} without the expected JSON object")
        return status, data

    def _traces_v3(self, path: str, params: Mapping[str, Any] | None) -> dict[bytes, RemoteTrace]:
        status, data = self.get_json(path, params)
        if status == 404:  # Jaeger's "No traces found", for a search too
            return {}
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, dict):
            raise self._fail(f"{path} answered without a 'result' of OTLP JSON")
        try:
            request = parse_otlp_dict(result, ExportTraceServiceRequest())
        except OtlpJsonError as exc:
            raise self._fail(f"{path} answered OTLP JSON that does not parse: {exc}") from None
        return split_traces(request)

    def _traces_v1(self, path: str, params: Mapping[str, Any] | None) -> dict[bytes, RemoteTrace]:
        status, data = self.get_json(path, params)
        if status == 404:
            return {}
        if not isinstance(data, dict):
            raise self._fail(f"{path} answered JSON that is not Jaeger's envelope")
        request = ExportTraceServiceRequest()
        try:
            for where, trace in jaeger_traces(data):
                request.MergeFrom(trace_to_request(trace, where))
        except JaegerJsonError as exc:
            raise self._fail(f"{path}: {exc}") from None
        return split_traces(request)

    def _remember(self, traces: Iterable[RemoteTrace]) -> None:
        now = time.monotonic()
        with self._lock:
            for found in traces:
                self._cache[found.summary.trace_id] = (now, found)
                self._cache.move_to_end(found.summary.trace_id)
            while len(self._cache) > CACHED_TRACES:
                self._cache.popitem(last=False)


def _chunks(response: requests.Response) -> Iterator[bytes]:
    """Yield an answer's body as it arrives, so the deadline is checked between reads.

    ``iter_content(n)`` returns only once it has ``n`` bytes (or the end): an answer
    that trickles in a byte at a time, each within the read timeout, would hold it
    for as long as it takes. urllib3's ``read1`` returns what has arrived.
    """
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:  # urllib3 before 2.1: small reads instead
        yield from response.iter_content(4096)
        return
    while chunk := read1(64 * 1024, decode_content=True):
        yield chunk


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from None


def _json_text(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _error_text(data: object) -> str:
    """Return the message of a Jaeger error answer (v1's ``errors``, v3's ``error``)."""
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            texts = [str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in errors]
            return "; ".join(texts)[:_SNIPPET]
        error = data.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:_SNIPPET]
    return str(data)[:_SNIPPET]


def _reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for known in ("Connection refused", "Name or service not known", "No route to host"):
        if known in text:
            return known.lower()
    return text[:_SNIPPET]
