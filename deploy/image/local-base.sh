#!/usr/bin/env bash
# Make a local stand-in for the python:3.11-slim base image from Debian's packages, for a
# machine that cannot pull from Docker Hub but reaches a Debian mirror (and PyPI, maybe only
# through a TLS-inspecting proxy). Needs root (debootstrap chroots) and a running engine.
#
#   deploy/image/local-base.sh [IMAGE_NAME]      default: alphawatch-local-base:bookworm
#
# What the image holds: Debian bookworm minbase + python3 (3.11), python3-venv and
# ca-certificates, a `python` link, this machine's CA bundle (so that pip inside a build
# trusts the proxy's certificate) and a pip.conf pointing at it. Both are machine-specific,
# which is why this image is only ever made here and never named in the Dockerfile's defaults.
# Made once per machine: the image stays in the engine's store and is reused.
set -euo pipefail

IMAGE=${1:-alphawatch-local-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "local base $IMAGE already present"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "local-base.sh: debootstrap needs root; run it as root or pull the default base image" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    echo "local-base.sh: installing debootstrap (Debian package; a tool, no service)"
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

ROOT=$(mktemp -d /var/tmp/alphawatch-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "local-base.sh: debootstrap bookworm into $ROOT (about 2 minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || { tail -20 "$ROOT.log" >&2; exit 1; }
rm -f "$ROOT.log"

ln -sf python3 "$ROOT/usr/bin/python"
cp "$CA_BUNDLE" "$ROOT/etc/ssl/certs/ca-certificates.crt"
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$ROOT/etc/pip.conf"
# what a slim image leaves out too: package lists and caches, docs, man pages, locales
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
       "$ROOT"/usr/share/locale/* "$ROOT"/var/log/*.log

tar -C "$ROOT" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "alphawatch local base: debootstrap bookworm minbase + python3, python3-venv, ca-certificates" \
    - "$IMAGE" >/dev/null
echo "local-base.sh: made $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
