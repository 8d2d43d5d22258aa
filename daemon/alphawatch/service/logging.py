"""Structured logs for the daemon (structlog), one pipeline for our events and library logs.

    configure_logging(LoggingConfig(format="auto", level="info"))   # once, at start
    log = get_logger("alphawatch.daemon")
    log.info("checkpoint_analyzed", run="sac", path="...", alpha={"actor": 2.4}, duration_seconds=3.2)

- Format: `json` writes one JSON object per line (for log shippers, `docker logs`,
  journald); `console` writes aligned, readable lines; `auto` picks console when the
  stream is a terminal and JSON otherwise.
- Every line has `timestamp` (ISO 8601, UTC, "Z"), `level`, `logger` and `event`.
- The stdlib-logging bridge: records from `logging` (watchdog, prometheus_client, our
  own stdlib loggers in http.py / metrics.py) and `warnings.warn` (captured into
  logging) go through the same processors and renderer, so a library warning is a JSON
  line too, never a stray plain-text line in a JSON stream.
- Why a `ProcessorFormatter` on the root handler (structlog's documented stdlib
  integration): there is exactly one handler and one renderer, and calling
  `configure_logging` again replaces it rather than stacking a second one.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, TextIO

import structlog

from alphawatch.config import LoggingConfig

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}
# Chatty libraries: their INFO/DEBUG lines are noise next to checkpoint events.
_QUIET = ("watchdog", "urllib3", "filelock", "matplotlib", "weightwatcher")


class _AlphawatchHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler we install, so reconfiguring replaces it instead of adding one."""


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="%Y-%m-%dT%H:%M:%S.%fZ", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(config: LoggingConfig, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to `stream` (default stderr) in the configured format."""
    stream = sys.stderr if stream is None else stream
    use_json = config.format == "json" or (config.format == "auto" and not _is_terminal(stream))
    renderer: Any
    if use_json:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        finishing: list[Any] = [structlog.processors.format_exc_info]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=_is_terminal(stream), exception_formatter=structlog.dev.plain_traceback)
        finishing = []
    shared = _shared_processors()

    handler = _AlphawatchHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *finishing, renderer],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _AlphawatchHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    level = LEVELS[config.level]
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    logging.captureWarnings(True)  # warnings.warn -> logger "py.warnings" -> JSON

    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named `name` (the `logger` field of each line)."""
    return structlog.stdlib.get_logger(name)  # type: ignore[no-any-return]


def log_uncaught(log: Any) -> None:
    """Send exceptions nothing caught (in any thread) through the logs, as one JSON line each.

    Why: Python's default hooks print a bare traceback on stderr, which breaks a JSON log
    stream (and a log shipper's parsing) exactly when something went wrong.
    """

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else None
        log.critical("thread_crashed", thread=name,
                     exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    def main_hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        log.critical("uncaught_exception", exc_info=(kind, value, tb))

    def unraisable_hook(unraisable: Any) -> None:  # "Exception ignored in ...": a __del__, a callback
        exc = unraisable.exc_value
        log.error("exception_ignored", where=repr(unraisable.object)[:200],
                  error=f"{type(exc).__name__}: {exc}" if exc is not None else None)

    threading.excepthook = thread_hook
    sys.excepthook = main_hook
    sys.unraisablehook = unraisable_hook
