"""The Stable-Baselines3 callback against real `PPO` and `SAC` on Gymnasium tasks (CPU)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")

from alphawatch.integrations.sb3 import AlphawatchStopCallback  # noqa: E402
from stable_baselines3 import PPO, SAC  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback, CallbackList  # noqa: E402

from tests.integrations.helpers import write_signal  # noqa: E402

TOTAL = 400


class WriteSignalAtStep(BaseCallback):
    """Plays the daemon: writes the stop file once `num_timesteps` reaches `step`."""

    def __init__(self, path: Path, step: int) -> None:
        super().__init__()
        self.path, self.step = path, step

    def _on_step(self) -> bool:
        if self.num_timesteps == self.step and not self.path.exists():
            write_signal(self.path)
        return True


def make_model(algo: str):  # type: ignore[no-untyped-def]
    if algo == "ppo":  # on-policy: the stop lands in the middle of a rollout
        return PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1,
                   policy_kwargs={"net_arch": [16]}, seed=0, device="cpu")
    # off-policy: a few gradient steps happen before the stop
    return SAC("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=16,
               policy_kwargs={"net_arch": [16]}, seed=0, device="cpu")


@pytest.mark.parametrize("algo", ["ppo", "sac"])
@pytest.mark.parametrize(("every", "write_at", "expected"), [(1, 77, 77), (25, 77, 100)])
def test_learn_stops_at_the_next_check_after_the_signal_appears(
    stop_file: Path, caplog: pytest.LogCaptureFixture, algo: str, every: int, write_at: int, expected: int
) -> None:
    stop_file.parent.mkdir()
    model = make_model(algo)
    stopper = AlphawatchStopCallback(stop_file, check_every_n_steps=every)
    with caplog.at_level(logging.WARNING, logger="alphawatch"):
        callbacks = CallbackList([WriteSignalAtStep(stop_file, write_at), stopper])
        model.learn(total_timesteps=TOTAL, callback=callbacks)
    assert model.num_timesteps == expected < TOTAL
    assert stopper.stopped_at_step == expected
    assert stopper.signal is not None and stopper.signal.value == 1.93
    [record] = [r for r in caplog.records if r.name == "alphawatch"]
    assert f"Stable-Baselines3 training at step {expected}" in record.getMessage()
    assert "recommended checkpoint: ckpt/generation_6.pt" in record.getMessage()


def test_no_signal_learns_to_the_end(stop_file: Path) -> None:
    model = make_model("ppo")
    stopper = AlphawatchStopCallback(stop_file)
    model.learn(total_timesteps=128, callback=stopper)
    assert model.num_timesteps == 128
    assert stopper.stopped_at_step is None


def test_stop_on_invalid_stops_on_a_file_it_cannot_read(
    stop_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stop_file.parent.mkdir()
    stop_file.write_text("STOP")  # e.g. written by hand, not by the daemon
    model = make_model("ppo")
    stopper = AlphawatchStopCallback(stop_file, stop_on_invalid=True)
    with pytest.warns(UserWarning, match="not valid JSON"), caplog.at_level(logging.WARNING, "alphawatch"):
        model.learn(total_timesteps=TOTAL, callback=stopper)
    assert model.num_timesteps == 1
    assert "could not be read (stop_on_invalid=True)" in caplog.text


def test_an_unreadable_file_is_ignored_by_default(stop_file: Path) -> None:
    stop_file.parent.mkdir()
    stop_file.write_text("STOP")
    model = make_model("ppo")
    with pytest.warns(UserWarning, match="not valid JSON .*; ignoring it"):
        model.learn(total_timesteps=128, callback=AlphawatchStopCallback(stop_file))
    assert model.num_timesteps == 128
