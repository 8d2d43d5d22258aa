"""Network roles from the names alphawatch gives networks (SB3 zips, the SAC example, plain models)."""

from __future__ import annotations

import pytest
from alphawatch.analysis.roles import network_role


@pytest.mark.parametrize(("name", "role"), [
    ("actor", "policy"), ("policy", "policy"), ("pi", "policy"), ("policy_net", "policy"),
    ("critic", "critic"), ("critic_1", "critic"), ("qf1", "critic"), ("q_net", "critic"),
    ("critic_target", "target"), ("target_critic_2", "target"), ("q_net_target", "target"),
    ("value_net", "value"), ("vf", "value"),
    ("model", "model"), ("encoder", "model"), ("blocks", "model"), ("pos_emb", "model"),
    ("Actor", "policy"), ("QF2", "critic"),
])
def test_roles_from_names(name: str, role: str) -> None:
    assert network_role(name) == role


def test_a_whole_sb3_policy_is_a_policy() -> None:
    # SB3 PPO/A2C zips keep actor and value head in one state dict, which alphawatch calls `model`
    assert network_role("model", "sb3_zip") == "policy"
    assert network_role("critic", "sb3_zip") == "critic"
    assert network_role("model", "torch_zip") == "model"
