"""The console / network_health_report.txt summary."""

from __future__ import annotations

from typing import Any

from alphawatch.report import text

from tests.report.conftest import checkpoint, document


def _block(report: str, network: str) -> str:
    """The lines of one network's section (up to the next rule of '-' or '=')."""
    start = report.index(f"NETWORK: {network}")
    rest = report[start:].split("\n")[2:]
    out = []
    for line in rest:
        if line.startswith(("---", "===")):
            break
        out.append(line)
    return "\n".join(out)


def test_network_block_has_every_summary_figure(single_doc: dict[str, Any]) -> None:
    report = text.render(single_doc)
    net = single_doc["checkpoints"][0]["networks"]["actor"]
    s = net["summary"]
    block = _block(report, "actor")
    assert f"{s['alpha']:.3f}" in block and text.VERDICTS[s["health"]] in block
    dead = s["dead_neurons"]
    assert f"{dead['count']}/{dead['total']} ({dead['ratio'] * 100:.2f}%)" in block
    assert text.DEAD_NEURON_WORDS[dead["status"]] in block
    assert f"{s['alpha_min']:.3f} to {s['alpha_max']:.3f}" in block
    assert f"{s['alpha']:.3f} +/- {s['alpha_std']:.3f}" in block
    assert f"{s['log_spectral_norm_mean']:.3f}" in block
    assert f"{s['stable_rank_mean']:.2f} ({s['stable_rank_utilization'] * 100:.1f}% of full rank)" in block
    assert (f"{s['layers_analyzed']} analyzed ({s['layers_trusted']} trusted), "
            f"{s['layers_skipped']} skipped, 0 failed") in block


def test_skipped_layers_show_their_reason(single_doc: dict[str, Any]) -> None:
    block = _block(text.render(single_doc), "critic_1")
    skipped = [x for x in single_doc["checkpoints"][0]["networks"]["critic_1"]["layers"]
               if x["status"] == "skipped"]
    assert skipped
    for layer in skipped:
        assert f"skipped: {layer['name']} (6x256) - {layer['reason']}" in block


def test_issues_go_under_their_network_and_shared_ones_after(single_doc: dict[str, Any]) -> None:
    report = text.render(single_doc)
    actor, critic = _block(report, "actor"), _block(report, "critic_1")
    assert "- high alpha variance across layers (std 2.1)" in actor
    assert "high alpha variance" not in critic
    assert "Potential issues: none detected" in critic
    shared = report[report.index("Checkpoint-wide issues:"):]
    assert "actor vs critic alpha mismatch (2.1 vs 4.7)" in shared


def test_single_checkpoint_has_no_comparison(single_doc: dict[str, Any]) -> None:
    assert "ALPHA OVER TRAINING" not in text.render(single_doc)


def test_comparison_table_in_step_order_with_recommendation(multi_doc: dict[str, Any]) -> None:
    report = text.render(multi_doc)
    table = report[report.index("ALPHA OVER TRAINING"):]
    rows = [line for line in table.splitlines() if ".pt" in line and "Recommended" not in line]
    rows = [r for r in rows if r.strip().split()[0].isdigit()]
    assert [int(r.split()[0]) for r in rows] == multi_doc["trend"]["steps"]
    for i, row in enumerate(rows):
        for net in ("actor", "critic_1"):
            assert f"{multi_doc['trend']['alpha'][net][i]:.3f}" in row
    recommended = [r for r in rows if "<- recommended" in r]
    assert len(recommended) == 1 and "generation_200.pt" in recommended[0]
    assert "Pattern: overtraining (decided by actor, the lowest alpha)" in table
    assert "Recommended checkpoint: runs/sac/generation_200.pt (step 200)" in table
    below = [r for r in rows if "!" in r]
    assert len(below) == 1 and r"generation_300" in below[0]  # actor 1.75 < 2


def test_failures_listed_with_reason(multi_doc: dict[str, Any]) -> None:
    report = text.render(multi_doc)
    f = multi_doc["failures"][0]
    assert "NOT ANALYZED (1)" in report
    assert f"  {f['message']} [{f['reason']}]" in report  # the message names the file already
    f["message"] = "cut off"
    assert f"  {f['path']}: cut off [{f['reason']}]" in text.render(multi_doc)


def test_missing_numbers_print_as_na() -> None:
    ckpt = checkpoint("x.pt", None, [None], [None])
    report = text.render(document([ckpt]))
    block = _block(report, "actor")
    assert "Overall alpha:            n/a  -> UNKNOWN" in block
    assert "step: n/a" in report


def test_report_is_ascii_and_written_to_file(tmp_path, multi_doc: dict[str, Any]) -> None:
    rendered = text.render(multi_doc)
    rendered.encode("ascii")
    path = text.write(multi_doc, tmp_path)
    assert path.name == "network_health_report.txt"
    assert path.read_text(encoding="utf-8") == rendered


def test_no_recommendation_is_said_plainly(multi_doc: dict[str, Any]) -> None:
    multi_doc["trend"]["recommended_checkpoint"] = None
    assert "Recommended checkpoint: none" in text.render(multi_doc)


def test_dead_neuron_fallback_is_stated(single_doc: dict[str, Any]) -> None:
    dead = single_doc["checkpoints"][0]["networks"]["actor"]["summary"]["dead_neurons"]
    dead.update(method="weight", fallback_reason="not a chain of Linear layers")
    block = _block(text.render(single_doc), "actor")
    assert "[weight]" in block
    assert "(weight-based: not a chain of Linear layers)" in block


def test_failed_factory_with_rebuild_is_not_called_weight_based(single_doc: dict[str, Any]) -> None:
    dead = single_doc["checkpoints"][0]["networks"]["actor"]["summary"]["dead_neurons"]
    dead.update(method="activation",
                fallback_reason="model factory m:f failed: ValueError: x; rebuilt as a Linear chain instead")
    block = _block(text.render(single_doc), "actor")
    assert "(activation-based: model factory m:f failed" in block
    assert "weight-based" not in block


def test_unknown_dead_count_reads_as_na_of_total(single_doc: dict[str, Any]) -> None:
    dead = single_doc["checkpoints"][0]["networks"]["actor"]["summary"]["dead_neurons"]
    dead.update(count=None, ratio=None, status="unknown", total=234)
    block = _block(text.render(single_doc), "actor")
    assert "Dead neurons:             n/a of 234 (n/a) -> UNKNOWN" in block
