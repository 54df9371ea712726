"""The span store: one SQLite file shared by the ``local`` exporter and the viewer.

Spans arrive as OTLP ``ExportTraceServiceRequest`` messages from the viewer's OTLP
receivers (:meth:`SpanStore.write_request`), and as SDK spans encoded one by one by
:class:`cvtrace.otlp.encoding.SpanEncoder` from the ``local`` exporter
(:meth:`SpanStore.write_encoded`, which reads the span fields from the SDK's objects
instead of decoding a request again). Both store the same rows for the same spans
(``tests/store/test_local_vs_otlp.py`` compares every table).

Usage::

    store = SpanStore(path, max_spans=0, tag_keys=DEFAULT_TAG_KEYS | {"app.tenant"})
    result = store.write_request(request)   # WriteResult(accepted, rejected, message, new)
    store.search(TraceQuery(service="shop", tags={"http.route": "/cart"}))
    store.get_trace(trace_id)               # list[StoredSpan], or [] when unknown
    store.close()

The package's parts, each with its design notes:

- :mod:`.spanstore`: :class:`SpanStore`, the facade the rest of cvtrace uses;
- :mod:`.connections`: opening the file, pragmas, the reader pool, checkpoints;
- :mod:`.batches`: requests and encoded SDK spans read into per-trace batches,
  outside the write transaction;
- :mod:`.writing`: the writer, its caches and group commit;
- :mod:`.reading`: traces, spans and summaries by id;
- :mod:`.search`: the search planner (a pure function of a query) and searches;
- :mod:`.retention`: what the store keeps;
- :mod:`.calls`: entry spans and cross-service calls, kept as spans are written, for
  the viewer's service map and RED metrics;
- :mod:`.schema`: the tables, their layout, and the migrations.
"""

from __future__ import annotations

from .connections import check_file as check_file
from .connections import is_writable as is_writable
from .reading import StoredSpan as StoredSpan
from .reading import TracePieces as TracePieces
from .reading import TraceSummary as TraceSummary
from .reading import span_tag_texts as span_tag_texts
from .reading import spans_to_traces_data as spans_to_traces_data
from .retention import DEFAULT_MAX_SPANS as DEFAULT_MAX_SPANS
from .schema import SCHEMA_VERSION as SCHEMA_VERSION
from .search import DEFAULT_TAG_KEYS as DEFAULT_TAG_KEYS
from .search import TraceQuery as TraceQuery
from .spanstore import SpanStore as SpanStore
from .writing import StoreFullError as StoreFullError
from .writing import StoreReadOnlyError as StoreReadOnlyError
from .writing import StoreWriteError as StoreWriteError
from .writing import WriteResult as WriteResult
