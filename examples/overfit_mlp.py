"""Overfit a wide MLP on purpose, within minutes on a laptop CPU, so the stop signal fires.

The recipe is the one WeightWatcher's authors tie to over-training: a large learning rate
with small batches, no regularisation, and far more parameters (0.8 M) than samples. The
data set is small and synthetic (no download): 3,000 samples of 512 features whose
variances fall off as a power law, j ** -1.5 (as pixels or embeddings do; with white
noise the first layer's spectrum would stay random), and labels that carry nothing
(``--label-noise 1.0``), so the only way to fit them is to memorise every sample.
Training accuracy climbs while held-out accuracy stays at chance (1/7), and as the weights
absorb the data's power-law spectrum the hidden layers' WeightWatcher alpha falls from ~10
at the start, through the healthy 2-6 band, below 2: over-fit. Measured with
``alphawatch analyze`` on the default settings (seed 0), mean alpha per checkpoint every
500 steps: 9.79, 9.22, 4.79, 3.50, 3.06, 2.80, 2.51, 2.34, 2.19, 2.08, 1.99 (step 5500), 1.92.

    alphawatch run --watch checkpoints --stop-threshold 2.0 &
    python examples/overfit_mlp.py --checkpoint-dir checkpoints

Checkpoints (``generation_<n>.pt`` every ``--save-every`` optimizer steps, plus
``best_model.pt`` at the best held-out accuracy) hold one network:
``{"model": state_dict, "optimizer": ..., "step": n, "epoch": e, "train_accuracy": ..,
"val_accuracy": ..}``; each is written to a temp file and renamed into place. The stop
signal is polled every step; when it appears the script prints why and exits 0.

The output head (512 -> ``--classes`` = 7) has fewer than 8 eigenvalues, too few for a
power-law fit, so alphawatch (like WeightWatcher) skips it: the network's alpha is the
mean over the ``--depth`` hidden layers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import (  # noqa: E402
    add_common_arguments,
    check_positive,
    limit_threads,
    save_atomic,
    stop_requested,
)
from alphawatch.client import StopSignal  # noqa: E402


def make_data(args: argparse.Namespace) -> tuple[torch.Tensor, ...]:
    """Power-law-correlated features; labels from a linear teacher, a fraction replaced at random."""
    gen = torch.Generator().manual_seed(args.seed)
    n = args.samples + args.val_samples
    scale = torch.arange(1, args.features + 1, dtype=torch.float32) ** (-args.feature_decay / 2)
    x = torch.randn(n, args.features, generator=gen) * scale
    x = x / x.std(dim=0).norm() * (args.features**0.5 / 4)
    teacher = torch.randn(args.features, args.classes, generator=gen)
    y = (x @ teacher).argmax(dim=1)
    noisy = torch.rand(n, generator=gen) < args.label_noise
    y[noisy] = torch.randint(0, args.classes, (int(noisy.sum()),), generator=gen)
    return x[: args.samples], y[: args.samples], x[args.samples :], y[args.samples :]


def make_model(args: argparse.Namespace) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = args.features
    for _ in range(args.depth):
        layers += [nn.Linear(width, args.hidden), nn.LeakyReLU()]
        width = args.hidden
    layers.append(nn.Linear(width, args.classes))
    return nn.Sequential(*layers)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(dim=1) == y).float().mean()) if len(y) else float("nan")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_common_arguments(parser, max_steps=10_000, save_every=500, hidden=512, batch_size=16)
    parser.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (momentum 0.9)")
    parser.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip (keeps lr 0.1 finite)")
    parser.add_argument("--depth", type=int, default=3, help="number of hidden layers")
    parser.add_argument("--samples", type=int, default=3_000, help="training samples")
    parser.add_argument("--val-samples", type=int, default=500, help="held-out samples")
    parser.add_argument("--features", type=int, default=512, help="input features of the synthetic task")
    parser.add_argument("--classes", type=int, default=7, help="number of classes")
    parser.add_argument("--feature-decay", type=float, default=1.5,
                        help="feature j has variance j**-decay (0 = white noise)")
    parser.add_argument("--label-noise", type=float, default=1.0,
                        help="fraction of labels replaced at random (1.0 = memorise everything)")
    args = parser.parse_args(argv)
    check_positive(parser, args, "max_steps", "save_every", "hidden", "batch_size", "depth",
                   "samples", "features", "classes")
    if not 0.0 <= args.label_noise <= 1.0:
        parser.error("--label-noise must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_threads()
    torch.manual_seed(args.seed)
    x, y, x_val, y_val = make_data(args)
    model = make_model(args)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    stop = StopSignal(args.stop_file)
    ckpt_dir: Path = args.checkpoint_dir
    print(f"overfitting a {args.depth}x{args.hidden} MLP on {args.samples} samples "
          f"(label noise {args.label_noise:.0%}): {args.max_steps} steps, checkpoint every "
          f"{args.save_every} into {ckpt_dir}/, obeying {args.stop_file}", flush=True)

    gen = torch.Generator().manual_seed(args.seed + 1)
    step, epoch, best, started = 0, 0, -1.0, time.monotonic()
    while step < args.max_steps:
        epoch += 1
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), args.batch_size):
            if stop_requested(stop, step):
                return 0
            idx = order[start : start + args.batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            step += 1
            if step % args.save_every == 0:
                train_acc, val_acc = accuracy(model, x, y), accuracy(model, x_val, y_val)
                generation = step // args.save_every
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                         "epoch": epoch, "train_accuracy": train_acc, "val_accuracy": val_acc}
                save_atomic(state, ckpt_dir / f"generation_{generation}.pt")
                note = ""
                if val_acc > best:
                    best = val_acc
                    save_atomic(state, ckpt_dir / "best_model.pt")
                    note = " (new best_model.pt)"
                print(f"step {step:6d}  epoch {epoch:3d}  loss {loss.item():.3f}  train acc {train_acc:.2f}  "
                      f"held-out acc {val_acc:.2f}  saved generation_{generation}.pt{note}  "
                      f"[{time.monotonic() - started:.0f}s]", flush=True)
            if step >= args.max_steps:
                break
    if stop_requested(stop, step):
        return 0
    print(f"finished {args.max_steps} steps without a stop signal", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
