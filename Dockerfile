# syntax=docker/dockerfile:1
# The cvtrace app image: the demo app, its preview service and the viewer, served by
# gunicorn with jemalloc preloaded. Build context: the repository root.
#
#   docker build -t cvtrace-app:0.1.0 .
#   docker run -p 8000:8000 -e SECRET_KEY=... cvtrace-app:0.1.0

# --- build: install the distribution and gunicorn into a virtualenv ---------------
FROM python:3.12.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY cvtrace/ cvtrace/
RUN pip install ".[viewer,demo]" "gunicorn==27.0.1"

# --- runtime: no compilers, no pip cache, no root ------------------------------------
FROM python:3.12.11-slim-bookworm AS runtime

# jemalloc returns freed memory to the OS and fragments less than glibc malloc under
# gunicorn's long-lived workers. The symlink gives LD_PRELOAD one path on every
# architecture (Debian puts the library under /usr/lib/<triplet>/).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libjemalloc2 \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s "$(dpkg -L libjemalloc2 | grep '/libjemalloc\.so\.2$')" /usr/local/lib/libjemalloc.so.2 \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /app /data \
    && chown app:app /data

COPY --from=build /opt/venv /opt/venv
COPY deploy/gunicorn.conf.py /app/gunicorn.conf.py

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 \
    PORT=8000

# Fail the build if jemalloc is not actually loaded (a wrong path only warns at run time).
RUN python -c "import ctypes; ctypes.CDLL(None).mallctl"

WORKDIR /app
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8000

# /up is the app's health check; cvtrace makes no span for it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/up' % os.environ.get('PORT', '8000'), timeout=2)"]

CMD ["gunicorn", "--config=/app/gunicorn.conf.py", "cvtrace.demo:create_app()"]
