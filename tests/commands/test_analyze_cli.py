"""`alphawatch analyze` end to end: the real CLI in a subprocess on real torch.save files.

Each run imports torch and weightwatcher (several seconds), so runs are shared between
tests through module-scoped fixtures, and the tests are marked e2e.
"""

from __future__ import annotations

import csv
import fcntl
import os
import pickle
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import pytest
from alphawatch.analysis.trend import trend as compute_trend

from tests.commands.conftest import REPO, SMALL, Run, load_json, run_cli, run_cli_in_process
from tests.commands.schema import check_document
from tests.factories import SAC_NETWORK_NAMES, save_sac_checkpoint

e2e = pytest.mark.e2e


@pytest.fixture(scope="module")
def multi_run(sac_dir: Path, broken_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three good checkpoints given out of step order, plus garbage and a zero-byte file."""
    out = tmp_path_factory.mktemp("multi_out")
    good = [sac_dir / "generation_300.pt", sac_dir / "generation_100.pt", sac_dir / "generation_200.pt"]
    bad = [broken_dir / "garbage.pt", broken_dir / "empty.pt"]
    run = run_cli("--checkpoint", *good, *bad, "--output-dir", out / "reports",
                  "--json", out / "deep" / "results.json")
    results = out / "deep" / "results.json"
    return {"run": run, "out": out, "good": good, "bad": bad,
            "doc": load_json(results) if results.exists() else None}


@pytest.fixture(scope="module")
def single_run(sac_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("single_out")
    run = run_cli(sac_dir / "generation_200.pt", "--output-dir", out)
    return {"run": run, "out": out}


# ---------------------------------------------------------------- usage errors (in-process: no torch)

USAGE_ERRORS = [
    [],
    ["--dead-neuron-samples", "0", "x.pt"],
    ["--dead-neuron-samples", "1", "x.pt"],  # one sample has variance 0: every unit "dead"
    ["--dead-neuron-samples", "many", "x.pt"],
    ["--dead-neuron-method", "magic", "x.pt"],
    ["--activation", "softmax", "x.pt"],
    ["--no-such-flag", "x.pt"],
]


@pytest.mark.parametrize("args", USAGE_ERRORS)
def test_usage_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    run = run_cli_in_process(capsys, *args)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert "error:" in run.stderr
    assert run.stdout == ""


def test_usage_error_exit_code_of_the_real_process() -> None:
    """Once through a real interpreter: the exit status the shell sees, and no torch import."""
    run = run_cli("--dead-neuron-method", "magic", "x.pt")
    assert run.returncode == 2 and "error:" in run.stderr and "Traceback" not in run.stderr


def test_unwritable_output_location_is_a_usage_error(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = run_cli_in_process(capsys, tmp_path / "whatever.pt", "--output-dir", blocker / "sub")
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and str(blocker / "sub") in run.stderr


def test_path_swallowed_by_networks_gets_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"x")
    run = run_cli_in_process(capsys, "--networks", "actor", ckpt)
    assert run.returncode == 2 and len(run.stderr_lines) == 1
    assert "taken as a network name" in run.stderr and "--checkpoint" in run.stderr


def test_json_path_that_is_a_folder_is_a_usage_error(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run = run_cli_in_process(capsys, tmp_path / "whatever.pt", "--json", tmp_path)
    assert run.returncode == 2 and len(run.stderr_lines) == 1 and "is a folder" in run.stderr


def test_missing_config_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_cli_in_process(capsys, tmp_path / "whatever.pt", "--config", tmp_path / "nope.yaml")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(run.stderr_lines) == 1 and "nope.yaml" in run.stderr


def test_invalid_config_is_a_usage_error_naming_the_key(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "alphawatch.yaml"
    config.write_text("analysis:\n  dead_neurons:\n    method: telepathy\n", encoding="utf-8")
    run = run_cli_in_process(capsys, tmp_path / "whatever.pt", "--config", config)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(run.stderr_lines) == 1 and "analysis.dead_neurons.method" in run.stderr


def test_directory_named_like_a_file_is_reported(tmp_path: Path) -> None:
    odd = tmp_path / "generation_5.pt"
    odd.mkdir()
    run = run_cli(odd, "--json", "-", "--quiet")
    assert run.returncode == 3 and "Traceback" not in run.stderr
    assert len(run.stderr_lines) == 1 and str(odd) in run.stderr and "[is_directory]" in run.stderr
    doc = run.json()
    assert doc["checkpoints"] == [] and doc["failures"][0]["reason"] == "is_directory"


# ---------------------------------------------------------------- one checkpoint

@e2e
def test_single_checkpoint_exit_0_and_every_file(single_run: dict[str, Any]) -> None:
    run: Run = single_run["run"]
    out: Path = single_run["out"]
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    expected = {"network_health_report.txt", "results.json"}
    expected |= {f"{n}_details.csv" for n in SAC_NETWORK_NAMES}
    expected |= {f"{n}_health_metrics.png" for n in SAC_NETWORK_NAMES}
    assert {p.name for p in out.iterdir()} == expected  # no trend plot for one checkpoint
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "network_health_report.txt").read_text(encoding="utf-8")
    assert report in run.stdout  # the console shows the same text the file holds
    for name in SAC_NETWORK_NAMES:
        assert f"NETWORK: {name}" in report
    assert "ALPHA OVER TRAINING" not in report


@e2e
def test_single_checkpoint_json_and_csv_agree(single_run: dict[str, Any]) -> None:
    out: Path = single_run["out"]
    doc = load_json(out / "results.json")
    check_document(doc)
    (ckpt,) = doc["checkpoints"]
    assert ckpt["step"] == 200 and set(ckpt["networks"]) == set(SAC_NETWORK_NAMES)
    for name, net in ckpt["networks"].items():
        keys = [layer["key"] for layer in net["layers"]]
        assert all(k.startswith(f"{name}.") for k in keys)  # the full dotted path in the file
        with open(out / f"{name}_details.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert [r["key"] for r in rows] == keys
        assert [r["status"] for r in rows] == [layer["status"] for layer in net["layers"]]
    # the critics' 64 -> 1 heads have fewer than 8 eigenvalues: skipped, with the reason
    for name in ("critic_1", "critic_2"):
        head = [x for x in ckpt["networks"][name]["layers"] if x["shape"][0] == 1]
        assert head and all(x["status"] == "skipped" and x["reason"] for x in head)


@e2e
def test_console_report_mirrors_the_summary(single_run: dict[str, Any]) -> None:
    run: Run = single_run["run"]
    doc = load_json(single_run["out"] / "results.json")
    actor = doc["checkpoints"][0]["networks"]["actor"]["summary"]
    section = run.stdout[run.stdout.index("NETWORK: actor"):run.stdout.index("NETWORK: critic_1")]
    assert f"Overall alpha:            {actor['alpha']:.3f}" in section
    dead = actor["dead_neurons"]
    assert f"{dead['count']}/{dead['total']}" in section
    assert f"{actor['stable_rank_utilization'] * 100:.1f}% of full rank" in section
    assert (f"{actor['layers_analyzed']} analyzed ({actor['layers_trusted']} trusted), "
            f"{actor['layers_skipped']} skipped") in section
    assert "Potential issues:" in section


@e2e
def test_console_report_survives_two_analysis_threads(tmp_path: Path) -> None:
    """With worker.threads 2, the first two layers' fits import WeightWatcher at once, each
    with stdout/stderr redirected: unserialised, one left its sink in place and the whole
    console report (and any later error) vanished, exit status 0."""
    import torch

    gen = torch.Generator().manual_seed(0)
    torch.save({f"{i}.weight": torch.randn(64, 96, generator=gen) for i in range(4)}, tmp_path / "model.pt")
    (tmp_path / "two_threads.yaml").write_text("worker:\n  threads: 2\n")
    run = run_cli(tmp_path / "model.pt", "--config", tmp_path / "two_threads.yaml", "--no-plots")
    assert run.returncode == 0, run.stderr
    assert "NETWORK: model" in run.stdout and "Overall alpha:" in run.stdout, run.stdout + run.stderr


# ---------------------------------------------------------------- several checkpoints, some bad

@e2e
def test_bad_files_exit_3_with_one_line_each(multi_run: dict[str, Any]) -> None:
    run: Run = multi_run["run"]
    assert run.returncode == 3
    assert "Traceback" not in run.stderr
    assert len(run.stderr_lines) == len(multi_run["bad"]), run.stderr
    for path, line in zip(multi_run["bad"], run.stderr_lines, strict=True):
        assert str(path) in line and line.startswith("alphawatch analyze: ")
    assert "[empty]" in run.stderr_lines[1]
    doc = multi_run["doc"]
    assert [f["path"] for f in doc["failures"]] == [str(p) for p in multi_run["bad"]]
    assert doc["failures"][1]["reason"] == "empty"
    assert doc["failures"][0]["reason"] in {"not_a_checkpoint", "truncated"}


@e2e
def test_good_checkpoints_still_analyzed_in_step_order(multi_run: dict[str, Any]) -> None:
    doc = multi_run["doc"]
    check_document(doc)
    assert [c["step"] for c in doc["checkpoints"]] == [100, 200, 300]
    assert doc["trend"]["steps"] == [100, 200, 300]
    # the document's trend is exactly what the engine's trend() says about these results
    assert doc["trend"] == compute_trend(doc["checkpoints"])


@e2e
def test_comparison_table_pattern_and_recommendation(multi_run: dict[str, Any]) -> None:
    out: Path = multi_run["out"] / "reports"
    doc = multi_run["doc"]
    report = (out / "network_health_report.txt").read_text(encoding="utf-8")
    assert report in multi_run["run"].stdout
    table = report[report.index("ALPHA OVER TRAINING (3 checkpoints, in training order)"):]
    rows = [line for line in table.splitlines() if "generation_" in line and "Recommended" not in line]
    names = [line.split()[1] for line in rows]
    assert names == ["generation_100.pt", "generation_200.pt", "generation_300.pt"]
    for i, row in enumerate(rows):
        for series in doc["trend"]["alpha"].values():
            assert (f"{series[i]:.3f}" if series[i] is not None else "n/a") in row
    assert "Pattern: " in table
    recommended = doc["trend"]["recommended_checkpoint"]
    assert recommended is not None  # random-init SAC layers all sit above alpha 2
    assert f"Recommended checkpoint: {recommended}" in table
    assert "NOT ANALYZED (2)" in report
    assert (out / "alpha_over_training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_json(out / "results.json") == doc
    with open(out / "actor_details.csv", newline="", encoding="utf-8") as fh:
        steps = [r["step"] for r in csv.DictReader(fh)]
    assert sorted(set(steps)) == ["100", "200", "300"] and steps == sorted(steps)


# ---------------------------------------------------------------- --json -, filters, folders

@e2e
def test_json_to_stdout_is_pure_json(sac_dir: Path) -> None:
    run = run_cli(sac_dir / "generation_100.pt", "--json", "-", "--networks", "actor", "critic_1",
                  "--dead-neuron-method", "weight")
    assert run.returncode == 0, run.stderr
    doc = run.json()  # stdout parses as a whole: no banner, no WeightWatcher prints
    check_document(doc)
    (ckpt,) = doc["checkpoints"]
    assert set(ckpt["networks"]) == {"actor", "critic_1"}
    assert all(n["summary"]["dead_neurons"]["method"] == "weight" for n in ckpt["networks"].values())
    assert "NETWORK: actor" in run.stderr  # the console summary moved to stderr


@e2e
def test_json_to_stdout_quiet_leaves_stderr_empty(sac_dir: Path, tmp_path: Path) -> None:
    run = run_cli(sac_dir / "generation_100.pt", "--json", "-", "--quiet", "--networks", "actor",
                  "--dead-neuron-samples", "50", "--activation", "leaky_relu")
    assert run.returncode == 0
    assert run.stderr == ""
    summary = run.json()["checkpoints"][0]["networks"]["actor"]["summary"]
    assert summary["dead_neurons"]["method"] == "activation"


@e2e
def test_config_analysis_section_with_flags_on_top(sac_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "alphawatch.yaml"
    config.write_text("analysis:\n  networks: [critic_2]\n  dead_neurons:\n    method: weight\n",
                      encoding="utf-8")
    run = run_cli(sac_dir / "generation_100.pt", "--config", config, "--json", "-", "--quiet",
                  "--dead-neuron-samples", "64")
    assert run.returncode == 0, run.stderr
    nets = run.json()["checkpoints"][0]["networks"]
    assert list(nets) == ["critic_2"]  # from the config
    assert nets["critic_2"]["summary"]["dead_neurons"]["method"] == "weight"
    flagged = run_cli(sac_dir / "generation_100.pt", "--config", config, "--json", "-", "--quiet",
                      "--networks", "actor", "--dead-neuron-method", "activation",
                      "--dead-neuron-samples", "64")
    nets = flagged.json()["checkpoints"][0]["networks"]
    assert list(nets) == ["actor"]  # flags win over the config
    assert nets["actor"]["summary"]["dead_neurons"]["method"] == "activation"


@e2e
def test_unknown_network_is_a_failure(sac_dir: Path) -> None:
    run = run_cli(sac_dir / "generation_100.pt", "--networks", "actr", "--json", "-", "--quiet")
    assert run.returncode == 3
    assert len(run.stderr_lines) == 1 and "actr" in run.stderr and "Traceback" not in run.stderr
    assert run.json()["failures"][0]["reason"] == "no_weights"


@e2e
def test_a_typo_among_several_networks_is_named_and_fails(sac_dir: Path) -> None:
    run = run_cli(sac_dir / "generation_100.pt", "--networks", "actor", "critic1", "--json", "-", "--quiet",
                  "--dead-neuron-method", "weight")
    assert run.returncode == 3
    assert len(run.stderr_lines) == 1 and "unknown network(s) critic1" in run.stderr
    ckpt = run.json()["checkpoints"][0]
    assert list(ckpt["networks"]) == ["actor"]  # the rest is still analyzed
    missing = [i for i in ckpt["issues"] if i["code"] == "missing_networks"]
    assert len(missing) == 1 and "critic_1" in missing[0]["message"]  # what the checkpoint does have


@e2e
def test_folder_expands_to_its_checkpoints(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    save_sac_checkpoint(folder / "step=10.ckpt", step=10, **SMALL)
    save_sac_checkpoint(folder / "model_20.pt", step=20, **SMALL)
    (folder / "notes.txt").write_text("learning rate 3e-4\n")
    (folder / ".hidden.pt").write_bytes(b"")
    (folder / "model_30.pt.tmp").write_bytes(b"half")
    (tmp_path / "empty").mkdir()
    run = run_cli(folder, tmp_path / "empty", "--json", "-", "--quiet", "--networks", "actor",
                  "--dead-neuron-method", "weight")
    assert run.returncode == 3  # the empty folder is reported
    doc = run.json()
    assert [Path(c["path"]).name for c in doc["checkpoints"]] == ["step=10.ckpt", "model_20.pt"]
    assert [f["path"] for f in doc["failures"]] == [str(tmp_path / "empty")]
    assert len(run.stderr_lines) == 1 and str(tmp_path / "empty") in run.stderr


@e2e
def test_code_in_a_pickle_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"actor": Evil()}, protocol=2))
    run = run_cli(evil, "--json", "-", "--quiet")
    assert run.returncode == 3 and not marker.exists()
    assert len(run.stderr_lines) == 1 and str(evil) in run.stderr and "Traceback" not in run.stderr
    assert run.json()["failures"][0]["reason"] == "unsafe_pickle"


@e2e
def test_progress_bar_on_a_terminal_only(sac_dir: Path, tmp_path: Path) -> None:
    ckpts = [sac_dir / "generation_100.pt", sac_dir / "generation_200.pt"]
    # the console summary goes to stdout (a pipe); only the bar may go to the terminal
    args = [*ckpts, "--networks", "actor", "--dead-neuron-method", "weight", "--json", tmp_path / "r.json"]
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a real size
    try:
        proc = subprocess.run([sys.executable, "-m", "alphawatch", "analyze", *map(str, args)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=follower, timeout=300)
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO once the terminal's other end is closed
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(leader)
    tty_err = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "analyzing" in tty_err and "0/2" in tty_err and "1/2" in tty_err  # cleared when done
    assert b"analyzing" not in proc.stdout and b"NETWORK: actor" in proc.stdout
    piped = run_cli(*args)
    assert piped.returncode == 0 and piped.stderr == ""  # no bar in logs and pipes


@e2e
def test_json_through_a_link_keeps_the_link(sac_dir: Path, tmp_path: Path) -> None:
    """`--json /dev/stdout` is a link; the CLI writes through it instead of renaming over it."""
    target = tmp_path / "real.json"
    target.write_text("")
    link = tmp_path / "out.json"
    link.symlink_to(target)
    run = run_cli(sac_dir / "generation_100.pt", "--json", link, "--quiet", "--networks", "actor",
                  "--dead-neuron-method", "weight")
    assert run.returncode == 0, run.stderr
    assert link.is_symlink()
    check_document(load_json(target))


@e2e
def test_real_sb3_sac_and_orthogonal_ppo(tmp_path: Path) -> None:
    """SB3's SAC critic (twin Q chains) gets activation-based dead neurons; a fresh PPO's
    orthogonal layers are failed fits, not alphas in the millions."""
    sb3 = pytest.importorskip("stable_baselines3")
    sac = sb3.SAC("MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [64, 64]}, seed=0)
    sac.save(tmp_path / "sac.zip")
    sb3.PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, seed=0).save(tmp_path / "ppo.zip")
    run = run_cli(tmp_path / "sac.zip", tmp_path / "ppo.zip", "--json", "-", "--quiet")
    assert run.returncode == 0, run.stderr
    doc = run.json()
    check_document(doc)
    by_format = {c["path"].rsplit("/", 1)[-1]: c for c in doc["checkpoints"]}
    critic = by_format["sac.zip"]["networks"]["critic"]["summary"]["dead_neurons"]
    assert critic["method"] == "activation" and critic["fallback_reason"] is None
    assert [x["name"] for x in critic["layers"]] == ["qf0.0", "qf0.2", "qf1.0", "qf1.2"]
    ppo = by_format["ppo.zip"]["networks"]["model"]
    flat = [x for x in ppo["layers"] if x["kind"] == "linear" and x["shape"] == [64, 64]]
    assert flat and all(x["status"] == "failed" and "flat spectrum" in x["reason"] for x in flat)
    assert ppo["summary"]["alpha"] is None


@e2e
def test_model_factory_module_in_the_current_folder_is_found(tmp_path: Path) -> None:
    """`model_factory: "mymodels:make"` names a module in the user's project folder."""
    (tmp_path / "mymodels.py").write_text(
        "from torch import nn\n"
        "def make(name):\n"
        "    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(),\n"
        "                         nn.Linear(32, 2))\n"
    )
    import torch
    from torch import nn

    net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 2))
    torch.save(net.state_dict(), tmp_path / "ckpt.pt")
    (tmp_path / "cfg.yaml").write_text('analysis:\n  dead_neurons:\n    model_factory: "mymodels:make"\n')
    # the installed `alphawatch` script, not `python -m` (which itself puts the folder on sys.path)
    script = Path(sys.executable).with_name("alphawatch")
    if not script.exists():
        pytest.skip("the alphawatch console script is not installed next to this interpreter")
    proc = subprocess.run([str(script), "analyze", "ckpt.pt", "--config", "cfg.yaml", "--json", "-",
                           "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    dead = Run(proc.returncode, proc.stdout, proc.stderr).json()["checkpoints"][0]["networks"]["model"][
        "summary"]["dead_neurons"]
    assert dead["method"] == "activation" and dead["fallback_reason"] is None
    assert [x["name"] for x in dead["layers"]] == ["1", "3"]  # the ReLU and Tanh modules


@e2e
def test_reader_gone_is_quiet(sac_dir: Path) -> None:
    """`alphawatch analyze ... --json - | head -1`: the pipe closes early; no error, no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte is written
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "alphawatch", "analyze", str(sac_dir / "generation_100.pt"),
             "--json", "-", "--quiet", "--networks", "actor", "--dead-neuron-method", "weight"],
            cwd=REPO, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
