"""Background jobs: work queued by a request and run off the request thread.

Each job is traced as its own trace (a new root span), linked to the span of the request
that queued it: the request's trace stays short, and the job's trace says where it came
from. The worker threads start on first use in each process, so that gunicorn's
``--preload`` (import in the master, then fork) gives every worker its own.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from opentelemetry import context, trace
from opentelemetry.trace import Link, Status, StatusCode

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)


class JobRunner:
    """Run jobs on a small thread pool, each traced as a root span linked to its caller.

    Args:
        max_workers: threads per process.
    """

    def __init__(self, max_workers: int = 2) -> None:
        self.max_workers = max_workers
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0
        self._pending: set[Future[None]] = set()

    def submit(self, name: str, func: Callable[[], None]) -> None:
        """Queue ``func``; its span is called ``name`` and links to the current span."""
        caller = trace.get_current_span().get_span_context()
        links = [Link(caller, {"job.link": "queued by"})] if caller.is_valid else []
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix="job")
                self._pid = os.getpid()
                self._pending = set()
            future = self._executor.submit(self._run, name, links, func)
            self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def _run(self, name: str, links: list[Link], func: Callable[[], None]) -> None:
        # An empty context makes the job's span a root: a new trace, not a child.
        with tracer.start_as_current_span(
            name, context=context.Context(), links=links, record_exception=False
        ) as span:
            try:
                func()
            except Exception as exc:
                logger.exception("job %s failed", name)
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))

    def wait(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued job has finished; return whether they did in time."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            try:
                future.result(timeout=timeout_s)
            except FutureTimeout:
                return False
        return True

    def shutdown(self) -> None:
        """Finish the queued jobs and stop the threads."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
