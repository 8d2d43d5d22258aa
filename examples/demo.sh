#!/usr/bin/env bash
# make demo — the alphawatch daemon and a training job side by side, no Docker needed.
#
# 1. starts `alphawatch run` on a fresh .demo/ folder (ledger, stop file, logs there)
# 2. starts examples/overfit_mlp.py, which over-fits on purpose and writes a checkpoint
#    every 500 steps into .demo/checkpoints/
# 3. the daemon analyzes each checkpoint; when the network's alpha falls below the
#    threshold it writes .demo/signals/alphawatch-stop.json and the training job stops
#    itself (exit 0), naming the reason
# 4. prints where to look, then stops the daemon cleanly (SIGTERM)
#
# Environment knobs: PYTHON_BIN_DIR (default .venv/bin), DEMO_DIR (.demo),
# DEMO_PORT (9841, or a free port if taken), DEMO_THRESHOLD (2.0), DEMO_TIMEOUT (600 s),
# DEMO_EXAMPLE (overfit_mlp.py; train_sac.py runs to its end: no SAC network halts training
# under the default rule), DEMO_ARGS (extra options),
# DEMO_KEEP_RUNNING=1 (keep the daemon up after training stops, until Ctrl-C).
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${PYTHON_BIN_DIR:-.venv/bin}
DEMO=${DEMO_DIR:-.demo}
THRESHOLD=${DEMO_THRESHOLD:-2.0}
TIMEOUT=${DEMO_TIMEOUT:-600}
EXAMPLE=${DEMO_EXAMPLE:-overfit_mlp.py}
CKPT="$DEMO/checkpoints"
STOP="$DEMO/signals/alphawatch-stop.json"
LEDGER="$DEMO/ledger.sqlite"

for tool in "$BIN/alphawatch" "$BIN/python"; do
  [ -x "$tool" ] || { echo "demo: $tool not found; run 'make test-fast' or set PYTHON_BIN_DIR" >&2; exit 2; }
done

# The default metrics port, or any free one when something else already listens there.
PORT=${DEMO_PORT:-$("$BIN/python" - <<'EOF'
import socket
for port in (9841, 0):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(s.getsockname()[1])
    break
EOF
)}
METRICS="http://127.0.0.1:$PORT/metrics"

rm -rf "$DEMO"
mkdir -p "$CKPT" "$(dirname "$STOP")"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
get() { "$BIN/python" -c 'import sys, urllib.request as u; sys.stdout.write(u.urlopen(sys.argv[1], timeout=2).read().decode())' "$1"; }

say "starting the daemon: watching $CKPT, default stop rule (half a model's layers below alpha $THRESHOLD, twice in a row), metrics on $METRICS"
# Full JSON log in daemon.log; on the terminal only the lines a newcomer cares about.
"$BIN/alphawatch" run --watch "$CKPT" --run demo --state "$LEDGER" \
  --metrics-host 127.0.0.1 --metrics-port "$PORT" --stop-file "$STOP" \
  --stop-threshold "$THRESHOLD" --log-format json \
  > >("$BIN/python" -u examples/demo_log.py "$DEMO/daemon.log") 2>&1 &
DAEMON=$!

stop_daemon() {
  if kill -0 "$DAEMON" 2>/dev/null; then
    kill -TERM "$DAEMON" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$DAEMON" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$DAEMON" 2>/dev/null && { echo "demo: daemon did not stop in 10 s; killing it" >&2; kill -KILL "$DAEMON"; }
  fi
  wait "$DAEMON" 2>/dev/null || true
}
trap stop_daemon EXIT

for _ in $(seq 1 150); do  # the daemon starts in a second or two
  get "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$DAEMON" 2>/dev/null || { echo "demo: the daemon exited; see $DEMO/daemon.log" >&2; cat "$DEMO/daemon.log" >&2; exit 1; }
  sleep 0.2
done

say "starting training: examples/$EXAMPLE (it stops itself when the stop file appears)"
set +e
# shellcheck disable=SC2086  # DEMO_ARGS is a list of options on purpose
timeout "$TIMEOUT" "$BIN/python" -u "examples/$EXAMPLE" --checkpoint-dir "$CKPT" --stop-file "$STOP" \
  ${DEMO_ARGS:-} 2>&1 | sed -u 's/^/[training]   /'
TRAIN_RC=${PIPESTATUS[0]}
set -e

say "training exited with code $TRAIN_RC"
if [ "$TRAIN_RC" = 124 ]; then
  echo "it did not stop within ${TIMEOUT}s (DEMO_TIMEOUT); the rule never fired"
fi

say "the stop file: $BIN/alphawatch signal status --stop-file $STOP"
"$BIN/alphawatch" signal status --stop-file "$STOP" || echo "(no stop file: the threshold was not crossed)"

say "metrics (a few of them) from $METRICS"
get "$METRICS" | grep -E '^alphawatch_(alpha|alpha_min|health|checkpoint_step|checkpoints|stop_signal)\{' \
  | grep -v ' 0.0$' || echo "(metrics endpoint did not answer)"

say "where to look"
cat <<EOF
  checkpoints  $CKPT/
  stop file    $STOP
  ledger       $LEDGER   (SQLite: every checkpoint, its status and full result)
  daemon log   $DEMO/daemon.log
  metrics      $METRICS  (only while the daemon runs: 'make run' keeps one running)
  analyze      $BIN/alphawatch analyze $CKPT --output-dir $DEMO/report
EOF

if [ -n "${DEMO_KEEP_RUNNING:-}" ]; then
  say "the daemon keeps running (DEMO_KEEP_RUNNING): browse $METRICS, press Ctrl-C to stop it"
  trap 'echo' INT
  wait "$DAEMON" || true
  trap - INT
fi

say "stopping the daemon"
stop_daemon
trap - EXIT
if [ "$TRAIN_RC" = 0 ] && [ -f "$STOP" ]; then
  echo "demo finished: training halted itself on the stop signal"
  exit 0
fi
exit 1
