"""Which tensors of a state dict are layers, and which matrices each one contributes.

WeightWatcher decides this from module classes (Linear, Conv2d, Embedding); we only have a
state dict, so we decide from tensor rank and key names. A *unit* is one row of the result:
a stack of matrices whose eigenvalues are pooled into one spectrum.

- 2-D tensors: one matrix (kind "linear", or "embedding" when the key says so).
- `*in_proj_weight` (nn.MultiheadAttention): split into q, k, v (kind "attention").
  Plain WeightWatcher skips these.
- `weight_ih_l*` / `weight_hh_l*` (nn.LSTM / nn.GRU / nn.RNN): split into their gate
  matrices (LSTM i, f, g, o; GRU r, z, n), one unit per gate (kind "rnn_gate"). Gates have
  different roles, so pooling them would blur four spectra into one. WW skips these.
- 4-D `*.weight` (Conv2d, shape out x in x kh x kw): the kh*kw slices W[:, :, i, j] pooled,
  as WeightWatcher does with its default `pool=True`; eigenvalues scaled by 1/2 (WW's
  `conv2d_norm`: each slice is multiplied by sqrt(1/2)).
- 3-D `*.weight` (Conv1d, out x in x k): the k slices W[:, :, t] pooled exactly like Conv2d
  (a Conv1d is a Conv2d with a 1 x k kernel). WW instead treats k as a matrix dimension.
- 1-D and 0-D tensors (biases, norms, counters) are not layers and are left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# WeightWatcher's conv2d_norm multiplies each slice by sqrt(conv2d_count / 2) with
# conv2d_count = 1 when pooling, so every eigenvalue is scaled by 1/2.
CONV_EVAL_SCALE = 0.5

_RNN_KEY = re.compile(r"^(?P<prefix>.*?)weight_(?P<which>ih|hh)_l(?P<layer>\d+)(?P<suffix>(_reverse)?)$")
_GATE_NAMES = {4: ("i", "f", "g", "o"), 3: ("r", "z", "n")}


@dataclass(frozen=True)
class Unit:
    """One analysable layer entry: a stack of matrices pooled into one spectrum."""

    name: str  # key inside the network's state dict, plus "[q]"-style part for splits
    key: str  # full dotted path inside the file (of the whole tensor)
    kind: str  # linear | conv1d | conv2d | embedding | rnn_gate | attention
    shape: tuple[int, ...]  # shape of the tensor (or of the gate / projection slice)
    stack: torch.Tensor | None  # (slices, rows, cols); None when skipped before any math
    eval_scale: float = 1.0
    skip_reason: str | None = None

    @property
    def num_slices(self) -> int:
        return 1 if self.stack is None else int(self.stack.shape[0])


def _last_component(name: str) -> str:
    return name.rsplit(".", 1)[-1]


# Embedding tables named without "embed": GPT-2's token / position tables, `emb`.
_EMBEDDING_COMPONENTS = ("wte", "wpe", "emb")


def is_embedding(name: str) -> bool:
    """A lookup table by its key (`embeddings.word_embeddings.weight`, `wte.weight`): rows are tokens."""
    parts = name.lower().split(".")
    return any("embed" in p or p in _EMBEDDING_COMPONENTS for p in parts)


def _rnn_gate_count(name: str, tensor: torch.Tensor, tensors: Mapping[str, torch.Tensor]) -> int:
    """Number of stacked gates in an RNN weight (4 LSTM, 3 GRU, 1 plain RNN or unknown)."""
    m = _RNN_KEY.match(name)
    if m is None:
        return 1
    prefix, layer, suffix = m["prefix"], m["layer"], m["suffix"]
    hh = tensors.get(f"{prefix}weight_hh_l{layer}{suffix}")
    hr = tensors.get(f"{prefix}weight_hr_l{layer}{suffix}")  # LSTM with proj_size
    if hr is not None and hr.dim() == 2:
        hidden = int(hr.shape[1])
    elif hh is not None and hh.dim() == 2:
        hidden = int(hh.shape[1])
    else:
        return 1
    rows = int(tensor.shape[0])
    if hidden <= 0 or rows % hidden:
        return 1
    gates = rows // hidden
    return gates if gates in _GATE_NAMES else 1


def _split_rows(name: str, key: str, kind: str, w: torch.Tensor, parts: tuple[str, ...]) -> list[Unit]:
    chunks = w.chunk(len(parts), dim=0)
    return [
        Unit(f"{name}[{p}]", key, kind, tuple(c.shape), c.unsqueeze(0))
        for p, c in zip(parts, chunks, strict=True)
    ]


def _may_be_layer(tensor: torch.Tensor) -> bool:
    """A floating-point tensor of 2 or more dimensions; anything else contributes no unit."""
    return bool(tensor.is_floating_point()) and tensor.dim() >= 2


def units_for(name: str, key: str, tensor: torch.Tensor, tensors: Mapping[str, torch.Tensor]) -> list[Unit]:
    """The units one tensor contributes (empty when it is not a layer)."""
    if not _may_be_layer(tensor):
        return []
    last = _last_component(name)
    shape = tuple(int(s) for s in tensor.shape)
    w = tensor.detach()
    if tensor.dim() == 2:
        if last.endswith("in_proj_weight") and shape[0] == 3 * shape[1]:
            return _split_rows(name, key, "attention", w, ("q", "k", "v"))
        if _RNN_KEY.match(name):
            gates = _rnn_gate_count(name, w, tensors)
            if gates > 1:
                return _split_rows(name, key, "rnn_gate", w, _GATE_NAMES[gates])
            return [Unit(name, key, "rnn_gate", shape, w.unsqueeze(0))]
        kind = "embedding" if is_embedding(name) else "linear"
        return [Unit(name, key, kind, shape, w.unsqueeze(0))]
    if last != "weight":
        return [
            Unit(
                name,
                key,
                "linear",
                shape,
                None,
                skip_reason=f"{tensor.dim()}-D tensor that is not a conv weight",
            )
        ]
    if tensor.dim() == 3:  # Conv1d: (out, in, k) -> k slices (out, in)
        return [Unit(name, key, "conv1d", shape, w.permute(2, 0, 1), CONV_EVAL_SCALE)]
    if tensor.dim() == 4:  # Conv2d: (out, in, kh, kw) -> kh*kw slices (out, in)
        stack = w.permute(2, 3, 0, 1).reshape(shape[2] * shape[3], shape[0], shape[1])
        return [Unit(name, key, "conv2d", shape, stack, CONV_EVAL_SCALE)]
    return [
        Unit(name, key, "conv2d", shape, None, skip_reason=f"{tensor.dim()}-D conv kernels are not supported")
    ]


def network_units(tensors: Mapping[str, torch.Tensor], keys: Mapping[str, str]) -> Iterator[Unit]:
    """All units of one network, in state-dict order, one tensor at a time.

    A generator, so that a lazily loaded state dict (checkpoints/lazy.py) holds only the
    tensors being analyzed, not the whole checkpoint. Biases and norm scales are passed over
    by shape before they are read: a transformer has more of them than weights, and each
    read opens the file (MiniLM-L6: 100 of its 140 reads).
    """
    shapes = getattr(tensors, "meta", None)  # a lazily read state dict's shapes, nothing read
    for name in tensors:
        if shapes is not None and not _may_be_layer(shapes[name]):
            continue
        yield from units_for(name, keys.get(name, name), tensors[name], tensors)
