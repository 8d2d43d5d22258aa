"""<network>_details.csv: one row per layer, every layer field."""

from __future__ import annotations

import csv
from typing import Any

from alphawatch.report import csv_report


def _read(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_one_file_per_network_one_row_per_layer(tmp_path, single_doc: dict[str, Any]) -> None:
    paths = csv_report.write(single_doc, tmp_path)
    assert sorted(p.name for p in paths) == ["actor_details.csv", "critic_1_details.csv"]
    for name in ("actor", "critic_1"):
        layers = single_doc["checkpoints"][0]["networks"][name]["layers"]
        rows = _read(tmp_path / f"{name}_details.csv")
        assert len(rows) == len(layers)
        for row, layer in zip(rows, layers, strict=True):
            assert row["name"] == layer["name"] and row["key"] == layer["key"] == f"{name}.{layer['name']}"
            assert row["shape"] == "x".join(map(str, layer["shape"]))
            assert row["status"] == layer["status"]
            assert row["reason"] == (layer["reason"] or "")
            for field in ("alpha", "D", "xmin", "stable_rank", "log_spectral_norm"):
                expected = layer[field]
                assert (row[field] == "") if expected is None else float(row[field]) == expected
            spikes = layer["num_pl_spikes"]
            assert row["num_pl_spikes"] == ("" if spikes is None else str(spikes))


def test_header_has_all_schema_fields_and_extras(tmp_path, single_doc: dict[str, Any]) -> None:
    single_doc["checkpoints"][0]["networks"]["actor"]["layers"][0]["sigma_max"] = 3.5
    csv_report.write(single_doc, tmp_path)
    with open(tmp_path / "actor_details.csv", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header[: len(csv_report.LEADING_COLUMNS)] == list(csv_report.LEADING_COLUMNS)
    for field in csv_report.LAYER_COLUMNS:
        assert field in header
    assert header[-1] == "sigma_max"


def test_several_checkpoints_rows_carry_checkpoint_and_step(tmp_path, multi_doc: dict[str, Any]) -> None:
    csv_report.write(multi_doc, tmp_path)
    rows = _read(tmp_path / "actor_details.csv")
    per_ckpt = len(multi_doc["checkpoints"][0]["networks"]["actor"]["layers"])
    assert len(rows) == per_ckpt * len(multi_doc["checkpoints"])
    assert [r["step"] for r in rows[::per_ckpt]] == [str(s) for s in multi_doc["trend"]["steps"]]
    assert {r["checkpoint"] for r in rows} == set(multi_doc["trend"]["order"])


def test_network_names_become_safe_file_names() -> None:
    assert csv_report.details_filename("actor") == "actor_details.csv"
    assert csv_report.details_filename("../etc/passwd") == "etc_passwd_details.csv"
    assert csv_report.details_filename("policy/net a") == "policy_net_a_details.csv"
