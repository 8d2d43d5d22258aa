"""What a network is for, read from its name: a policy, a critic, a target, a value head or a plain model.

Why it matters: in reinforcement learning, a critic's or a target's alpha falls with the
number of updates whatever the return does (bench/stop_signal: critics below 2 at 2-4k steps
of healthy SAC runs that learned at 4-19k), so the stop rule lets only some roles halt
training, and the reports group networks by role. Names are the ones alphawatch gives
networks: SB3 zips give `actor`, `critic`, `critic_target` (SAC), `q_net`, `q_net_target`
(DQN) or one `model` (PPO/A2C: policy and value net in one state dict); the SAC example
gives `actor`, `critic_1`, `target_critic_2`; a plain state dict gives `model` or its
top-level module names.

Pure and standard library only.
"""

from __future__ import annotations

import re

ROLES = ("model", "policy", "critic", "target", "value")

_TOKEN = re.compile(r"[a-z]+|\d+")


def network_role(name: str, checkpoint_format: str | None = None) -> str:
    """The role of network `name`, checked in this order: target (`critic_target`,
    `target_critic_1`, `q_net_target`) > critic (`critic*`, `qf*`, `q`, `q_net`) > value
    (`value*`, `vf`) > policy (`actor*`, `policy*`, `pi`) > model.

    A network of an SB3 zip that reads as a plain model is its whole policy (PPO and A2C
    keep actor and value head in one state dict), so it is a policy, not a model.
    """
    lowered = name.lower()
    tokens = _TOKEN.findall(lowered)
    if any(t.startswith("target") for t in tokens):
        return "target"
    if any(t.startswith("critic") or t in ("q", "qf", "qnet") for t in tokens) or "q_net" in lowered:
        return "critic"
    if any(t.startswith("value") or t == "vf" for t in tokens):
        return "value"
    if any(t.startswith(("actor", "policy")) or t == "pi" for t in tokens):
        return "policy"
    return "policy" if checkpoint_format == "sb3_zip" else "model"
