# Baton's one image: `baton worker --queues ...`, `baton api`, `baton codec-server`,
# `baton db upgrade` and `baton compliance install` are its commands (the Helm chart picks one
# per Deployment or Job). Both stages use the same pinned base.
#
# Kubernetes probes the HTTP endpoints (`/healthz`, `/readyz`): no HEALTHCHECK here.
# checkov:skip=CKV_DOCKER_2: probes are Kubernetes', per command (a worker's port differs from the API's)

# -- build: the project and its dependencies into a virtual environment, from wheels only ------
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/baton
COPY pyproject.toml README.md ./
COPY baton ./baton
COPY activities ./activities
COPY api ./api
COPY examples ./examples
COPY starter ./starter
COPY workers ./workers
COPY workflows ./workflows
# Not editable: the image holds an installed wheel, byte-compiled (the root file system is
# read-only at run time, and the workflow sandbox re-imports modules on every run).
RUN /opt/baton/bin/pip install . \
    && /opt/baton/bin/python -m compileall -q /opt/baton/lib

# -- run: the environment alone, as an unprivileged user --------------------------------------
FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="baton" \
      org.opencontainers.image.description="Durable AI-agent processes and orchestrations on Temporal" \
      org.opencontainers.image.source="https://github.com/baton-platform/baton"
RUN groupadd --system --gid 10001 baton \
    && useradd --system --uid 10001 --gid baton --no-create-home --home-dir /var/lib/baton \
       --shell /usr/sbin/nologin baton \
    && install -d -o baton -g baton -m 0750 /var/lib/baton
COPY --from=build /opt/baton /opt/baton
ENV PATH=/opt/baton/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BATON_DATA_DIR=/var/lib/baton \
    BATON_LOG_FORMAT=json
WORKDIR /var/lib/baton
USER 10001:10001
ENTRYPOINT ["baton"]
CMD ["worker"]
