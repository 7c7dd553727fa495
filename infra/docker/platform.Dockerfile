# syntax=docker/dockerfile:1.7
# The platform image. One image runs every Python process of the platform:
#   collector        python -m collector --host 0.0.0.0
#   CDC bridge       python -m streaming.cdc.bridge --sink pubsub --metrics-port 9102
#   Dagster          code server (dagster code-server start -m platform_assets.definitions),
#                    webserver, daemon and the K8sRunLauncher's run pods
# and, as the build target "dataflow", the SDK container of the Beam job on Dataflow.
#
# Build from the repository root (the context .dockerignore keeps data, .env and .venv out):
#   docker build -f infra/docker/platform.Dockerfile -t REPO/platform:TAG .
#   docker build -f infra/docker/platform.Dockerfile --target dataflow -t REPO/platform-dataflow:TAG .
# No secret is used or baked in: settings and secrets come from the environment at run time.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# Must equal apache-beam's version in uv.lock (tests/test_infra.py checks it).
ARG BEAM_VERSION=2.77.0

# The Beam SDK harness (boot binary) of the Dataflow target.
FROM apache/beam_python3.11_sdk:${BEAM_VERSION} AS beam

# --- build: the locked environment and the dbt manifest ----------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ARG UV_VERSION=0.13.9
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install --no-cache-dir "uv==${UV_VERSION}"

WORKDIR /app

# Dependencies first (cached until the lock changes), then the project itself.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Only what runs in production: the core, the services and the code location (no dev tooling,
# tests or benchmarks; .dockerignore keeps them out of the context too).
COPY workspace.yaml ./
COPY platform_core ./platform_core
COPY collector ./collector
COPY streaming ./streaming
COPY platform_assets ./platform_assets
COPY dbt_project ./dbt_project
# Editable install (the default): settings.PROJECT_ROOT resolves to /app, where dbt_project is.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

# The dbt manifest the code location loads at import, parsed for the prod target (BigQuery).
# Parsing needs no credentials. The project is a placeholder, never a build argument: the same
# image is promoted from one GCP project to the next, and each run resolves the real one from
# GCP_PROJECT at run time (dbt re-parses when the profile's project changes). tests/infra checks
# that this step names no project.
RUN PATH="/app/.venv/bin:${PATH}" PLATFORM_ENV=gcp GCP_PROJECT=gcp-project-placeholder \
    DAGSTER_HOME=/tmp/dagster-home DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    dagster-dbt project prepare-and-package --file platform_assets/dbt/project.py \
    && test -s dbt_project/target/manifest.json \
    && rm -rf dbt_project/logs dbt_project/target/dbt.log dbt_project/target/*lock /tmp/dagster-home

# Byte-compile the project's own modules too (the site-packages are compiled by uv): the
# containers run with a read-only root filesystem and never write .pyc files.
RUN /app/.venv/bin/python -m compileall -q platform_core collector streaming platform_assets

# --- runtime -----------------------------------------------------------------------------------
# checkov:skip=CKV_DOCKER_2:health is probed by Kubernetes (liveness/readiness/startup probes), not by Docker
# checkov:skip=CKV_DOCKER_7:the base image is pinned by a build argument (a versioned tag), which checkov does not resolve
FROM ${PYTHON_IMAGE} AS platform

LABEL org.opencontainers.image.title="ecommerce-data-platform" \
      org.opencontainers.image.description="Collector, CDC bridge, Dagster code location and Beam job"

RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin app

WORKDIR /app
# Code and environment belong to root and are read-only for the app user. Only dbt's target/
# and logs/ (written by every dbt invocation), the collector's spool and DAGSTER_HOME are
# writable; Kubernetes mounts volumes over the spool and /tmp.
COPY --from=builder /app /app
RUN install -d -o app -g app /app/dbt_project/logs /var/spool/collector /opt/dagster/dagster_home \
    && chown -R app:app /app/dbt_project/target

ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    COLLECTOR_SPOOL_DIR=/var/spool/collector

USER 10001:10001
EXPOSE 8080
CMD ["python", "-m", "collector", "--host", "0.0.0.0"]

# --- Dataflow SDK container (--sdk_container_image, --sdk_location container) -------------------
FROM platform AS dataflow
COPY --from=beam /opt/apache/beam /opt/apache/beam
# The SDK harness's boot program calls pip (to list and install staged packages); uv's
# environment has none, so add the interpreter's bundled one (offline, no registry).
USER 0:0
RUN /app/.venv/bin/python -m ensurepip --default-pip && rm -rf /root/.cache
USER 10001:10001
ENTRYPOINT ["/opt/apache/beam/boot"]
