"""load(): torch.save checkpoints in their common shapes become the right networks."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from alphawatch.checkpoints import load
from torch import nn

from tests import factories


def test_sac_dict_of_state_dicts(sac_file: Path, torch_load_calls: list[dict]) -> None:
    ckpt = load(sac_file)
    assert ckpt.format == "torch_zip"
    assert ckpt.step == 300
    assert ckpt.path == str(sac_file)
    assert sorted(ckpt.networks) == sorted(factories.SAC_NETWORK_NAMES)
    expected = factories.sac_state_dicts(hidden=32)
    for name, sd in expected.items():
        assert list(ckpt.networks[name]) == list(sd)
        for layer, tensor in sd.items():
            assert torch.equal(ckpt.networks[name][layer], tensor)
            assert ckpt.keys[name][layer] == f"{name}.{layer}"
    assert any("optimizer_actor" in note for note in ckpt.notes)
    assert torch_load_calls == [{"map_location": "cpu", "weights_only": True, "mmap": True}]


def test_step_from_name_when_content_has_none(tmp_path: Path) -> None:
    path = tmp_path / "epoch=2-step=1234.pt"
    torch.save(factories.sac_state_dicts(hidden=8)["actor"], path)
    assert load(path).step == 1234
    torch.save({"model": factories.sac_state_dicts(hidden=8)["actor"], "global_step": 99}, path)
    assert load(path).step == 99


WRAPPERS = ["state_dict", "model_state_dict", "model_state", "net_state_dict", "model"]


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_wrappers_are_peeled(tmp_path: Path, wrapper: str) -> None:
    net = factories.mlp([5, 7, 3])
    opt = factories.optimizer_state_dict(net)
    path = tmp_path / "w.pt"
    torch.save({wrapper: net.state_dict(), "optimizer_state_dict": opt, "scheduler": {"last_epoch": 3},
                "epoch": 4}, path)
    ckpt = load(path)
    assert list(ckpt.networks) == ["model"]
    assert ckpt.keys["model"]["0.weight"] == f"{wrapper}.0.weight"
    assert ckpt.step == 4
    assert any("optimizer_state_dict" in n for n in ckpt.notes)


def test_nested_wrapper_holding_several_networks(tmp_path: Path) -> None:
    sds = factories.sac_state_dicts(hidden=8)
    torch.save({"model": {"actor": sds["actor"], "critic_1": sds["critic_1"]}, "step": 5}, tmp_path / "n.pt")
    ckpt = load(tmp_path / "n.pt")
    assert sorted(ckpt.networks) == ["actor", "critic_1"]
    assert ckpt.keys["actor"]["0.weight"] == "model.actor.0.weight"


@pytest.mark.parametrize("container", [tuple, list])
def test_tuple_or_list_of_state_dicts(tmp_path: Path, container: type) -> None:
    sds = factories.sac_state_dicts(hidden=8)
    torch.save(container([sds["actor"], sds["critic_1"]]), tmp_path / "t.pt")
    ckpt = load(tmp_path / "t.pt")
    assert sorted(ckpt.networks) == ["0", "1"]
    assert torch.equal(ckpt.networks["1"]["2.weight"], sds["critic_1"]["2.weight"])
    assert ckpt.keys["0"]["0.weight"] == "0.0.weight"


class _ActorCritic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.actor = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        self.critic = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
        self.critic_target = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 1))


def test_flat_state_dict_grouped_by_first_component(tmp_path: Path) -> None:
    torch.save(_ActorCritic().state_dict(), tmp_path / "ac.pt")
    ckpt = load(tmp_path / "ac.pt")
    assert sorted(ckpt.networks) == ["actor", "critic", "critic_target"]
    assert "2.weight" in ckpt.networks["actor"]
    assert ckpt.keys["critic"]["1.running_mean"] == "critic.1.running_mean"
    # integer buffers are not layers
    assert "1.num_batches_tracked" not in ckpt.networks["critic"]
    assert any("critic.1.num_batches_tracked" in n for n in ckpt.notes)


def test_flat_sequential_or_shallow_model_is_one_network(tmp_path: Path) -> None:
    torch.save(factories.mlp([3, 4, 5]).state_dict(), tmp_path / "seq.pt")
    assert list(load(tmp_path / "seq.pt").networks) == ["model"]
    shallow = OrderedDict([("conv1.weight", torch.randn(4, 3, 3, 3)), ("fc.weight", torch.randn(2, 4))])
    torch.save(shallow, tmp_path / "shallow.pt")
    ckpt = load(tmp_path / "shallow.pt")
    assert list(ckpt.networks) == ["model"]
    assert sorted(ckpt.networks["model"]) == ["conv1.weight", "fc.weight"]


def test_dataparallel_prefix_dropped_from_layer_names(tmp_path: Path) -> None:
    sd = {f"module.{k}": v for k, v in factories.mlp([3, 4, 5]).state_dict().items()}
    torch.save({"state_dict": sd}, tmp_path / "ddp.pt")
    ckpt = load(tmp_path / "ddp.pt")
    assert sorted(ckpt.networks["model"]) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert ckpt.keys["model"]["0.weight"] == "state_dict.module.0.weight"


def test_network_patterns_override_grouping(sac_file: Path) -> None:
    patterns = {"policy": ["actor.*"], "q": ["critic_*.*"], "first_layer": ["actor.0.weight"]}
    ckpt = load(sac_file, network_patterns=patterns)
    assert sorted(ckpt.networks) == ["policy", "q"]  # first_layer: already taken by "policy"
    assert sorted(ckpt.networks["policy"]) == sorted(factories.sac_state_dicts(hidden=8)["actor"])
    assert ckpt.keys["q"]["critic_2.4.weight"] == "critic_2.4.weight"
    assert any("first_layer" in n for n in ckpt.notes)
    assert any("matched no network pattern" in n for n in ckpt.notes)  # the target critics


def test_stray_small_tensors_are_noted(tmp_path: Path) -> None:
    sds = factories.sac_state_dicts(hidden=8)
    torch.save({"actor": sds["actor"], "log_alpha": torch.zeros(1)}, tmp_path / "s.pt")
    ckpt = load(tmp_path / "s.pt")
    assert list(ckpt.networks) == ["actor"]
    assert any("log_alpha" in n for n in ckpt.notes)


def test_legacy_format_loads_without_mmap(tmp_path: Path, torch_load_calls: list[dict]) -> None:
    path = tmp_path / "legacy_step_7.pt"
    torch.save(factories.sac_checkpoint_dict(7, hidden=8), path, _use_new_zipfile_serialization=False)
    ckpt = load(path)
    assert ckpt.format == "torch_legacy"
    assert ckpt.step == 7
    assert sorted(ckpt.networks) == sorted(factories.SAC_NETWORK_NAMES)
    assert torch_load_calls == [{"map_location": "cpu", "weights_only": True, "mmap": False}]


def test_half_and_bfloat16_are_floating(tmp_path: Path) -> None:
    torch.save({"a.l.weight": torch.randn(4, 4).half(), "b.l.weight": torch.randn(4, 4).bfloat16()},
               tmp_path / "h.pt")
    ckpt = load(tmp_path / "h.pt")
    assert ckpt.networks["a"]["l.weight"].dtype == torch.float16
    assert ckpt.networks["b"]["l.weight"].dtype == torch.bfloat16


@pytest.mark.parametrize("zip_format", [True, False])
def test_weights_saved_on_cuda_load_on_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zip_format: bool
) -> None:
    """A file whose storages are tagged `cuda:0` (as saved from a GPU) loads on a CPU-only host."""
    sd = factories.sac_state_dicts(hidden=8)["actor"]
    path = tmp_path / "gpu.pt"
    with monkeypatch.context() as m:  # the bytes a GPU save writes: location "cuda:0" per storage
        m.setattr(torch.serialization, "location_tag", lambda _storage: "cuda:0")
        torch.save({"actor": sd}, path, _use_new_zipfile_serialization=zip_format)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)  # what a naive load does here
    ckpt = load(path)
    assert ckpt.networks["actor"]["0.weight"].device.type == "cpu"
    assert torch.equal(ckpt.networks["actor"]["0.weight"], sd["0.weight"])
