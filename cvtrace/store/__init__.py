"""The span store: one SQLite file shared by the ``local`` exporter and the viewer.

The package's parts: :mod:`.batches` reads requests and encoded SDK spans into
per-trace batches (outside the write transaction), :mod:`.schema` holds the SQLite
schema and its migrations, :mod:`.spanstore` opens the file, writes the batches and
reads and searches. :class:`SpanStore` is the facade the rest of cvtrace uses.
"""

from __future__ import annotations

from .schema import SCHEMA_VERSION as SCHEMA_VERSION
from .spanstore import SpanStore as SpanStore
from .spanstore import StoredSpan as StoredSpan
from .spanstore import TracePieces as TracePieces
from .spanstore import TraceQuery as TraceQuery
from .spanstore import TraceSummary as TraceSummary
from .spanstore import WriteResult as WriteResult
from .spanstore import default_db_path as default_db_path
from .spanstore import span_tag_texts as span_tag_texts
from .spanstore import spans_to_traces_data as spans_to_traces_data
