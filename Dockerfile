# syntax=docker/dockerfile:1
#
# alphawatch daemon image (default target) and the example trainer (target `trainer`).
#
#   docker build -t alphawatch .                          # the daemon
#   docker build -t alphawatch-trainer --target trainer . # examples/train_sac.py
#
# Layout inside the daemon image:
#   /etc/alphawatch/config.yaml   config (config/examples/docker.yaml); mount your own over it
#   /checkpoints                  watched folder: mount it read-only
#   /state                        the ledger (writable volume)
#   /signals                      the stop-signal file (writable volume)
# Run it with a read-only root filesystem; the only other write goes to /tmp (matplotlib's
# cache), so give it a tmpfs there.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---------------------------------------------------------------------------------------
# build: a virtual environment with alphawatch and the CPU build of torch. Every dependency
# ships wheels for this platform, so no compiler is needed here either.
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, from the CPU index, so that nothing later pulls a multi-GB CUDA build.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /src
COPY pyproject.toml README.md ./
COPY daemon ./daemon
RUN pip install --no-cache-dir . \
    && python -c "import alphawatch, torch; print('alphawatch', alphawatch.__version__, 'torch', torch.__version__)"

# build-examples: the same environment plus what the example trainer needs.
FROM build AS build-examples
RUN pip install --no-cache-dir "gymnasium==1.4.0"

# ---------------------------------------------------------------------------------------
# trainer: examples/train_sac.py writing checkpoints to /checkpoints and polling the stop
# file in /signals (used by deploy/docker-compose.yml).
FROM ${PYTHON_IMAGE} AS trainer

RUN groupadd --system --gid 10001 alphawatch \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin alphawatch \
    && mkdir -p /checkpoints /signals \
    && chown 10001:10001 /checkpoints /signals

COPY --from=build-examples /opt/venv /opt/venv
COPY examples /app/examples
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["python", "examples/train_sac.py"]
CMD ["--checkpoint-dir", "/checkpoints", "--stop-file", "/signals/alphawatch-stop.json"]

# ---------------------------------------------------------------------------------------
# alphawatch: the daemon (the default target, so it must stay the last stage).
FROM ${PYTHON_IMAGE} AS alphawatch

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="alphawatch" \
      org.opencontainers.image.description="Watches training checkpoints and judges their health without test data (WeightWatcher alpha, stable rank, dead neurons); Prometheus metrics and a stop signal." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.11-slim-bookworm"

# A fixed uid/gid so volume ownership is predictable (chown 10001 on the host side).
# /signals and /state belong to it: a named volume mounted there starts with this owner.
RUN groupadd --system --gid 10001 alphawatch \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin alphawatch \
    && mkdir -p /checkpoints /signals /state /etc/alphawatch \
    && chown 10001:10001 /signals /state

COPY --from=build /opt/venv /opt/venv
COPY config/examples/docker.yaml /etc/alphawatch/config.yaml

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib

USER 10001:10001
WORKDIR /state
VOLUME ["/state", "/signals"]
EXPOSE 9841

# stdlib only: urlopen raises (exit 1) on a refused connection, a timeout or a non-2xx status.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9841/healthz', timeout=4)"]

ENTRYPOINT ["alphawatch"]
CMD ["run", "--config", "/etc/alphawatch/config.yaml"]
