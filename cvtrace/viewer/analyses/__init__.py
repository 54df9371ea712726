"""Analyses of traces: pure functions of stored spans, served as JSON by the viewer.

Each module is one analysis; they share the trace as columns (:mod:`.spans`):

- :mod:`.critical_path`: which span was doing the work at each moment of the root;
- :mod:`.self_time` and :mod:`.stats`: time of a span not covered by its children,
  and per-operation statistics (an N+1 is one row with its count);
- :mod:`.paths`: spans merged by path (the flame graph), and :mod:`.compare`: two
  traces merged on one tree;
- :mod:`.shape`: what traces of "the same shape" share;
- :mod:`.search`: the spans of a trace matching a search;
- :mod:`.calls`: entry spans and cross-service calls, from which :mod:`.dependencies`
  (the service map) and :mod:`.red` (rate, errors, duration per service) are made.

``cvtrace.viewer.analyses_api`` serves them under ``/api``; none of them needs a server.
"""

from __future__ import annotations
