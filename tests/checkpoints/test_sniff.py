"""Format detection from content: extensions lie, magic bytes do not."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from alphawatch.checkpoints import sniff
from alphawatch.errors import CheckpointError
from safetensors.torch import save_file

from tests import factories


def _reason(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        sniff(path)
    assert str(path) in info.value.message
    return info.value.reason


def test_torch_zip_whatever_the_extension(tmp_path: Path) -> None:
    sd = factories.sac_state_dicts(hidden=8)["actor"]
    for name in ("a.pt", "a.bin", "a.safetensors", "noext"):
        torch.save(sd, tmp_path / name)
        assert sniff(tmp_path / name) == "torch_zip"


def test_torch_legacy(tmp_path: Path) -> None:
    torch.save(factories.sac_state_dicts(hidden=8), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    assert sniff(tmp_path / "old.pt") == "torch_legacy"


def test_safetensors_named_pt(tmp_path: Path) -> None:
    save_file({"w": torch.ones(3, 3)}, str(tmp_path / "w.pt"))
    assert sniff(tmp_path / "w.pt") == "safetensors"


def test_sb3_zip_has_policy_pth(tmp_path: Path) -> None:
    buf = io.BytesIO()
    torch.save(factories.sac_state_dicts(hidden=8)["actor"], buf)
    with zipfile.ZipFile(tmp_path / "model.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data", json.dumps({"num_timesteps": 7}))
        zf.writestr("policy.pth", buf.getvalue())
    assert sniff(tmp_path / "model.zip") == "sb3_zip"


def test_torchscript_is_refused(tmp_path: Path) -> None:
    torch.jit.script(torch.nn.Linear(3, 3)).save(str(tmp_path / "scripted.pt"))
    assert _reason(tmp_path / "scripted.pt") == "torchscript"


def test_other_zip_is_not_a_checkpoint(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "x.pt", "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert _reason(tmp_path / "x.pt") == "not_a_checkpoint"


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.pt").write_bytes(b"")
    assert _reason(tmp_path / "e.pt") == "empty"


def test_text_and_garbage(tmp_path: Path) -> None:
    (tmp_path / "t.pt").write_text("epoch 3 loss 0.1\n")
    (tmp_path / "g.pt").write_bytes(bytes(range(256)) * 10)
    assert _reason(tmp_path / "t.pt") == "not_a_checkpoint"
    assert _reason(tmp_path / "g.pt") == "not_a_checkpoint"


def test_truncated_zip(sac_file: Path, cut) -> None:
    half = cut(sac_file, sac_file.stat().st_size // 2)
    assert _reason(half) == "truncated"


def test_truncated_safetensors_header(tmp_path: Path, cut) -> None:
    save_file({"w": torch.ones(64, 64)}, str(tmp_path / "w.safetensors"))
    assert _reason(cut(tmp_path / "w.safetensors", 40)) == "truncated"


def test_plain_pickles_are_never_unpickled(tmp_path: Path) -> None:
    (tmp_path / "data.pt").write_bytes(pickle.dumps({"a": [1, 2.0]}))
    (tmp_path / "code.pt").write_bytes(pickle.dumps({"p": Path("/x")}))
    assert _reason(tmp_path / "data.pt") == "not_a_checkpoint"
    with pytest.raises(CheckpointError) as info:
        sniff(tmp_path / "code.pt")
    assert info.value.reason == "unsafe_pickle"
    assert "pathlib" in info.value.message


def test_directory_named_like_a_file(tmp_path: Path) -> None:
    (tmp_path / "x.pt").mkdir()
    (tmp_path / "x.pt" / "notes.txt").write_text("hi")
    assert _reason(tmp_path / "x.pt") == "is_directory"


def test_folders(tmp_path: Path) -> None:
    hf = tmp_path / "hf"
    hf.mkdir()
    save_file({"w": torch.ones(2, 2)}, str(hf / "model.safetensors"))
    assert sniff(hf) == "hf_folder"
    trainer = tmp_path / "checkpoint-10"
    trainer.mkdir()
    assert sniff(trainer) == "hf_folder"  # weights not written yet; is_complete says False
    import torch.distributed.checkpoint as dcp

    dcp.save({"w": torch.ones(2, 2)}, checkpoint_id=str(tmp_path / "dcp"))
    assert sniff(tmp_path / "dcp") == "dcp_folder"


def test_missing_file(tmp_path: Path) -> None:
    assert _reason(tmp_path / "nope.pt") == "unreadable"
