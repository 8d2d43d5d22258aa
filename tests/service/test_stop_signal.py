"""The stop-signal file: atomic, never overwritten, never half-visible; `alphawatch signal`."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alphawatch.commands import signal as signal_command
from alphawatch.service.stop_signal import read_stop_signal, remove_stop_signal, write_stop_signal

from tests.support import as_signal

FIELDS = {"stop": True, "reason": "alpha of actor is 1.8", "run": "sac", "network": "actor",
           "metric": "alpha", "value": 1.8, "threshold": 2.0, "checkpoint": "c/step_4.pt", "step": 4,
           "recommended_checkpoint": "c/step_3.pt", "created_at": "2026-11-26T01:30:00Z", "version": 1}
PAYLOAD = as_signal(FIELDS)


def test_write_creates_folder_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "signals" / "nested" / "stop.json"
    assert write_stop_signal(path, PAYLOAD)
    assert read_stop_signal(path) == PAYLOAD
    assert json.loads(path.read_text()) == FIELDS  # exactly the protocol's fields, in its order
    assert list(json.loads(path.read_text())) == list(FIELDS)
    assert os.listdir(path.parent) == ["stop.json"]  # no temp file left behind
    assert path.stat().st_mode & 0o777 == 0o644  # readable by a training job running as another user


def test_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "stop.json"
    path.write_text('{"stop": true, "reason": "the operator wrote this"}')
    assert not write_stop_signal(path, PAYLOAD)
    assert read_stop_signal(path) == as_signal({"stop": True, "reason": "the operator wrote this"})
    assert os.listdir(tmp_path) == ["stop.json"]


def test_never_writes_through_a_dangling_symlink(tmp_path: Path) -> None:
    path = tmp_path / "stop.json"
    path.symlink_to(tmp_path / "elsewhere.json")
    assert not write_stop_signal(path, PAYLOAD)
    assert not (tmp_path / "elsewhere.json").exists()


def test_payload_must_be_strict_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_stop_signal(tmp_path / "stop.json", as_signal({**FIELDS, "extra_figure": float("nan")}))
    assert os.listdir(tmp_path) == []


def test_read_errors(tmp_path: Path) -> None:
    assert read_stop_signal(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{half")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_stop_signal(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match="not an object"):
        read_stop_signal(tmp_path / "list.json")
    with pytest.raises(ValueError, match="directory"):
        read_stop_signal(tmp_path)
    (tmp_path / "nostop.json").write_text('{"reason": "hand-written"}')
    with pytest.raises(ValueError, match='no "stop" field'):
        read_stop_signal(tmp_path / "nostop.json")


def test_remove(tmp_path: Path) -> None:
    path = tmp_path / "stop.json"
    write_stop_signal(path, PAYLOAD)
    assert remove_stop_signal(path) and not path.exists()
    assert not remove_stop_signal(path)
    assert write_stop_signal(path, PAYLOAD)  # cleared: a new signal can be written


_READER = textwrap.dedent("""
    import json, os, sys, time
    path, done = sys.argv[1], sys.argv[2]
    seen = bad = 0
    values = set()
    while not os.path.exists(done):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        seen += 1
        try:
            obj = json.loads(data)
            assert obj["stop"] is True and obj["version"] == 1 and obj["reason"].endswith("end")
            values.add(obj["value"])
        except Exception:
            bad += 1
    print(json.dumps({"seen": seen, "bad": bad, "distinct": len(values)}))
""")

_ATOMIC_WRITER = textwrap.dedent("""
    import os, sys
    from alphawatch.client import Signal
    from alphawatch.service.stop_signal import write_stop_signal
    path, done, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for i in range(n):
        signal = Signal(stop=True, version=1, value=i, reason="x" * (i % 3000) + " end")
        assert write_stop_signal(path, signal)
        os.unlink(path)
    open(done, "w").close()
""")

# A naive producer (open, write a part, flush, write the rest): the control that shows the
# reader does catch half-written files when they happen.
_NAIVE_WRITER = textwrap.dedent("""
    import json, os, sys
    path, done, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for i in range(n):
        text = json.dumps({"stop": True, "version": 1, "value": i, "reason": "x" * (i % 3000) + " end"})
        with open(path, "w") as f:
            f.write(text[: len(text) // 2]); f.flush()
            f.write(text[len(text) // 2:])
        os.unlink(path)
    open(done, "w").close()
""")


def race(tmp_path: Path, writer_source: str, cycles: int) -> dict[str, int]:
    (tmp_path / "reader.py").write_text(_READER)
    (tmp_path / "writer.py").write_text(writer_source)
    path, done = tmp_path / "sig" / "stop.json", tmp_path / "done"
    path.parent.mkdir()
    reader = subprocess.Popen([sys.executable, str(tmp_path / "reader.py"), str(path), str(done)],
                              stdout=subprocess.PIPE, text=True)
    writer = subprocess.run([sys.executable, str(tmp_path / "writer.py"), str(path), str(done), str(cycles)],
                            timeout=240, capture_output=True, text=True)
    assert writer.returncode == 0, writer.stderr
    out, _ = reader.communicate(timeout=60)
    return json.loads(out)


@pytest.mark.e2e
def test_reader_in_a_tight_loop_never_sees_a_partial_signal(tmp_path: Path) -> None:
    # 1500 write+remove cycles, each with two fsyncs (~10 s): thousands of reads of distinct signals.
    stats = race(tmp_path, _ATOMIC_WRITER, 1500)
    assert stats["seen"] > 100, stats  # the reader really raced the writer
    assert stats["distinct"] > 50, stats
    assert stats["bad"] == 0, stats


def test_control_naive_writer_is_caught_half_written(tmp_path: Path) -> None:
    stats = race(tmp_path, _NAIVE_WRITER, 3000)
    assert stats["seen"] > 100, stats
    assert stats["bad"] > 0, stats


def run_signal(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    signal_command.add_arguments(parser)
    return signal_command.main(parser.parse_args(argv))


def test_signal_status_and_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "stop.json"
    assert run_signal("status", "--stop-file", str(path)) == 1
    assert "no stop signal" in capsys.readouterr().out
    write_stop_signal(path, PAYLOAD)
    assert run_signal("status", "--stop-file", str(path)) == 0
    out = capsys.readouterr().out
    for key in ("reason", "network", "value", "recommended_checkpoint", "created_at"):
        assert f"  {key}: {FIELDS[key]}" in out
    assert run_signal("clear", "--stop-file", str(path)) == 0 and not path.exists()
    assert run_signal("clear", "--stop-file", str(path)) == 0


def test_signal_with_config_fills_in_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"runs: [{tmp_path}/a, {tmp_path}/b]\nstop: {{file: '{tmp_path}/sig/{{run}}.json'}}\n")
    write_stop_signal(tmp_path / "sig" / "b.json", PAYLOAD)
    assert run_signal("status", "--config", str(config), "--run", "a") == 1
    assert run_signal("status", "--config", str(config)) == 0
    assert str(tmp_path / "sig" / "b.json") in capsys.readouterr().out
    assert run_signal("status", "--config", str(config), "--run", "zzz") == 2


def test_signal_cli_invalid_file_exit_2(tmp_path: Path) -> None:
    (tmp_path / "stop.json").write_text("not json")
    proc = subprocess.run([sys.executable, "-m", "alphawatch", "signal", "status", "--stop-file",
                           str(tmp_path / "stop.json")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_clear_with_config_rearms_the_rule_in_the_ledger(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from alphawatch.service.ledger import Ledger

    config = tmp_path / "c.yaml"
    state = tmp_path / "state" / "ledger.sqlite3"
    config.write_text(f"runs: [{{watch: {tmp_path}/ck, name: sac}}]\n"
                      f"state: {{path: {state}}}\nstop: {{file: '{tmp_path}/stop.json'}}\n")
    with Ledger(state) as ledger:
        write_stop_signal(tmp_path / "stop.json", PAYLOAD)
        ledger.record_stop("sac", tmp_path / "stop.json", FIELDS)
    # --stop-file: the file goes, the daemon's record stays (it will not signal again)
    assert run_signal("clear", "--stop-file", str(tmp_path / "stop.json")) == 0
    with Ledger(state) as ledger:
        assert ledger.stop_recorded("sac") == FIELDS
    # --config: the record goes too, so the rule can fire again
    write_stop_signal(tmp_path / "stop.json", PAYLOAD)
    assert run_signal("clear", "--config", str(config)) == 0
    assert "re-armed the stop rule for run sac" in capsys.readouterr().out
    with Ledger(state) as ledger:
        assert ledger.stop_recorded("sac") is None
    assert not (tmp_path / "stop.json").exists()


def test_status_without_arguments_reads_the_shipped_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    # `make run` starts the daemon on config/alphawatch.yaml; `alphawatch signal status` from the
    # same folder must look where that daemon writes
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "alphawatch.yaml").write_text(
        "runs: [{watch: ./checkpoints, name: checkpoints}]\nstop: {file: signals/alphawatch-stop.json}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ALPHAWATCH_CONFIG", raising=False)
    write_stop_signal(tmp_path / "signals" / "alphawatch-stop.json", PAYLOAD)
    assert run_signal("status") == 0
    assert "STOP signal at signals/alphawatch-stop.json" in capsys.readouterr().out
    (tmp_path / "config" / "alphawatch.yaml").unlink()
    assert run_signal("status") == 2
    assert "give --stop-file PATH or --config FILE" in capsys.readouterr().err


def test_status_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    # `alphawatch signal status | head -1`, made deterministic: the reader is gone before we write
    write_stop_signal(tmp_path / "stop.json", PAYLOAD)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "alphawatch", "signal", "status", "--stop-file",
                               str(tmp_path / "stop.json")], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.stderr == "", proc.stderr  # no "[Errno 32] Broken pipe"
    assert proc.returncode == 0


def test_clear_with_config_never_creates_a_ledger(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"runs: [{tmp_path}/ck]\nstate: {{path: {tmp_path}/none/l.db}}\n"
                      f"stop: {{file: '{tmp_path}/stop.json'}}\n")
    assert run_signal("clear", "--config", str(config)) == 0
    assert not (tmp_path / "none").exists()


_PERMISSIONS = textwrap.dedent("""
    import contextlib, io, os, sys
    from pathlib import Path
    from alphawatch.cli import main
    from alphawatch.client import Signal
    from alphawatch.service.stop_signal import write_stop_signal
    base = Path(sys.argv[1])
    (base / "ro").mkdir(); os.chmod(base / "ro", 0o555)
    try:
        write_stop_signal(base / "ro" / "stop.json", Signal(stop=True))
    except PermissionError as exc:
        print("write_refused", exc.filename)
    print("left", sorted(os.listdir(base / "ro")))
    secret = base / "secret.json"; secret.write_text('{"stop": true}'); os.chmod(secret, 0)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):  # the CLI in-process (the venv's interpreter is root's)
        rc = main(["signal", "status", "--stop-file", str(secret)])
    print("status_rc", rc, "traceback" if "Traceback" in err.getvalue() else "clean", err.getvalue().strip())
""")


def test_permission_problems_are_clear_errors() -> None:
    import shutil
    import tempfile

    from tests.service.test_ledger import as_unprivileged

    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to drop root for a permission test")
    base = Path(tempfile.mkdtemp(prefix="alphawatch-perm-"))
    try:
        (base / "check.py").write_text(_PERMISSIONS)
        proc = as_unprivileged([sys.executable, str(base / "check.py"), str(base)], base)
        assert proc.returncode == 0, proc.stderr
        assert "write_refused" in proc.stdout and "left []" in proc.stdout  # nothing half-written
        assert "status_rc 2 clean" in proc.stdout and "Permission denied" in proc.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)
