"""Gunicorn settings for the cvtrace app image (demo, preview).

Loaded with ``gunicorn --config=/app/gunicorn.conf.py 'cvtrace.demo:create_app()'``.
Each setting can still be overridden on the command line or in ``GUNICORN_CMD_ARGS``.

cvtrace needs no hook here: it is fork-safe, so with ``preload_app`` the master builds
the app once and every worker starts its own span exporter after the fork, and each
worker flushes its spans when gunicorn stops it with SIGTERM.
"""

from __future__ import annotations

import os

# PORT is also what the image's HEALTHCHECK probes.
bind = [f"0.0.0.0:{os.environ.get('PORT', '8000')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Import the app once in the master: faster worker start and shared memory pages.
preload_app = True
# Worker heartbeat files on tmpfs: an overlay filesystem can stall them.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
timeout = 30
# Time a worker has, after SIGTERM, to finish requests and flush spans. Compose's
# stop_grace_period (30 s) must stay above it.
graceful_timeout = 20
# Access logs would repeat what the traces hold; errors still go to stderr.
accesslog = None
errorlog = "-"
