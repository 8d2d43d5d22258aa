"""Errors that cross module boundaries, as values with a bounded `reason` code.

`reason` is a short machine code (used as the `reason` label of
`alphawatch_checkpoint_failures_total`, so the set must stay small and fixed);
`message` is one human sentence naming what was wrong and, where possible,
what to do about it.
"""

from __future__ import annotations

REASONS: dict[str, str] = {
    "empty": "the file is zero bytes",
    "truncated": "the file ends early (still being written, or cut off)",
    "not_a_checkpoint": "the content is not a format alphawatch reads",
    "unsafe_pickle": "the pickle needs code outside the allowlist (whole modules, custom classes)",
    "torchscript": "TorchScript archives are refused: loading them runs code",
    "is_directory": "a directory where a file was expected",
    "outside_watch": "a symlink or path that leads outside the watched folder",
    "no_weights": "no weight matrices were found in the file",
    "unreadable": "the file could not be read (permissions, I/O error)",
    "unsupported": "a known format this version cannot analyze",
    "timeout": "analysis took longer than worker.timeout_seconds",
    "out_of_memory": "analysis needed more than worker.memory_limit_mb",
    "worker_crashed": "the analysis worker process died",
    "internal_error": "a bug in alphawatch; please report it",
}


class AlphawatchError(Exception):
    """Base class; carries a one-line, user-facing message."""


class ConfigError(AlphawatchError):
    """A configuration problem; the message names the key path and the fix."""


class CheckpointError(AlphawatchError):
    """A checkpoint that was refused or failed, with a reason code from REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown failure reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} [{self.reason}]"
