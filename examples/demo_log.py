"""Used by demo.sh: keep the daemon's full JSON log in a file, show the few lines that matter.

    alphawatch run --log-format json ... | python examples/demo_log.py .demo/daemon.log
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def short(event: dict) -> str | None:
    """One readable line for the events a newcomer watches; None to keep it in the file only."""
    name = Path(str(event.get("path", ""))).name
    kind = event.get("event")
    if kind == "checkpoint_analyzed":
        alphas = ", ".join(
            f"{net}={alpha:.2f}" if isinstance(alpha, (int, float)) else f"{net}=n/a"
            for net, alpha in (event.get("alpha") or {}).items()
        )
        return f"analyzed {name}: alpha {alphas} ({event.get('duration_seconds')} s)"
    if kind == "checkpoint_failed":
        return f"could not analyze {name}: {event.get('reason')}: {event.get('message')}"
    if kind in ("stop_written", "stop_file_exists"):
        verb = "wrote the stop file" if kind == "stop_written" else "stop file already there"
        return (f"{verb} {event.get('path')}: {event.get('network')} {event.get('metric')} "
                f"{event.get('value'):.3f} (threshold {event.get('threshold')}, rule {event.get('rule')}) "
                f"at {Path(str(event.get('checkpoint'))).name}")
    if kind == "worker_ready":
        return "analysis worker ready (torch and WeightWatcher loaded once)"
    if event.get("level") in ("warning", "error", "critical"):
        fields = {k: v for k, v in event.items() if k not in ("event", "level", "logger", "timestamp")}
        return f"{event.get('level')}: {kind} {fields}"
    return None


def main() -> int:
    with open(sys.argv[1], "a", encoding="utf-8") as log:
        for line in sys.stdin:
            log.write(line)
            log.flush()
            try:
                event = json.loads(line)
                text = short(event) if isinstance(event, dict) else line.rstrip()
            except (ValueError, TypeError):
                text = line.rstrip()
            if text:
                print(f"[alphawatch] {text}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
