"""The stop-signal study (issue 8): does alpha tell when to stop training?

Trains real models (supervised with a held-out set, SB3 SAC, the shipped examples), writes
checkpoints with the ground truth beside each, analyzes every checkpoint with alphawatch
exactly as the daemon does, and scores candidate stop rules (`rules.py`) against the ground
truth. One entry point: `python -m bench.stop_signal` (`make signal-study`); see `__main__.py`.
"""
