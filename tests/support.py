"""Small helpers shared by tests that start real servers and processes."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Poll `predicate` until it returns something truthy and return that; fail on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def as_signal(payload: dict[str, Any]) -> Any:
    """A stop-file JSON object as the `alphawatch.client.Signal` the writer takes."""
    from alphawatch.client import signal_from_object

    signal, problem = signal_from_object(payload)
    assert signal is not None, problem
    return signal
