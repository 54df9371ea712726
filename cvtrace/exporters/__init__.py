"""Exporters, one module per destination, and the factory that builds them by name."""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry.sdk.trace.export import SpanExporter

from ..config import Settings


def create_exporters(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> list[SpanExporter]:
    """Build one exporter per name in ``settings.exporters``, in order.

    Raises:
        CvtraceConfigError: an exporter's own settings are missing or wrong.
    """
    env = os.environ if environ is None else environ
    exporters: list[SpanExporter] = []
    for name in settings.exporters:
        if name == "otlp":
            from .otlp import create_otlp_exporter

            exporters.append(create_otlp_exporter(env))
        elif name == "jaeger":
            from .jaeger import create_jaeger_exporter

            exporters.append(create_jaeger_exporter(settings.jaeger_endpoint))
        elif name == "newrelic":
            from .newrelic import create_newrelic_exporter

            exporters.append(create_newrelic_exporter(env))
        elif name == "local":
            from ..store import DEFAULT_TAG_KEYS
            from .local import LocalSpanExporter

            exporters.append(
                LocalSpanExporter(
                    settings.local_db,
                    max_spans=settings.local_max_spans,
                    max_age_s=settings.local_max_age_hours * 3600.0,
                    tag_keys=DEFAULT_TAG_KEYS.union(settings.store_tag_keys),
                )
            )
        elif name == "console":
            from .console import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
    return exporters
