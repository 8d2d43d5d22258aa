"""Target 9: with the default worker settings (1 thread, nice 10), a CPU training loop next to
the daemon loses <= 10% of its steps per second while the daemon analyzes a SAC-sized
checkpoint every 30 s.

How, on a machine whose other load comes and goes: the training loop (a 3-layer MLP,
torch's default threads) reports its steps every 0.25 s for the whole run, with the daemon
running throughout. A checkpoint is renamed in every 30 s; the daemon's log says when each
analysis ran. Within each 30 s cycle, the loop's rate while the daemon was analyzing is
compared with its rate in the rest of the same cycle, so load that changes over minutes
cancels out, and the loss over the cycle is

    busy fraction x (1 - rate while analyzing / rate otherwise)

averaged over the cycles. The daemon's cost between analyses (its idle cost) is target 7.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from common import Daemon, place, sac_checkpoint_bytes

TRAINER = r"""
import json, sys, time, torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                            torch.nn.ReLU(), torch.nn.Linear(512, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(256, 256), torch.randint(0, 10, (256,))
steps, mark = 0, time.time()
while True:
    opt.zero_grad(); torch.nn.functional.cross_entropy(model(x), y).backward(); opt.step()
    steps += 1
    now = time.time()
    if now - mark >= 0.25:
        print(json.dumps({"start": mark, "end": now, "steps": steps}), flush=True)
        steps, mark = 0, now
"""
MARGIN = 0.5  # seconds around an analysis counted neither in nor out (the worker waking, the log)


class Trainer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", TRAINER], stdout=subprocess.PIPE, text=True)
        self.buckets: list[tuple[float, float, int]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            item = json.loads(line)
            self.buckets.append((item["start"], item["end"], item["steps"]))

    def rate(self, keep: Any) -> float:
        chosen = [(end - start, steps) for start, end, steps in list(self.buckets) if keep(start, end)]
        seconds = sum(s for s, _ in chosen)
        return sum(n for _, n in chosen) / seconds if seconds else float("nan")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def run(base: Path, cycles: int = 10, every: float = 30.0) -> dict[str, Any]:
    watch = base / "ckpts"
    watch.mkdir(parents=True)
    blobs = [sac_checkpoint_bytes(step=(i + 1) * 1000, seed=i) for i in range(cycles)]
    trainer = Trainer()
    d = Daemon(base, {"runs": [{"watch": str(watch), "name": "sac"}]})
    try:
        d.wait_event("worker_ready", 180)
        time.sleep(5)
        starts = []
        for i, blob in enumerate(blobs):
            starts.append(place(watch, f"step_{(i + 1) * 1000}.pt", blob))
            time.sleep(max(0.0, starts[0] + (i + 1) * every - time.time()))
        d.wait_event("checkpoint_analyzed", 120, count=cycles)
        completed, analyzed = d.events("checkpoint_complete"), d.events("checkpoint_analyzed")
        busy = [(_ts(c), _ts(a)) for c, a in zip(completed, analyzed, strict=True)]
    finally:
        d.stop()
        trainer.stop()
    losses, ratios, fractions = [], [], []
    for start, (b0, b1) in zip(starts, busy, strict=True):
        end = start + every

        def inside(s: float, e: float, b0: float = b0, b1: float = b1) -> bool:
            return s < b1 and e > b0

        def outside(s: float, e: float, start: float = start, end: float = end, b0: float = b0,
                    b1: float = b1) -> bool:
            return s >= start and e <= end and (e < b0 - MARGIN or s > b1 + MARGIN)

        rate_in, rate_out = trainer.rate(inside), trainer.rate(outside)
        fraction = (b1 - b0) / every
        ratios.append(rate_in / rate_out)
        fractions.append(fraction)
        losses.append(100 * fraction * (1 - rate_in / rate_out))
    return {"loss_pct": statistics.mean(losses), "rate_ratio_while_analyzing": statistics.median(ratios),
            "busy_fraction": statistics.mean(fractions), "steps_per_s": trainer.rate(lambda s, e: True),
            "checkpoints": cycles, "met": statistics.mean(losses) <= 10.0}
