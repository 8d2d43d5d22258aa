"""results.json / --json: strict JSON in the analyze document shape."""

from __future__ import annotations

import json
import math
import os
import stat
from typing import Any

import numpy as np
import pytest
from alphawatch.report import json_report


def _strict_load(text: str) -> Any:
    def refuse(token: str) -> None:
        raise ValueError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_document_round_trips(tmp_path, multi_doc: dict[str, Any]) -> None:
    path = json_report.write(multi_doc, tmp_path / "sub" / "results.json")
    loaded = _strict_load(path.read_text(encoding="utf-8"))
    assert loaded == multi_doc
    assert set(loaded) == {"checkpoints", "failures", "trend"}
    assert not list(path.parent.glob(".*.tmp"))  # the temp file was renamed away


def test_non_finite_and_numpy_values_never_reach_the_file(single_doc: dict[str, Any]) -> None:
    layer = single_doc["checkpoints"][0]["networks"]["actor"]["layers"][0]
    layer["alpha"] = float("nan")
    layer["D"] = np.float32(0.25)
    layer["num_evals"] = np.int64(256)
    layer["shape"] = np.array([256, 256])
    layer["xmin"] = -math.inf
    loaded = _strict_load(json_report.dumps(single_doc))
    out = loaded["checkpoints"][0]["networks"]["actor"]["layers"][0]
    assert out["alpha"] is None and out["xmin"] is None
    assert out["D"] == pytest.approx(0.25) and out["num_evals"] == 256 and out["shape"] == [256, 256]


def test_unknown_objects_are_an_error_not_a_repr() -> None:
    with pytest.raises(TypeError):
        json_report.dumps({"checkpoints": [object()]})


def test_build_document_shape(multi_doc: dict[str, Any]) -> None:
    doc = json_report.build_document(multi_doc["checkpoints"], multi_doc["failures"], multi_doc["trend"])
    assert doc == multi_doc


def test_symlink_target_is_written_and_the_link_kept(tmp_path) -> None:
    """`--json /dev/stdout` is a link: renaming over it would replace the link itself."""
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    doc = {"checkpoints": [], "failures": [], "trend": {}}
    json_report.write(doc, link)
    assert link.is_symlink()
    assert _strict_load(target.read_text(encoding="utf-8")) == doc


def test_fifo_is_written_through(tmp_path) -> None:
    """`--json >(jq .)` is a pipe: the reader gets the document, the pipe stays a pipe."""
    import os
    import stat

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader exists, so opening to write won't block
    try:
        doc = {"checkpoints": [], "failures": [], "trend": {"pattern": "insufficient_data"}}
        json_report.write(doc, fifo)
        data = os.read(reader, 65536)
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert _strict_load(data.decode("utf-8")) == doc


def test_results_json_is_created_like_the_other_reports(tmp_path, single_doc) -> None:
    old = os.umask(0o022)
    try:
        path = json_report.write(single_doc, tmp_path / "results.json")
        (tmp_path / "other.txt").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE((tmp_path / "other.txt").stat().st_mode) == 0o644
