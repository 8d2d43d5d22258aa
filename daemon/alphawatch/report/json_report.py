"""`results.json` / `analyze --json`: the result schema as strict JSON.

Strict means `allow_nan=False`: `NaN` and `Infinity` are not JSON and break `jq`, browsers
and most parsers. The engine promises never to produce them; as a second line of defence
`to_jsonable` turns any non-finite float into `null` (and numpy scalars/arrays into plain
Python) so a report is always written and always parses.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from alphawatch.results import CheckpointResult, Document, Failure, Trend

RESULTS_FILENAME = "results.json"


def build_document(checkpoints: Sequence[CheckpointResult], failures: Sequence[Failure], trend: Trend
                   ) -> Document:
    """The `analyze --json` document: `{"checkpoints", "failures", "trend"}`."""
    return {"checkpoints": list(checkpoints), "failures": list(failures), "trend": trend}


def to_jsonable(value: Any) -> Any:
    """A copy that `json.dumps(..., allow_nan=False)` accepts: no NaN/Inf, no numpy types."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array, torch tensor
        return to_jsonable(value.tolist())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot put a {type(value).__name__} into the JSON report")


def dumps(document: Mapping[str, Any], indent: int | None = 2) -> str:
    """Strict JSON text of a document."""
    return json.dumps(to_jsonable(document), indent=indent, allow_nan=False)


def dump(document: Mapping[str, Any], stream: TextIO) -> None:
    """Write strict JSON plus a newline to an open text stream (e.g. stdout)."""
    stream.write(dumps(document))
    stream.write("\n")
    stream.flush()


def is_special(path: Path) -> bool:
    """An existing path that is not a plain file: a link, a device, a FIFO (`/dev/stdout`, `>(jq .)`)."""
    try:
        return not stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def write(document: Mapping[str, Any], path: Path) -> Path:
    """Write the document to `path` atomically (a reader never sees half a file).

    A link, device or pipe is written through instead: renaming a temp file over
    `/dev/stdout` or `/dev/fd/63` would replace the link or device node itself.
    """
    path = Path(path)
    text = dumps(document) + "\n"
    if is_special(path):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created like any other report (0666 less the umask); mkstemp would make it 0600.
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
