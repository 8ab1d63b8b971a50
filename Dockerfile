# The `levqor` image: one image for every role (api, worker, scheduler, migrate); the command picks it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LEVQOR_VAR_DIR=/var/lib/levqor \
    LEVQOR_HOST=0.0.0.0 \
    LEVQOR_PORT=8000

WORKDIR /app
RUN useradd --system --uid 10001 --home-dir /var/lib/levqor levqor \
    && mkdir -p /var/lib/levqor && chown levqor /var/lib/levqor

# Pinned dependencies first so code changes reuse this layer.
COPY requirements requirements
RUN pip install -r requirements/base.lock

# Editable install: Alembic migrations and policies/policy.json are read from /app.
COPY pyproject.toml README.md ./
COPY levqor levqor
COPY agents agents
COPY tools tools
COPY memory memory
COPY api api
COPY policies policies
COPY workers workers
COPY docs docs
RUN pip install --no-deps -e . \
    && python -m compileall -q levqor agents tools memory api workers

USER levqor
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('LEVQOR_PORT', '8000'), timeout=4)"
CMD ["levqor", "up"]
