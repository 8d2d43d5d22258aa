"""safetensors files and Hugging Face folders (single file, shards + index, pytorch_model.bin)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from alphawatch.checkpoints import is_complete, load, sniff
from alphawatch.errors import CheckpointError
from safetensors.torch import save_file

from tests import factories


def test_safetensors_file(tmp_path: Path, torch_load_calls: list[dict]) -> None:
    sds = factories.sac_state_dicts(hidden=16)
    flat = {f"{net}.{k}": v for net, sd in sds.items() for k, v in sd.items()}
    flat["actor.steps"] = torch.arange(3)  # integer: not a layer
    path = tmp_path / "model_000100.safetensors"
    save_file(flat, str(path))
    ckpt = load(path)
    assert ckpt.format == "safetensors"
    assert ckpt.step == 100
    # flat keys `actor.0.weight`, `critic_1.0.weight`: grouped by their first component
    assert sorted(ckpt.networks) == sorted(sds)
    assert torch.equal(ckpt.networks["actor"]["2.weight"], sds["actor"]["2.weight"])
    assert "steps" not in ckpt.networks["actor"]
    assert any("non-floating" in n for n in ckpt.notes)
    assert torch_load_calls == []  # no pickle involved at all


def test_safetensors_grouping_with_patterns(tmp_path: Path) -> None:
    sds = factories.sac_state_dicts(hidden=16)
    flat = {f"{net}.{k}": v for net, sd in sds.items() for k, v in sd.items()}
    save_file(flat, str(tmp_path / "sac.safetensors"))
    ckpt = load(tmp_path / "sac.safetensors", network_patterns={"pi": ["actor.*"], "q": ["critic_?.*"]})
    assert sorted(ckpt.networks) == ["pi", "q"]
    assert ckpt.networks["pi"].keys() == sds["actor"].keys()
    assert ckpt.keys["q"]["critic_2.4.weight"] == "critic_2.4.weight"


def _shards(folder: Path, flat: dict[str, torch.Tensor]) -> None:
    names = sorted(flat)
    half = len(names) // 2
    parts = {
        "model-00001-of-00002.safetensors": names[:half],
        "model-00002-of-00002.safetensors": names[half:],
    }
    weight_map = {}
    for shard, keys in parts.items():
        save_file({k: flat[k] for k in keys}, str(folder / shard))
        weight_map.update({k: shard for k in keys})
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def test_sharded_folder_with_index_and_trainer_state(tmp_path: Path) -> None:
    net = torch.nn.Sequential()
    net.add_module("encoder", factories.mlp([6, 16, 16]))
    net.add_module("head", factories.mlp([16, 4]))
    flat = {k: v.detach().clone() for k, v in net.state_dict().items()}
    folder = tmp_path / "checkpoint-40"
    folder.mkdir()
    _shards(folder, flat)
    for extra in ("optimizer.pt", "training_args.bin"):
        (folder / extra).write_bytes(b"not even looked at")
    assert sniff(folder) == "hf_folder"
    assert not is_complete(folder)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 40, "log_history": []}))
    assert is_complete(folder)
    ckpt = load(folder)
    assert ckpt.format == "hf_folder"
    assert ckpt.step == 40
    assert sorted(ckpt.networks) == ["encoder", "head"]  # encoder.0.weight, head.0.weight
    encoder_layers = sorted(k.split(".", 1)[1] for k in flat if k.startswith("encoder."))
    assert sorted(ckpt.networks["encoder"]) == encoder_layers
    assert any("training_args.bin" in n for n in ckpt.notes)


def test_layers_come_in_depth_order_not_text_order(tmp_path: Path) -> None:
    """safetensors sorts names as text (h.10 before h.2); reports list layers by depth."""
    gen = torch.Generator().manual_seed(0)
    flat = {f"h.{i}.mlp.weight": torch.randn(16, 16, generator=gen) for i in range(12)}
    expected = [f"h.{i}.mlp.weight" for i in range(12)]
    save_file(flat, str(tmp_path / "model.safetensors"))
    assert list(load(tmp_path / "model.safetensors").networks["model"]) == expected
    folder = tmp_path / "sharded"
    folder.mkdir()
    _shards(folder, flat)  # shards split the text-sorted names: h.0, h.1, h.10, h.11, h.2 | ...
    assert list(load(folder).networks["model"]) == expected


def test_pytorch_model_bin_folder(tmp_path: Path, torch_load_calls: list[dict]) -> None:
    folder = tmp_path / "exported"
    folder.mkdir()
    sd = factories.mlp([4, 8, 2]).state_dict()
    torch.save(sd, folder / "pytorch_model.bin")
    (folder / "config.json").write_text("{}")
    ckpt = load(folder)
    assert ckpt.format == "hf_folder"
    assert sorted(ckpt.networks["model"]) == sorted(sd)
    assert torch_load_calls == [{"map_location": "cpu", "weights_only": True, "mmap": True}]


def test_index_pointing_outside_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    save_file({"w": torch.ones(2, 2)}, str(tmp_path / "outside.safetensors"))
    index = {"weight_map": {"w": "../outside.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError) as info:
        load(folder)
    assert info.value.reason == "outside_watch"


def test_shard_symlinked_out_of_root_is_refused(tmp_path: Path) -> None:
    watched = tmp_path / "watched"
    folder = watched / "hf"
    folder.mkdir(parents=True)
    save_file({"w": torch.ones(2, 2)}, str(tmp_path / "elsewhere.safetensors"))
    (folder / "model.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    with pytest.raises(CheckpointError) as info:
        load(folder, root=watched)
    assert info.value.reason == "outside_watch"


def test_cut_safetensors_fails_cleanly(tmp_path: Path, cut) -> None:
    save_file({"a": torch.randn(64, 64)}, str(tmp_path / "a.safetensors"))
    short = cut(tmp_path / "a.safetensors", (tmp_path / "a.safetensors").stat().st_size - 100)
    with pytest.raises(CheckpointError) as info:
        load(short)
    assert info.value.reason == "truncated"
    assert str(short) in info.value.message


@pytest.mark.e2e
def test_real_transformers_save_pretrained(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=32,
                                     bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(tmp_path / "single")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    # lm_head.weight is tied to the embedding and not saved twice
    expected = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    for folder in (tmp_path / "single", tmp_path / "sharded"):
        assert is_complete(folder)
        ckpt = load(folder)
        assert list(ckpt.networks) == ["model"]
        assert sorted(ckpt.networks["model"]) == sorted(expected)
        for name, tensor in expected.items():
            assert torch.equal(ckpt.networks["model"][name], tensor)
    assert len(list((tmp_path / "sharded").glob("*.safetensors"))) > 1
