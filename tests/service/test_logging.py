"""Logging: JSON lines off a terminal, console on one, UTC timestamps, stdlib and warnings bridged."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator

import pytest
from alphawatch.config import LoggingConfig
from alphawatch.service.logging import configure_logging, get_logger

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    import structlog
    from alphawatch.service.logging import _QUIET

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in _QUIET}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)
    logging.captureWarnings(False)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging(LoggingConfig(format="auto"), stream)
    get_logger("alphawatch.test").info("checkpoint_analyzed", run="sac", alpha={"actor": 2.4},
                                       duration_seconds=1.5)
    (event,) = lines(stream)
    assert event["event"] == "checkpoint_analyzed" and event["level"] == "info"
    assert event["logger"] == "alphawatch.test"
    assert event["run"] == "sac" and event["alpha"] == {"actor": 2.4} and event["duration_seconds"] == 1.5
    assert ISO_UTC.match(str(event["timestamp"]))


def test_console_on_a_terminal_and_forced_formats() -> None:
    tty = Terminal()
    configure_logging(LoggingConfig(format="auto"), tty)
    get_logger("t").warning("stop_written", run="sac")
    text = tty.getvalue()
    assert "stop_written" in text and "run" in text and "sac" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])
    tty = Terminal()
    configure_logging(LoggingConfig(format="json"), tty)  # forced JSON even on a terminal
    get_logger("t").info("x")
    assert lines(tty)[0]["event"] == "x"
    plain = io.StringIO()
    configure_logging(LoggingConfig(format="console"), plain)
    get_logger("t").info("readable")
    assert "readable" in plain.getvalue() and "\x1b[" not in plain.getvalue()  # no colour off a tty


def test_level_filters_both_worlds() -> None:
    stream = io.StringIO()
    configure_logging(LoggingConfig(format="json", level="warning"), stream)
    get_logger("t").info("hidden")
    logging.getLogger("lib").info("hidden too")
    get_logger("t").warning("shown")
    logging.getLogger("lib").error("library %s", "error")
    assert [e["event"] for e in lines(stream)] == ["shown", "library error"]


def test_stdlib_and_warnings_become_structured() -> None:
    stream = io.StringIO()
    configure_logging(LoggingConfig(format="json"), stream)
    logging.getLogger("watchdog.observers").warning("inotify watch limit reached")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("something deprecated", DeprecationWarning, stacklevel=1)
    events = lines(stream)
    assert events[0]["logger"] == "watchdog.observers" and events[0]["level"] == "warning"
    assert events[0]["event"] == "inotify watch limit reached"
    assert events[1]["logger"] == "py.warnings" and "something deprecated" in str(events[1]["event"])
    assert all(ISO_UTC.match(str(e["timestamp"])) for e in events)


def test_exceptions_are_one_json_line() -> None:
    stream = io.StringIO()
    configure_logging(LoggingConfig(format="json"), stream)
    try:
        raise ValueError("bad")
    except ValueError:
        get_logger("t").exception("analysis_crashed", path="a.pt")
    (event,) = lines(stream)
    assert "ValueError: bad" in str(event["exception"])


def test_reconfiguring_replaces_the_handler() -> None:
    stream = io.StringIO()
    configure_logging(LoggingConfig(format="json"), stream)
    configure_logging(LoggingConfig(format="json"), stream)
    get_logger("t").info("once")
    assert len(lines(stream)) == 1


def test_chatty_libraries_are_quiet_at_info() -> None:
    stream = io.StringIO()
    configure_logging(LoggingConfig(format="json", level="info"), stream)
    logging.getLogger("watchdog.observers.inotify").info("added watch")
    assert stream.getvalue() == ""


def test_json_on_stderr_of_a_real_process() -> None:
    code = ("from alphawatch.config import LoggingConfig\n"
            "from alphawatch.service.logging import configure_logging, get_logger\n"
            "import logging\n"
            "configure_logging(LoggingConfig())\n"
            "get_logger('alphawatch.daemon').info('started', version='x')\n"
            "logging.getLogger('prometheus_client').warning('lib says hi')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == ""
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [e["event"] for e in events] == ["started", "lib says hi"]


def test_exceptions_nothing_caught_are_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from alphawatch.service.logging import log_uncaught

    for name in ("excepthook", "unraisablehook"):
        monkeypatch.setattr(sys, name, getattr(sys, name))
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    out = io.StringIO()
    configure_logging(LoggingConfig(format="json"), stream=out)
    log_uncaught(get_logger("alphawatch.daemon"))

    def boom() -> None:
        raise RuntimeError("a bug in a thread")

    thread = threading.Thread(target=boom, name="analysis")
    thread.start()
    thread.join()
    try:
        raise ValueError("nobody caught me")
    except ValueError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]  # every line is JSON
    crashed, uncaught = lines
    assert [crashed[k] for k in ("event", "thread", "level")] == ["thread_crashed", "analysis", "critical"]
    assert "RuntimeError: a bug in a thread" in crashed["exception"]
    assert uncaught["event"] == "uncaught_exception" and "nobody caught me" in uncaught["exception"]
