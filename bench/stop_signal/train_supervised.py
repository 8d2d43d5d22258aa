"""Supervised runs with a held-out set: an MLP and a small CNN on sklearn's digits (true,
noisy and random labels) and a char-level transformer on Python's own documentation text.

Each run writes `checkpoints/step_NNNNNN.pt` (`{"model", "optimizer", "step"}`, as users
save them) every `save_every` steps and, beside each, `step_NNNNNN.metrics.json` with the
ground truth: train and held-out loss and accuracy at that step. Held-out labels are always
the true ones; only training labels are corrupted, so a rising held-out loss is over-fitting.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bench.stop_signal.plan import RunSpec

Batch = tuple[torch.Tensor, torch.Tensor]


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}"


# ----------------------------------------------------------------------------- data
def digits_split(seed: int, n_train: int, label_noise: float, image: bool) -> tuple[Batch, Batch]:
    """(train, held-out) from sklearn's 1,797 digits: 497 held out with true labels; `n_train`
    of the rest for training, a `label_noise` fraction flipped to another class (1.0: every
    label drawn at random, so nothing but memorisation fits them)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.long)
    if image:
        x = x.view(-1, 1, 8, 8)
    rng = np.random.default_rng(seed)
    order = torch.as_tensor(rng.permutation(len(y)))
    val_idx, train_idx = order[:497], order[497 : 497 + n_train]
    y_train = y[train_idx].clone()
    if label_noise >= 1.0:
        y_train = torch.as_tensor(rng.integers(0, 10, len(y_train)))
    elif label_noise > 0:
        flip = torch.as_tensor(rng.random(len(y_train)) < label_noise)
        shift = torch.as_tensor(rng.integers(1, 10, len(y_train)))
        y_train[flip] = (y_train[flip] + shift[flip]) % 10
    return (x[train_idx], y_train), (x[val_idx], y[val_idx])


def corpus() -> str:
    """English prose shipped with every CPython: the pydoc topic texts, in a fixed order."""
    from pydoc_data.topics import topics

    return "".join(topics[k] for k in sorted(topics))


def char_windows(text: str, vocab: dict[str, int], context: int) -> torch.Tensor:
    """Non-overlapping windows of `context + 1` character ids (input plus next-char target)."""
    ids = torch.tensor([vocab[c] for c in text], dtype=torch.long)
    n = (len(ids) - 1) // (context + 1)
    return ids[: n * (context + 1)].view(n, context + 1)


# ----------------------------------------------------------------------------- models
def mlp(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 10))


class SmallCNN(nn.Module):
    """Two 3x3 conv layers and two linear layers for 8x8 digits."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.fc1 = nn.Linear(2 * channels * 16, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class CharTransformer(nn.Module):
    """A causal pre-norm transformer over characters, no dropout (so it can over-fit)."""

    def __init__(self, vocab: int, d_model: int, layers: int, heads: int, context: int) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, d_model)
        self.pos_emb = nn.Parameter(torch.randn(context, d_model) * 0.02)
        block = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)
        mask = nn.Transformer.generate_square_subsequent_mask(context)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        h = self.tok_emb(ids) + self.pos_emb[:t]
        h = self.blocks(h, mask=self.get_buffer("mask")[:t, :t], is_causal=True)
        return self.head(self.norm(h))


# ----------------------------------------------------------------------------- training
def _classify(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on a whole set, in chunks."""
    loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(y), 512):
            xb, yb = x[start : start + 512], y[start : start + 512]
            out = model(xb)
            if out.dim() == 3:  # language model: (batch, time, vocab) against next chars
                out, yb = out.reshape(-1, out.shape[-1]), yb.reshape(-1)
            loss += float(F.cross_entropy(out, yb, reduction="sum"))
            correct += int((out.argmax(-1) == yb).sum())
    n = y.numel()
    return loss / n, correct / n


def _fit(spec: RunSpec, run_dir: Path, model: nn.Module, train: Batch, val: Batch,
         sample: Callable[[torch.Generator], Batch]) -> None:
    """Adam on `sample`d batches; checkpoint and ground truth every `save_every` steps."""
    p = spec.params
    opt = torch.optim.Adam(model.parameters(), lr=p["lr"])
    gen = torch.Generator().manual_seed(spec.seed + 1)
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for step in range(1, p["steps"] + 1):
        xb, yb = sample(gen)
        out = model(xb)
        if out.dim() == 3:
            out, yb = out.reshape(-1, out.shape[-1]), yb.reshape(-1)
        loss = F.cross_entropy(out, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % p["save_every"] == 0:
            model.eval()
            train_loss, train_acc = _classify(model, *train)
            val_loss, val_acc = _classify(model, *val)
            model.train()
            if not math.isfinite(val_loss):
                raise RuntimeError(f"{spec.name}: held-out loss is not finite at step {step}")
            name = checkpoint_name(step)
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step},
                       ckpt_dir / f"{name}.pt")
            metrics = {"step": step, "train_loss": train_loss, "train_acc": train_acc,
                       "val_loss": val_loss, "val_acc": val_acc}
            (ckpt_dir / f"{name}.metrics.json").write_text(json.dumps(metrics))


def train(spec: RunSpec, run_dir: Path) -> None:
    """Train one supervised run into `run_dir` (checkpoints and their ground truth)."""
    p: dict[str, Any] = spec.params
    torch.manual_seed(spec.seed)
    if spec.family in ("mlp", "cnn"):
        train_set, val_set = digits_split(spec.seed, p["n_train"], p["label_noise"], spec.family == "cnn")
        model = mlp(p["hidden"]) if spec.family == "mlp" else SmallCNN(p["channels"])
        x, y = train_set

        def sample(gen: torch.Generator) -> Batch:
            idx = torch.randint(0, len(y), (p["batch"],), generator=gen)
            return x[idx], y[idx]

        _fit(spec, run_dir, model, train_set, val_set, sample)
    elif spec.family == "charlm":
        text = corpus()
        vocab = {c: i for i, c in enumerate(sorted(set(text)))}
        train_text = text[: p["train_chars"]]
        val_text = text[len(text) // 2 : len(text) // 2 + p["val_chars"]]
        ctx = p["context"]
        train_w, val_w = char_windows(train_text, vocab, ctx), char_windows(val_text, vocab, ctx)
        train_ids = torch.tensor([vocab[c] for c in train_text], dtype=torch.long)
        model = CharTransformer(len(vocab), p["d_model"], p["layers"], p["heads"], ctx)

        def sample_text(gen: torch.Generator) -> Batch:
            starts = torch.randint(0, len(train_ids) - ctx - 1, (p["batch"],), generator=gen)
            chunk = torch.stack([train_ids[s : s + ctx + 1] for s in starts.tolist()])
            return chunk[:, :-1], chunk[:, 1:]

        _fit(spec, run_dir, model, (train_w[:, :-1], train_w[:, 1:]), (val_w[:, :-1], val_w[:, 1:]),
             sample_text)
    else:
        raise ValueError(f"not a supervised family: {spec.family}")
