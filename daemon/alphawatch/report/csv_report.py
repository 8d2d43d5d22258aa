"""`<network>_details.csv`: one row per layer, every layer field, for spreadsheets and pandas.

With several checkpoints each network still gets one file, with a row per layer per
checkpoint (in step order) and `checkpoint` / `step` columns, so a `groupby` gives the
history of any layer. Columns are the schema's layer fields in a fixed order, followed by
any extra fields the analysis added (sorted), so nothing the engine computes is dropped.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

LEADING_COLUMNS = ("checkpoint", "step", "network")
LAYER_COLUMNS = (
    "name", "key", "shape", "kind", "alpha", "stable_rank", "log_spectral_norm",
    "D", "xmin", "num_pl_spikes", "num_evals", "status", "reason",
)


def details_filename(network: str) -> str:
    """`actor` -> `actor_details.csv`; characters unsafe in file names become `_`."""
    return f"{safe_name(network)}_details.csv"


def safe_name(network: str) -> str:
    """A network name usable as a file-name stem (names come from checkpoint keys)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", network).strip("._")
    return cleaned or "network"


def _cell(value: Any) -> Any:
    """Shapes as `256x17` (a list would be quoted Python), None as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return value


def rows_for_network(
    checkpoints: Sequence[Mapping[str, Any]], network: str
) -> list[dict[str, Any]]:
    """One dict per layer of `network`, across the checkpoints given (already in step order)."""
    rows: list[dict[str, Any]] = []
    for ckpt in checkpoints:
        net = ckpt.get("networks", {}).get(network)
        if net is None:
            continue
        for layer in net.get("layers", []):
            row = {"checkpoint": ckpt.get("path"), "step": ckpt.get("step"), "network": network}
            row.update(layer)
            rows.append(row)
    return rows


def columns_for(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The fixed columns, then any extra keys found in the rows."""
    fixed = [*LEADING_COLUMNS, *LAYER_COLUMNS]
    extra = sorted({k for row in rows for k in row} - set(fixed))
    return fixed + extra


def write_network(
    checkpoints: Sequence[Mapping[str, Any]], network: str, output_dir: Path
) -> Path:
    """Write one network's CSV and return its path."""
    rows = rows_for_network(checkpoints, network)
    path = Path(output_dir) / details_filename(network)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns_for(rows), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
    return path


def network_names(checkpoints: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every network seen in any checkpoint, in first-seen order."""
    names: dict[str, None] = {}
    for ckpt in checkpoints:
        for name in ckpt.get("networks", {}):
            names.setdefault(name, None)
    return list(names)


def write(document: Mapping[str, Any], output_dir: Path) -> list[Path]:
    """Write `<network>_details.csv` for every network in the document."""
    checkpoints = document.get("checkpoints", [])
    return [write_network(checkpoints, name, output_dir) for name in network_names(checkpoints)]
