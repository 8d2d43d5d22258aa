"""Inputs for the scale cases: a 2 GB checkpoint and a Llama-7B-shaped sharded one, seeded.

2 GB: 32 x 4096x4096 float32, default init, as safetensors and as a torch.save zip.

7B-shaped: 32 blocks of q/k/v/o (4096x4096) and gate/up (11008x4096) + down (4096x11008),
bf16, with Llama's HF key names, as HF-style safetensors shards with
`model.safetensors.index.json`, and as a torch.distributed.checkpoint folder. The entries
are Student-t with 3 degrees of freedom (heavier-tailed than an initialisation; their alphas
are 6-45). Written block by block, so the writer never holds more than a shard.
"""

from __future__ import annotations

import json
import math
import mmap
from pathlib import Path

import torch
from torch import nn

HIDDEN, MLP, BLOCKS = 4096, 11008, 32
DF = 3  # degrees of freedom of the Student-t entries
ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")


def two_gb_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {f"layers.{i}.weight": nn.Linear(4096, 4096).weight.data for i in range(32)}


def two_gb_module(state: dict[str, torch.Tensor]) -> nn.Module:
    model = nn.Module()
    model.layers = nn.ModuleList(nn.Linear(4096, 4096, bias=False) for _ in range(32))  # type: ignore[assignment]
    model.load_state_dict(state)
    return model


def block_shapes(block: int) -> dict[str, tuple[int, int]]:
    prefix = f"model.layers.{block}"
    shapes = {f"{prefix}.self_attn.{p}.weight": (HIDDEN, HIDDEN) for p in ATTN}
    shapes[f"{prefix}.mlp.gate_proj.weight"] = (MLP, HIDDEN)
    shapes[f"{prefix}.mlp.up_proj.weight"] = (MLP, HIDDEN)
    shapes[f"{prefix}.mlp.down_proj.weight"] = (HIDDEN, MLP)
    return shapes


def block_tensors(block: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + block)
    out = {}
    for key, (rows, cols) in block_shapes(block).items():
        # Student-t with 3 degrees of freedom: z / sqrt(chi2_3 / 3)
        chi2 = torch.zeros(rows, cols)
        for _ in range(DF):
            chi2.addcmul_(z := torch.randn(rows, cols, generator=gen), z)
        w = torch.randn(rows, cols, generator=gen).div_(chi2.div_(DF).sqrt_())
        out[key] = w.mul_(0.5 / math.sqrt(cols)).to(torch.bfloat16)
    return out


def write_shards(folder: Path, blocks: int = BLOCKS, per_shard: int = 2) -> Path:
    """HF layout: model-0000i-of-0000n.safetensors + model.safetensors.index.json."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    shards = math.ceil(blocks / per_shard)
    weight_map: dict[str, str] = {}
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        tensors: dict[str, torch.Tensor] = {}
        for b in range(s * per_shard, min(blocks, (s + 1) * per_shard)):
            tensors.update(block_tensors(b))
        save_file(tensors, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in tensors})
        del tensors
    total = sum(2 * r * c for b in range(blocks) for r, c in block_shapes(b).values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    return folder


def _mapped_shards(shards: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the shards as a view of a read-only file mapping (nothing copied)."""
    import struct
    import warnings

    out: dict[str, torch.Tensor] = {}
    for file in sorted(shards.glob("*.safetensors")):
        with open(file, "rb") as fh:
            header_len = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(header_len))
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        for key, entry in header.items():
            if key == "__metadata__":
                continue
            begin, end = entry["data_offsets"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # read-only buffer: dcp only reads it
                flat = torch.frombuffer(mm, dtype=torch.bfloat16, offset=8 + header_len + begin,
                                        count=(end - begin) // 2)  # fmt: skip
            out[key] = flat.view(*entry["shape"])
    return out


def write_dcp(folder: Path, shards: Path) -> Path:
    """The same tensors as a torch.distributed.checkpoint folder ({"model": state dict})."""
    import warnings

    import torch.distributed.checkpoint as dcp

    state = {k.removeprefix("model."): v for k, v in _mapped_shards(shards).items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"model": state, "step": 7000}, checkpoint_id=str(folder))
    return folder


def llama_blocks_module(shards: Path, blocks: int) -> nn.Module:
    """The first `blocks` blocks as nn.Linear modules (bf16, as stored) for plain WeightWatcher."""
    mapped = _mapped_shards(shards)
    root = nn.Module()
    model = nn.Module()
    layers = nn.ModuleList()
    for b in range(blocks):
        block = nn.Module()
        attn, mlp = nn.Module(), nn.Module()
        for key, (rows, cols) in block_shapes(b).items():
            linear = nn.Linear(cols, rows, bias=False, dtype=torch.bfloat16)
            linear.weight.data = mapped[key].clone()
            setattr(attn if ".self_attn." in key else mlp, key.rsplit(".", 2)[-2], linear)
        block.self_attn, block.mlp = attn, mlp
        layers.append(block)
    model.layers = layers
    root.model = model
    return root
