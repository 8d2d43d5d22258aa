"""torch.distributed.checkpoint folders: read through an allowlisting unpickler, tensors lazily.

Real folders written by `torch.distributed.checkpoint.save`; hostile `.metadata` pickles are
built with pickle itself and must be refused without running anything.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import pytest
import torch
from alphawatch import checkpoints
from alphawatch.analysis import analyze_checkpoint
from alphawatch.analysis.options import AnalysisOptions
from alphawatch.errors import CheckpointError


def _save_dcp(folder: Path, state: dict[str, object]) -> Path:
    import torch.distributed.checkpoint as dcp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "torch.distributed is not initialized": single process
        dcp.save(state, checkpoint_id=str(folder))
    return folder


def _weights() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "fc1.weight": torch.randn(64, 32, generator=gen),
        "fc1.bias": torch.randn(64, generator=gen),
        "fc2.weight": torch.randn(16, 64, generator=gen).to(torch.bfloat16),
    }


def test_a_dcp_folder_loads_lazily_with_its_nesting(tmp_path: Path) -> None:
    sd = _weights()
    folder = _save_dcp(tmp_path / "step_300", {"model": sd, "optimizer": {"lr": 0.1}, "step": 300})
    ckpt = checkpoints.load(folder)
    assert ckpt.format == "dcp_folder" and ckpt.step == 300
    (net,) = ckpt.networks.values()
    assert set(net) == set(sd)
    for key, tensor in sd.items():
        assert torch.equal(net[key], tensor)
    assert ckpt.keys[next(iter(ckpt.networks))]["fc1.weight"] == "model.fc1.weight"


def test_same_alphas_as_the_same_weights_in_safetensors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    sd = _weights()
    folder = _save_dcp(tmp_path / "dcp", {"model": sd})
    save_file(sd, str(tmp_path / "w.safetensors"))
    options = AnalysisOptions(dead_neuron_method="weight")
    a = analyze_checkpoint(checkpoints.load(folder), options)
    b = analyze_checkpoint(checkpoints.load(tmp_path / "w.safetensors"), options)
    alphas = [[x["alpha"] for x in r["networks"]["model"]["layers"]] for r in (a, b)]
    assert alphas[0] == alphas[1] and all(v is not None for v in alphas[0])


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("payload", [_RunsCode(), torch.nn.Linear(2, 2)])
def test_metadata_outside_the_allowlist_is_refused_and_not_run(tmp_path: Path, payload: object) -> None:
    folder = _save_dcp(tmp_path / "dcp", {"model": _weights()})
    (folder / ".metadata").write_bytes(pickle.dumps(payload))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(CheckpointError) as info:
            checkpoints.load(folder)
    finally:
        os.chdir(cwd)
    assert info.value.reason == "unsafe_pickle"
    assert "not one of torch.distributed.checkpoint's own metadata classes" in info.value.message
    assert not (tmp_path / "pwned").exists()


def test_a_storage_file_pointing_outside_the_folder_is_refused(tmp_path: Path) -> None:
    from alphawatch.checkpoints.dcp_folder import read_metadata

    folder = _save_dcp(tmp_path / "dcp", {"model": _weights()})
    meta = read_metadata(folder, str(folder))
    for info in meta.storage_data.values():
        object.__setattr__(info, "relative_path", "../../etc/passwd")
    (folder / ".metadata").write_bytes(pickle.dumps(meta))
    ckpt = checkpoints.load(folder, root=tmp_path)
    (net,) = ckpt.networks.values()
    with pytest.raises(CheckpointError) as info:
        net["fc1.weight"]
    assert info.value.reason in ("outside_watch", "not_a_checkpoint", "unreadable")
