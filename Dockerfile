# The BFF's image. `docker build -t customer-account-bff .` builds `runtime` (the last stage, the default);
# `--target dev` is the same image plus the Shopify stand-in (`python -m mock_shopify`) for compose's dev profile.
# No `# syntax=` line: it would pull an unpinned frontend image; the builder's own one parses this file.

# Pinned by digest: the tag says what it is, the digest decides what is pulled. This is the multi-platform index
# of python:3.12-slim (Python 3.12.13, Debian trixie) as docker-library/repo-info records it. To move it, take
# the new digest from `docker buildx imagetools inspect python:3.12-slim` (or repo-info). Without a registry,
# pass a base built locally: `--build-arg PYTHON_IMAGE=...` (docs/operations.md -> Docker image). The default
# sits in FROM, not in ARG, so an empty value (compose passes one for an unset variable) means the default too.
ARG PYTHON_IMAGE

FROM ${PYTHON_IMAGE:-python:3.12-slim@sha256:646fb0bca3dd3ea1bcc6feb72c17ed16eed6e10cffc732fcc1478bd3e7f02d7b} AS base
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# --- build: a venv with the locked dependencies and the package; the sources stay in this stage ---
FROM base AS build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Where pip looks (unset: PyPI). A mirror, or a machine's own indexes, come in as build args; the lock's hashes
# decide what is installed wherever it comes from.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_TRUSTED_HOST
# The lock alone first, so a change to app/ reuses this layer. `make lock` refreshes it.
COPY requirements/runtime.lock ./
RUN pip install --require-hashes -r runtime.lock
COPY pyproject.toml README.md ./
COPY app ./app
# A non-editable install builds a wheel and installs it (compiled .pyc included), so nothing here runs from /src.
# The wheel holds app/ only: the Shopify stand-in never reaches the runtime image. Its dependencies and its build
# backend (setuptools) are installed already, from the lock, so nothing unhashed is downloaded here.
RUN pip install --no-deps --no-build-isolation .

# --- what runs: the slim base, the venv, an unprivileged user ---
FROM base AS runtime-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    BFF_HOST=0.0.0.0 \
    BFF_PORT=8000 \
    BFF_WORKERS=1
RUN groupadd --system --gid 10001 bff \
    && useradd --system --uid 10001 --gid bff --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin bff
# Settings come from the environment; an empty working directory means no stray `.env` is read.
WORKDIR /srv
# Numeric, so orchestrators can verify runAsNonRoot; the venv stays root-owned, i.e. read-only for the app.
USER 10001:10001
EXPOSE 8000
# Slim images have no curl. urlopen raises (exit 1) on a refused connection, a timeout or a non-2xx answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('BFF_PORT', '8000') + '/healthz', timeout=3)"]
# uvicorn drains in-flight requests on SIGTERM (up to 20 s; give `docker stop` / compose a longer grace period).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "app", "serve"]

# The runtime image plus the stand-in's source and the demo storefront (their imports are all runtime
# dependencies already): compose's dev profile runs both from it.
FROM runtime-base AS dev
COPY --from=build /opt/venv /opt/venv
COPY mock_shopify /opt/standin/mock_shopify
COPY devkit/__init__.py devkit/demo_server.py /opt/standin/devkit/
COPY demo /opt/standin/demo
ENV PYTHONPATH=/opt/standin

FROM runtime-base AS runtime
COPY --from=build /opt/venv /opt/venv
