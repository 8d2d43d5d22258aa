"""alphawatch.client: the stdlib-only stop-signal reader used inside training loops."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import alphawatch.client as client
import pytest
from alphawatch.client import Signal, StopSignal, StopSignalWarning, parse_signal

CLIENT_FILE = Path(client.__file__)

PAYLOAD = {
    "stop": True,
    "reason": "actor alpha 1.87 fell below 2.0",
    "run": "sac",
    "network": "actor",
    "metric": "alpha",
    "value": 1.87,
    "threshold": 2.0,
    "checkpoint": "/ckpt/generation_12.pt",
    "step": 12000,
    "recommended_checkpoint": "/ckpt/generation_11.pt",
    "created_at": "2026-11-26T01:00:00Z",
    "version": 1,
}


def write(path: Path, content: bytes | str | dict) -> None:
    if isinstance(content, dict):
        content = json.dumps(content)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)


def test_missing_file_is_no_signal_and_no_warning(tmp_path: Path) -> None:
    reader = StopSignal(tmp_path / "nowhere" / "stop.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reader.should_stop() is False
        assert reader.read() is None


def test_valid_signal_stops_and_exposes_every_field(tmp_path: Path) -> None:
    path = tmp_path / "stop.json"
    write(path, {**PAYLOAD, "future_field": [1, 2]})
    reader = StopSignal(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # unknown fields are tolerated silently
        assert reader.should_stop() is True
        signal = reader.read()
    assert signal == Signal(**PAYLOAD, extra={"future_field": [1, 2]})
    assert signal.describe() == (
        "actor alpha 1.87 fell below 2.0 (recommended checkpoint: /ckpt/generation_11.pt)"
    )


def test_describe_without_reason_names_network_value_and_threshold() -> None:
    signal = Signal(stop=True, network="actor", value=1.5, threshold=2.0)
    assert signal.describe() == "actor alpha 1.5 crossed threshold 2"


def test_stop_false_is_not_a_stop(tmp_path: Path) -> None:
    path = tmp_path / "stop.json"
    write(path, {**PAYLOAD, "stop": False})
    reader = StopSignal(path)
    assert reader.should_stop() is False
    assert reader.read() is not None and reader.read().stop is False


def test_signal_appears_changes_and_is_cleared(tmp_path: Path) -> None:
    path = tmp_path / "stop.json"
    reader = StopSignal(path)
    assert reader.should_stop() is False
    write(path, PAYLOAD)
    assert reader.should_stop() is True
    # Same size, new content, replaced by rename: must be re-read.
    other = path.with_name("other.json")
    write(other, {**PAYLOAD, "network": "critic"})
    os.replace(other, path)
    assert reader.should_stop() is True
    assert reader.read().network == "critic"
    path.unlink()  # `alphawatch signal clear`
    assert reader.should_stop() is False
    assert reader.read() is None


BAD_CONTENTS = {
    "empty": b"",
    "whitespace": b"  \n",
    "truncated": json.dumps(PAYLOAD).encode()[:40],
    "garbage": b"\x00\x01\x02PK\x03\x04",
    "not_utf8": b'{"stop": true, "reason": "\xff\xfe"}',
    "json_list": b"[true]",
    "json_string": b'"stop"',
    "no_stop_field": json.dumps({"reason": "x"}).encode(),
    "stop_is_string": json.dumps({"stop": "true"}).encode(),
    "stop_is_one": json.dumps({"stop": 1}).encode(),
    "deeply_nested": b"[" * 100000 + b"]" * 100000,
}


@pytest.mark.parametrize("name", sorted(BAD_CONTENTS))
def test_unreadable_content_is_not_a_stop_and_warns_once(tmp_path: Path, name: str) -> None:
    path = tmp_path / "stop.json"
    write(path, BAD_CONTENTS[name])
    reader = StopSignal(path)
    with pytest.warns(StopSignalWarning, match="stop file") as record:
        for _ in range(50):
            assert reader.should_stop() is False
        assert reader.read() is None
    assert len(record) == 1, [str(w.message) for w in record]
    assert record[0].filename == __file__  # points at the caller's line, not client.py


@pytest.mark.parametrize("name", ["truncated", "garbage", "no_stop_field"])
def test_stop_on_invalid_fails_closed(tmp_path: Path, name: str) -> None:
    path = tmp_path / "stop.json"
    write(path, BAD_CONTENTS[name])
    reader = StopSignal(path, stop_on_invalid=True)
    with pytest.warns(StopSignalWarning, match="stop_on_invalid"):
        assert reader.should_stop() is True
    assert reader.read() is None


def test_invalid_then_repaired_is_read_again(tmp_path: Path) -> None:
    """A hand-written file caught mid-write is re-read once it is complete."""
    path = tmp_path / "stop.json"
    full = json.dumps(PAYLOAD).encode()
    write(path, full[:30])
    reader = StopSignal(path)
    with pytest.warns(StopSignalWarning):
        assert reader.should_stop() is False
    with open(path, "ab") as fh:  # same inode, the rest arrives
        fh.write(full[30:])
    assert reader.should_stop() is True


def test_a_new_problem_warns_again(tmp_path: Path) -> None:
    path = tmp_path / "stop.json"
    reader = StopSignal(path)
    write(path, b"[1]")
    with pytest.warns(StopSignalWarning, match="list"):
        reader.should_stop()
    write(path, b"{")
    with pytest.warns(StopSignalWarning, match="not valid JSON"):
        reader.should_stop()


def test_mistyped_optional_fields_read_as_none_and_still_stop(tmp_path: Path) -> None:
    path = tmp_path / "stop.json"
    write(path, {**PAYLOAD, "value": "low", "step": "12", "threshold": float("nan")})
    reader = StopSignal(path)
    with pytest.warns(StopSignalWarning, match='"value" is not a finite number'):
        assert reader.should_stop() is True
    signal = reader.read()
    assert (signal.value, signal.step, signal.threshold) == (None, None, None)
    assert signal.network == "actor"


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "stop.json"
    write(path, json.dumps({**PAYLOAD, "reason": "x" * (client.MAX_SIGNAL_BYTES + 10)}))
    with pytest.warns(StopSignalWarning, match="larger than"):
        assert StopSignal(path).should_stop() is False


def test_directory_fifo_and_unreadable_file_never_raise_or_hang(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.warns(StopSignalWarning, match="not a regular file"):
        assert StopSignal(tmp_path / "dir").should_stop() is False
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.warns(StopSignalWarning, match="not a regular file"):
        assert StopSignal(fifo).should_stop() is False  # would block forever without O_NONBLOCK
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert StopSignal(blocker / "stop.json").should_stop() is False  # parent is a file


def test_permission_denied_warns_and_continues() -> None:
    """Runs the reader as an unprivileged user (root ignores mode bits)."""
    folder = Path(tempfile.mkdtemp(prefix="aw-perm-"))
    try:
        folder.chmod(0o755)
        path = folder / "stop.json"
        write(path, PAYLOAD)
        path.chmod(0)
        code = textwrap.dedent(
            f"""
            import importlib.util, sys, warnings
            spec = importlib.util.spec_from_file_location("awclient", {str(CLIENT_FILE)!r})
            mod = importlib.util.module_from_spec(spec)
            sys.modules["awclient"] = mod
            spec.loader.exec_module(mod)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                print(mod.StopSignal({str(path)!r}).should_stop(), caught[0].message)
            """
        )
        user = 65534 if os.geteuid() == 0 else None  # nobody
        # The venv's interpreter may live under root's home; any Python >= 3.10 runs the client.
        python = shutil.which("python3", path="/usr/bin:/usr/local/bin") if user else sys.executable
        if python is None:
            pytest.skip("no system python3 for the unprivileged reader")
        out = subprocess.run(
            [python, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60, user=user
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("False cannot open the stop file"), out.stdout
        assert "Permission denied" in out.stdout
    finally:
        shutil.rmtree(folder)


class _Counter:
    """Counts os.stat / os.open calls on one path. The wrappers replace the os functions for
    the whole process (client.os is os), so only calls on `path` are counted: another thread
    stat-ing its own files cannot change the figures."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
        self.stats = 0
        self.opens = 0
        real_stat, real_open = os.stat, os.open

        def stat(target, *args, **kwargs):
            self.stats += os.fspath(target) == str(path)
            return real_stat(target, *args, **kwargs)

        def open_(target, *args, **kwargs):
            self.opens += os.fspath(target) == str(path)
            return real_open(target, *args, **kwargs)

        monkeypatch.setattr(client.os, "stat", stat)
        monkeypatch.setattr(client.os, "open", open_)


def test_unchanged_file_costs_one_stat_and_no_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stop.json"
    write(path, PAYLOAD)
    reader = StopSignal(path)
    counter = _Counter(monkeypatch, path)
    for _ in range(100):
        assert reader.should_stop() is True
    assert (counter.stats, counter.opens) == (100, 1)


def test_poll_every_stats_only_every_nth_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stop.json"
    reader = StopSignal(path, poll_every=10)
    counter = _Counter(monkeypatch, path)
    answers = []
    for call in range(1, 31):
        if call == 12:
            write(path, PAYLOAD)
        answers.append(reader.should_stop())
    assert counter.stats == 3  # calls 1, 11, 21
    assert answers.index(True) == 20  # seen at the first check after it appeared (call 21)
    assert reader.read() is not None  # read() always looks now


def test_poll_interval_limits_checks_in_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    reader = StopSignal(tmp_path / "stop.json", poll_interval=5.0, clock=lambda: now[0])
    counter = _Counter(monkeypatch, tmp_path / "stop.json")
    for _ in range(20):
        reader.should_stop()
        now[0] += 1.0
    assert counter.stats == 4  # t = 1000, 1005, 1010, 1015


def test_poll_interval_uses_the_monotonic_clock_by_default(tmp_path: Path) -> None:
    """No clock given: the real one. Two immediate calls with a long interval stat once."""
    path = tmp_path / "stop.json"
    reader = StopSignal(path, poll_interval=3600.0)
    assert reader.should_stop() is False
    write(path, PAYLOAD)
    assert reader.should_stop() is False  # within the interval: answered from memory
    assert reader.read() is not None and reader.should_stop() is True


def test_bad_arguments_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="poll_every"):
        StopSignal("x", poll_every=0)
    with pytest.raises(ValueError, match="poll_interval"):
        StopSignal("x", poll_interval=float("nan"))
    with pytest.raises(ValueError, match="NUL"):
        StopSignal("stop\x00.json")


def test_parse_signal_is_total() -> None:
    for data in BAD_CONTENTS.values():
        signal, problem = parse_signal(data)
        assert signal is None and problem


def test_client_imports_with_the_standard_library_only(tmp_path: Path) -> None:
    """-I -S: no site-packages at all, so any non-stdlib import would fail here."""
    code = textwrap.dedent(
        f"""
        import importlib.util, json, sys
        spec = importlib.util.spec_from_file_location("awclient", {str(CLIENT_FILE)!r})
        mod = importlib.util.module_from_spec(spec)
        sys.modules["awclient"] = mod
        spec.loader.exec_module(mod)
        open({str(tmp_path / "s.json")!r}, "w").write(json.dumps({{"stop": True, "reason": "r"}}))
        assert mod.StopSignal({str(tmp_path / "s.json")!r}).should_stop()
        heavy = [m for m in ("torch", "numpy", "weightwatcher", "alphawatch") if m in sys.modules]
        assert not heavy, heavy
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_importing_alphawatch_client_pulls_in_nothing_heavy() -> None:
    code = (
        "import alphawatch.client, sys; "
        "print(sorted(m for m in ('torch', 'numpy', 'weightwatcher') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- a reader in a tight loop never sees a torn file ------------------------------------

WRITER = textwrap.dedent(
    """
    import json, os, sys
    path, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def payload(i):
        # Sizes vary, and the fields cross-check each other, so a torn or mixed read shows.
        return {"stop": True, "reason": "x" * (i % 97) + f"#{i}", "step": i, "value": i + 0.5,
                "threshold": 2.0, "network": "actor", "metric": "alpha", "version": 1}

    def replace_write(i):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            json.dump(payload(i), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    if mode == "daemon":
        from alphawatch.client import signal_from_object
        from alphawatch.service.stop_signal import write_stop_signal

        def as_signal(payload):
            return signal_from_object(payload)[0]

    for i in range(count):
        if mode == "replace":
            replace_write(i)
        else:  # the daemon's writer never overwrites: write, then clear, as `signal clear` does
            assert write_stop_signal(path, as_signal(payload(i))) is True
            os.unlink(path)
    print("done", count)
    """
)


@pytest.mark.parametrize("mode", ["replace", "daemon"])  # os.replace; the daemon's os.link writer
def test_reader_never_sees_a_torn_signal_while_a_writer_rewrites_it(tmp_path: Path, mode: str) -> None:
    """The reader stops the race once it has read VERSIONS different versions of the file (a
    fixed count of writes took 15-40 s here, most of it fsync, and proved no more)."""
    versions = 300
    path = tmp_path / "stop.json"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), mode, str(10**6)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader = StopSignal(path)
    seen: set[int] = set()
    reads = 0
    deadline = time.monotonic() + 120
    with warnings.catch_warnings():
        warnings.simplefilter("error", StopSignalWarning)  # any unreadable content fails the test
        while writer.poll() is None and len(seen) < versions and time.monotonic() < deadline:
            signal = reader.read()
            reads += 1
            if signal is None:
                continue
            assert signal.stop is True
            marker = int(signal.reason.split("#")[1])
            assert signal.reason == "x" * (marker % 97) + f"#{marker}"
            assert (signal.step, signal.value) == (marker, marker + 0.5)
            seen.add(marker)
    still_writing = writer.poll() is None  # it did not stop on an error of its own
    writer.kill()
    _, err = writer.communicate()
    assert still_writing, err
    # The reader really raced the writer: it saw many different versions of the file.
    assert len(seen) >= versions, (len(seen), reads)
