"""is_complete: a file still being written (or copied in slowly) is never complete."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from alphawatch.checkpoints import is_complete
from safetensors.torch import save_file

from tests import factories


def _prefixes(size: int) -> list[int]:
    """Cut points across the file: start, middle, and the last bytes (the EOCD region)."""
    points = {1, 4, 30, size // 4, size // 2, size - 100, size - 22, size - 21, size - 1}
    return sorted(p for p in points if 0 < p < size)


def test_torch_zip_complete_and_every_prefix_not(sac_file: Path, cut) -> None:
    assert is_complete(sac_file)
    size = sac_file.stat().st_size
    for n in _prefixes(size):
        assert not is_complete(cut(sac_file, n)), n


def test_torch_zip_with_trailing_bytes_is_not_complete(sac_file: Path, tmp_path: Path) -> None:
    grown = tmp_path / "grown.pt"
    grown.write_bytes(sac_file.read_bytes() + b"\0" * 10)
    assert not is_complete(grown)


def test_slow_copy_is_incomplete_until_the_last_byte(sac_file: Path, tmp_path: Path) -> None:
    data = sac_file.read_bytes()
    dst = tmp_path / "copy.pt"
    chunk = max(1, len(data) // 7)
    with open(dst, "wb") as fh:
        for start in range(0, len(data), chunk):
            fh.write(data[start : start + chunk])
            fh.flush()
            assert is_complete(dst) == (start + chunk >= len(data))


def test_legacy_torch(tmp_path: Path, cut) -> None:
    path = tmp_path / "legacy.pt"
    torch.save(factories.sac_state_dicts(hidden=16), path, _use_new_zipfile_serialization=False)
    assert is_complete(path)
    for n in _prefixes(path.stat().st_size):
        assert not is_complete(cut(path, n)), n


def test_safetensors(tmp_path: Path, cut) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.randn(32, 16), "b": torch.randn(8)}, str(path))
    assert is_complete(path)
    for n in _prefixes(path.stat().st_size):
        assert not is_complete(cut(path, n)), n
    (tmp_path / "long.safetensors").write_bytes(path.read_bytes() + b"xx")
    assert not is_complete(tmp_path / "long.safetensors")


def _hf_folder(folder: Path) -> Path:
    folder.mkdir()
    save_file({"l.weight": torch.randn(8, 8)}, str(folder / "model-00001-of-00002.safetensors"))
    save_file({"m.weight": torch.randn(8, 8)}, str(folder / "model-00002-of-00002.safetensors"))
    index = {"weight_map": {"l.weight": "model-00001-of-00002.safetensors",
                            "m.weight": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def test_hf_trainer_checkpoint_needs_trainer_state(tmp_path: Path) -> None:
    folder = _hf_folder(tmp_path / "checkpoint-500")
    assert not is_complete(folder)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 500}))
    assert is_complete(folder)


def test_plain_hf_folder_complete_when_weights_are(tmp_path: Path) -> None:
    folder = _hf_folder(tmp_path / "exported")
    assert is_complete(folder)
    shard = folder / "model-00002-of-00002.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[:-5])
    assert not is_complete(folder)
    shard.unlink()
    assert not is_complete(folder)


def test_dcp_folder_needs_metadata(tmp_path: Path) -> None:
    import torch.distributed.checkpoint as dcp

    folder = tmp_path / "dcp"
    dcp.save({"w": torch.ones(4, 4)}, checkpoint_id=str(folder))
    assert is_complete(folder)
    os.rename(folder / ".metadata", tmp_path / "metadata.bak")
    assert not is_complete(folder)


@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04garbage", b"\x80\x04K\x01."])
def test_never_raises(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "odd.pt"
    path.write_bytes(content)
    assert is_complete(path) is False
    assert is_complete(tmp_path / "missing.pt") is False
    (tmp_path / "dir.pt").mkdir(exist_ok=True)
    assert is_complete(tmp_path / "dir.pt") is False


def test_legacy_check_with_a_huge_object_pickle(tmp_path: Path, cut, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the size cap the legacy check stops rebuilding the pickle and still spots cuts."""
    from alphawatch.checkpoints import pickle_scan

    monkeypatch.setattr(pickle_scan, "MAX_INERT_PICKLE", 10)
    path = tmp_path / "legacy.pt"
    torch.save(factories.sac_state_dicts(hidden=16), path, _use_new_zipfile_serialization=False)
    assert is_complete(path)
    assert not is_complete(cut(path, 500))
