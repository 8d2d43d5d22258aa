#!/usr/bin/env bash
# Make sure a Docker engine answers; start one when none does and this machine can.
#
#   deploy/image/engine.sh        exit 0: `docker info` answers; exit 1: why not, on stderr
#
# Starting one needs root and Debian's docker.io (dockerd, containerd, runc): dockerd then runs
# in the background with its default storage (/var/lib/docker, so images and build cache stay
# between runs), logging to $CACHE/dockerd.log, its pid in $CACHE/dockerd.pid. Nothing is
# enabled at boot. Stop it with `kill "$(cat ~/.cache/alphawatch/dockerd.pid)"`.
set -euo pipefail

CACHE=${ALPHAWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alphawatch}

if ! command -v docker >/dev/null; then
    echo "engine.sh: no docker CLI on PATH (Debian: apt-get install docker.io)" >&2
    exit 1
fi
docker info >/dev/null 2>&1 && exit 0

if ! command -v dockerd >/dev/null; then
    echo "engine.sh: no Docker engine answers and dockerd is not installed (Debian: apt-get install docker.io)" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "engine.sh: no Docker engine answers, and starting dockerd needs root" >&2
    exit 1
fi

mkdir -p "$CACHE"
setsid dockerd >"$CACHE/dockerd.log" 2>&1 </dev/null &
echo $! >"$CACHE/dockerd.pid"
for _ in $(seq 120); do
    if docker info >/dev/null 2>&1; then
        echo "engine.sh: started dockerd (pid $(cat "$CACHE/dockerd.pid"), log $CACHE/dockerd.log)"
        exit 0
    fi
    if ! kill -0 "$(cat "$CACHE/dockerd.pid")" 2>/dev/null; then
        break
    fi
    sleep 0.5
done
echo "engine.sh: dockerd did not come up; last lines of $CACHE/dockerd.log:" >&2
tail -15 "$CACHE/dockerd.log" >&2
exit 1
