"""Never run code from a checkpoint: hostile pickles are refused and their code never runs."""

from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from alphawatch.checkpoints import is_complete, load, sniff
from alphawatch.checkpoints.allowlist import allowed_globals
from alphawatch.errors import CheckpointError
from torch import nn

from tests import factories


class Evil:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class WholeModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)


def _refused(path: Path, marker: Path | None = None) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        load(path)
    assert str(path) in info.value.message
    assert is_complete(path) in (True, False)  # never raises, never unpickles
    if marker is not None:
        assert not marker.exists(), "the pickle's code ran"
    return info.value


def _sanity_check_the_payload_is_live(tmp_path: Path) -> None:
    """The same bytes do run code under plain pickle: the test would catch a real leak."""
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Evil(probe)))
    assert probe.exists()
    probe.unlink()


def test_payload_is_live(tmp_path: Path) -> None:
    _sanity_check_the_payload_is_live(tmp_path)


def test_torch_save_zip_with_malicious_object(tmp_path: Path) -> None:
    marker = tmp_path / "pwned_zip"
    path = tmp_path / "evil.pt"
    torch.save({"actor": factories.sac_state_dicts(hidden=8)["actor"], "x": Evil(marker)}, path)
    assert sniff(path) == "torch_zip"
    err = _refused(path, marker)
    assert err.reason == "unsafe_pickle"
    assert "posix.system" in err.message or "os.system" in err.message


def test_torch_save_legacy_with_malicious_object(tmp_path: Path) -> None:
    marker = tmp_path / "pwned_legacy"
    path = tmp_path / "evil_legacy.pt"
    torch.save({"x": Evil(marker)}, path, _use_new_zipfile_serialization=False)
    assert sniff(path) == "torch_legacy"
    assert _refused(path, marker).reason == "unsafe_pickle"


def test_raw_pickle_with_malicious_object(tmp_path: Path) -> None:
    marker = tmp_path / "pwned_raw"
    for protocol in (2, 4, 5):
        path = tmp_path / f"evil_raw_{protocol}.pt"
        path.write_bytes(pickle.dumps({"model": Evil(marker)}, protocol=protocol))
        err = _refused(path, marker)
        assert err.reason == "unsafe_pickle"
        assert "system" in err.message


def test_sb3_zip_with_malicious_policy(tmp_path: Path) -> None:
    marker = tmp_path / "pwned_sb3"
    buf = io.BytesIO()
    torch.save({"x": Evil(marker)}, buf)
    path = tmp_path / "evil_sb3.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data", json.dumps({"num_timesteps": 1}))
        zf.writestr("policy.pth", buf.getvalue())
    assert _refused(path, marker).reason == "unsafe_pickle"


def test_whole_module_pickle_is_refused_naming_the_class(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(WholeModel(), path)
    err = _refused(path)
    assert err.reason == "unsafe_pickle"
    assert "WholeModel" in err.message
    assert "state_dict" in err.message  # tells the user what to do instead


def test_torchscript_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.script(nn.Linear(3, 3)).save(str(path))
    assert _refused(path).reason == "torchscript"


def test_allowlisted_hyper_parameters_load(tmp_path: Path) -> None:
    """numpy values, argparse.Namespace, Lightning's AttributeDict, paths: data only, allowed."""
    from lightning.fabric.utilities.data import AttributeDict

    path = tmp_path / "hp.pt"
    torch.save(
        {
            "model_state_dict": factories.mlp([3, 5, 2]).state_dict(),
            "args": argparse.Namespace(lr=np.float32(1e-3), dims=np.array([3, 5, 2])),
            "hyper_parameters": AttributeDict(lr=0.1, seed=np.int64(3)),
            "best": np.float64(0.5),
            "curve": np.linspace(0, 1, 5),
            "out_dir": pathlib.Path("/runs/x"),
            "torch_version": torch.__version__,
            "step": 11,
        },
        path,
    )
    ckpt = load(path)
    assert list(ckpt.networks) == ["model"]
    assert sorted(ckpt.networks["model"]) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert ckpt.step == 11
    # the allowlist applied only inside load(), nothing left behind process-wide
    assert not set(allowed_globals()) & set(torch.serialization.get_safe_globals())


def test_numpy_float_arrays_become_layers(tmp_path: Path) -> None:
    path = tmp_path / "np.pt"
    torch.save({"enc": {"l.weight": np.ones((4, 3), dtype=np.float32), "l.idx": np.arange(3)}}, path)
    ckpt = load(path)
    assert ckpt.networks["enc"]["l.weight"].shape == (4, 3)
    assert "l.idx" not in ckpt.networks["enc"]


def test_not_allowlisted_stdlib_class_is_refused(tmp_path: Path) -> None:
    import collections

    path = tmp_path / "deque.pt"
    torch.save({"w": torch.ones(2, 2), "q": collections.deque([1])}, path)
    err = _refused(path)
    assert err.reason == "unsafe_pickle"
    assert "deque" in err.message
