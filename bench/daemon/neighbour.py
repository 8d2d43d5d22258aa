"""Target 9: with the default worker settings (1 thread, nice 10), a CPU training loop next to
the daemon loses <= 10% of its steps per second while the daemon analyzes a SAC-sized
checkpoint every 30 s.

The training loop (a 3-layer MLP, torch's default threads) runs throughout and reports its
steps every 5 s. Windows alternate: without the daemon, with it (checkpoints every 30 s,
measured once its worker is warm), without it again; the loss compares the middle window
with the mean of the two around it, so a drift in the machine's load cancels out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
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
steps, mark = 0, time.monotonic()
while True:
    opt.zero_grad(); torch.nn.functional.cross_entropy(model(x), y).backward(); opt.step()
    steps += 1
    now = time.monotonic()
    if now - mark >= 5.0:
        print(json.dumps({"t": time.time(), "steps_per_s": steps / (now - mark)}), flush=True)
        steps, mark = 0, now
"""


class Trainer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", TRAINER], stdout=subprocess.PIPE, text=True)
        self.samples: list[tuple[float, float]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            item = json.loads(line)
            self.samples.append((item["t"], item["steps_per_s"]))

    def rate(self, since: float, until: float) -> float:
        inside = [r for t, r in self.samples if since + 5 <= t <= until]
        return sum(inside) / len(inside) if inside else float("nan")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run(base: Path, window: float = 90.0, every: float = 30.0) -> dict[str, Any]:
    watch = base / "ckpts"
    watch.mkdir(parents=True)
    blobs = [sac_checkpoint_bytes(step=(i + 1) * 1000, seed=i) for i in range(int(window // every) + 1)]
    trainer = Trainer()
    try:
        time.sleep(10)  # its own warm-up
        a0 = time.time()
        time.sleep(window)
        a1 = time.time()
        d = Daemon(base, {"runs": [{"watch": str(watch), "name": "sac"}]})
        try:
            d.wait_event("worker_ready", 180)
            b0 = time.time()
            analyzed = 0
            for i, blob in enumerate(blobs):
                if time.time() - b0 >= window:
                    break
                place(watch, f"step_{(i + 1) * 1000}.pt", blob)
                analyzed += 1
                time.sleep(max(0.0, b0 + (i + 1) * every - time.time()))
            b1 = time.time()
            d.wait_event("checkpoint_analyzed", 120, count=analyzed)
        finally:
            d.stop()
        c0 = time.time()
        time.sleep(window)
        c1 = time.time()
    finally:
        trainer.stop()
    without = (trainer.rate(a0, a1) + trainer.rate(c0, c1)) / 2
    with_daemon = trainer.rate(b0, b1)
    loss = 100 * (1 - with_daemon / without)
    return {"steps_per_s_without": without, "steps_per_s_with": with_daemon, "loss_pct": loss,
            "checkpoints": analyzed, "window_s": window, "met": loss <= 10.0}
