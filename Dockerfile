# alphawatch daemon image (default target) and the example trainer (target `trainer`).
#
#   docker build -t alphawatch .                          # the daemon
#   docker build -t alphawatch-trainer --target trainer . # examples/train_sac.py
#   make image                                            # both, tagged <version> and latest
#
# Build arguments (the defaults are the public sources; nothing here is machine-specific):
#   PYTHON_IMAGE     base image of every stage           python:3.11.11-slim-bookworm
#   TORCH_SPEC       the torch requirement               torch==2.13.0
#   TORCH_INDEX_URL  where torch (and its own deps) come from: the CPU-only index, so the
#                    image never gets the multi-GB CUDA build
#   VERSION          the image's version label
# Wheels placed in deploy/image/wheels/ are preferred over the index (pip --find-links); the
# folder is empty in the repository. `make image` puts the CPU torch wheel there, and uses a
# base image made from Debian packages, on machines that reach neither Docker Hub nor the CPU
# index (deploy/image/build.sh).
#
# Layers are ordered by how often they change: torch, then the dependencies (pyproject.toml),
# then alphawatch itself, so a code change rebuilds only the small `app` stage and the last
# layers of the final stages.
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
# requirements: the declared dependencies out of pyproject.toml. The deps stage copies only
# this list, so an edit elsewhere in pyproject.toml (test extras, tool settings) keeps the
# dependency layer cached.
FROM ${PYTHON_IMAGE} AS requirements
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; deps = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']; open('/requirements.txt', 'w').write('\n'.join(deps) + '\n')"

# ---------------------------------------------------------------------------------------
# deps: a virtual environment with the CPU build of torch and alphawatch's dependencies.
# Every dependency ships wheels for this platform, so no compiler is needed.
FROM ${PYTHON_IMAGE} AS deps

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, from the CPU index, so that nothing later pulls a multi-GB CUDA build. Its pin is
# the TORCH_SPEC argument, which hadolint can't see (DL3013).
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY deploy/image/wheels/ /tmp/wheels/
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" --find-links /tmp/wheels "$TORCH_SPEC" \
    && python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"

# The declared dependencies only (not the package): this layer survives code changes.
COPY --from=requirements /requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --find-links /tmp/wheels -r /tmp/requirements.txt \
    && python -c "import site; open(site.getsitepackages()[0] + '/alphawatch-app.pth', 'w').write('/opt/app\n')"

# ---------------------------------------------------------------------------------------
# app: alphawatch itself, outside the venv (/opt/app, found through the .pth file above), so
# that the big venv layer of the final stages does not change when the code does.
FROM deps AS app
WORKDIR /src
COPY pyproject.toml README.md ./
COPY daemon ./daemon
RUN pip install --no-cache-dir --no-deps --target /opt/app . \
    && PYTHONPATH=/opt/app python -c "import alphawatch.cli, alphawatch.service.daemon, alphawatch.analysis.engine; print('alphawatch', alphawatch.__version__)"

# examples: what the example trainer needs on top of the venv (numpy is already there).
FROM deps AS examples
RUN pip install --no-cache-dir --no-deps --target /opt/examples \
        "gymnasium==1.4.0" "cloudpickle==3.1.3" "farama-notifications==0.0.6" \
    && PYTHONPATH=/opt/examples python -c "import gymnasium; gymnasium.make('Pendulum-v1')"

# venv: the deps venv without what is never used at run time (deploy/image/slim-venv.sh).
FROM deps AS venv
COPY deploy/image/slim-venv.sh /tmp/slim-venv.sh
RUN sh /tmp/slim-venv.sh /opt/venv

# ---------------------------------------------------------------------------------------
# runtime: what the daemon and the trainer share (the same big layer, stored once).
FROM ${PYTHON_IMAGE} AS runtime

# A fixed uid/gid so volume ownership is predictable (chown 10001 on the host side).
# /checkpoints, /signals and /state belong to it: a named volume mounted there starts with
# this owner.
RUN groupadd --system --gid 10001 alphawatch \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin alphawatch \
    && mkdir -p /checkpoints /signals /state /etc/alphawatch \
    && chown 10001:10001 /checkpoints /signals /state

COPY --from=venv /opt/venv /opt/venv

ENV PATH=/opt/app/bin:/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib

# ---------------------------------------------------------------------------------------
# trainer: examples/train_sac.py writing checkpoints to /checkpoints and polling the stop
# file in /signals (used by deploy/docker-compose.yml).
FROM runtime AS trainer
COPY --from=examples /opt/examples /opt/examples
COPY --from=app /opt/app /opt/app
COPY examples /app/examples
ENV PYTHONPATH=/opt/examples
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["python", "examples/train_sac.py"]
CMD ["--checkpoint-dir", "/checkpoints", "--stop-file", "/signals/alphawatch-stop.json"]

# ---------------------------------------------------------------------------------------
# alphawatch: the daemon (the default target, so it must stay the last stage).
FROM runtime AS alphawatch

COPY config/examples/docker.yaml /etc/alphawatch/config.yaml
COPY --from=app /opt/app /opt/app

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="alphawatch" \
      org.opencontainers.image.description="Watches training checkpoints and judges their health without test data (WeightWatcher alpha, stable rank, dead neurons); Prometheus metrics and a stop signal." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# Listen on every interface inside the container whatever the daemon's own default is; the
# published port decides who can reach it (compose publishes it on 127.0.0.1 only).
ENV ALPHAWATCH_METRICS_HOST=0.0.0.0

USER 10001:10001
WORKDIR /state
VOLUME ["/state", "/signals"]
EXPOSE 9841

# stdlib only: urlopen raises (exit 1) on a refused connection, a timeout or a non-2xx status.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9841/healthz', timeout=4)"]

ENTRYPOINT ["alphawatch"]
CMD ["run", "--config", "/etc/alphawatch/config.yaml"]
