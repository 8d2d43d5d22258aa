# CI only: Prometheus and Alertmanager images built from Debian's packages, standing in for
# prom/prometheus and prom/alertmanager where Docker Hub can't be reached
# (tests/container/compose.ci.yml). The build context is the tools folder's unpacked packages
# (deploy/tools/install.sh: .tools/root); the base is the one the alphawatch image was built on.
ARG BASE=python:3.11.11-slim-bookworm

FROM ${BASE} AS prometheus
COPY usr/bin/prometheus usr/bin/promtool /bin/
COPY usr/share/prometheus/web /usr/share/prometheus/web
# the upstream image's user (nobody) and data folder, so a named volume starts writable
RUN mkdir -p /prometheus && chown 65534:65534 /prometheus
USER 65534:65534
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]

FROM ${BASE} AS alertmanager
COPY usr/bin/prometheus-alertmanager /bin/alertmanager
COPY usr/bin/amtool /bin/amtool
COPY usr/share/prometheus/alertmanager /usr/share/prometheus/alertmanager
RUN mkdir -p /alertmanager && chown 65534:65534 /alertmanager
USER 65534:65534
WORKDIR /alertmanager
EXPOSE 9093
ENTRYPOINT ["/bin/alertmanager"]
