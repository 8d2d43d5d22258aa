"""Failure 8: crafted files inflated the daemon's main process. A zip with 300,000 members
took its RSS from 38 to 219 MB; three safetensors files with 95 MB lying headers, re-parsed
on every tick, cost 75% of a core. The completeness check must read bounded memory and
judge an unchanged file once."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from alphawatch.service import watch as watch_module

from tests.factories import save_sac_checkpoint
from tests.faults.helpers import audit, proc_status
from tests.service.test_watch import STALE, Stepped

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

MEMBERS = 300_000


def write_many_member_zip(path: Path, members: int = MEMBERS, honest_count: bool = True) -> Path:
    """A stored (uncompressed) zip64 archive of `members` empty files, written directly."""
    local, central = bytearray(), bytearray()
    for i in range(members):
        name = f"m/{i}".encode()
        offset = len(local)
        local += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name),
                               0, 0, 0, 0, 0, offset) + name
    count = members if honest_count else 10
    cd_offset, cd_size = len(local), len(central)
    z64_offset = cd_offset + cd_size
    z64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, cd_size, cd_offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, z64_offset, 1)
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    path.write_bytes(bytes(local) + bytes(central) + z64 + locator + eocd)
    return path


def write_lying_safetensors(path: Path, header_mb: int = 95) -> Path:
    """A header of `header_mb` MB promising 4 GB of data the file does not have."""
    header = {"w": {"dtype": "F32", "shape": [1_000_000_000], "data_offsets": [0, 4_000_000_000]},
              "__metadata__": {"pad": "x" * (header_mb * 1_000_000)}}
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"\0" * 16)
    return path


_PEAK = """
import resource, sys
from pathlib import Path
from alphawatch.checkpoints import completeness
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
verdicts = [completeness(Path(p)) for p in sys.argv[1:]]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(" ".join(verdicts), (after - before) // 1024)
"""


def test_the_completeness_check_reads_crafted_files_in_bounded_memory(tmp_path: Path) -> None:
    files = [write_many_member_zip(tmp_path / "many.zip"),
             write_many_member_zip(tmp_path / "lying_count.pt", honest_count=False),
             write_lying_safetensors(tmp_path / "lying.safetensors")]
    done = subprocess.run([sys.executable, "-c", _PEAK, *map(str, files)], capture_output=True, text=True,
                          check=True, timeout=300)
    *verdicts, growth_mb = done.stdout.split()
    assert verdicts == ["invalid", "invalid", "incomplete"], done.stdout
    assert int(growth_mb) < 20, f"peak RSS grew by {growth_mb} MB"


def test_an_unchanged_file_is_judged_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ckpts"
    folder.mkdir()
    lying = [write_lying_safetensors(folder / f"lying_{i}.safetensors", header_mb=5) for i in range(3)]
    calls: list[Path] = []
    real = watch_module.completeness

    def counted(path: Path) -> str:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(watch_module, "completeness", counted)
    stepped = Stepped(folder)
    stepped.watcher._arm((0, 0))
    try:
        t = 0.0
        while t < STALE - 0.5:  # every tick of the stale hold: waiting, judged once
            assert stepped.at(t) == []
            t += 0.25
        assert sorted(calls) == sorted(lying)
        t = STALE + 1.0
        stepped.at(t)
        stepped.at(t + 1.0)  # handed on as incomplete, once, so each fails with its reason
        assert sorted(stepped.emitted.paths()) == sorted(lying)
        assert {c.note for c in stepped.emitted.items} == {"incomplete"}
        assert sorted(calls) == sorted(lying)
    finally:
        stepped.watcher._disarm()


def test_crafted_files_do_not_inflate_the_daemon(tmp_path: Path, daemon_factory: Any, figure: Any) -> None:
    watch = tmp_path / "ckpts"
    watch.mkdir()
    d = daemon_factory(watch)
    d.wait_event("worker_ready", timeout=120)
    before = proc_status(d.proc.pid)
    staged = tmp_path / "staged"
    staged.mkdir()
    crafted = [write_many_member_zip(staged / "many_members.pt"),
               *(write_lying_safetensors(staged / f"lying_{i}.safetensors") for i in range(3))]
    for path in crafted:
        path.rename(watch / path.name)
    good = save_sac_checkpoint(watch / "step_100.pt", step=100, hidden=32)
    written = {str(good): time.time()}
    rows = d.wait_rows(lambda rows: {r["path"]: r["status"] for r in rows}.get(str(watch / "many_members.pt"))
                       == "failed" and len(rows) == 5, timeout=120)
    failed = {r["path"]: r for r in rows if r["status"] == "failed"}
    assert failed[str(watch / "many_members.pt")]["reason"] == "not_a_checkpoint"
    time.sleep(3)  # a few more ticks with the lying headers in the folder
    after = proc_status(d.proc.pid)
    grew_mb = (after["hwm_kb"] - before["hwm_kb"]) / 1024
    assert grew_mb < 30, f"the main process's peak RSS grew by {grew_mb:.0f} MB"
    found = audit(d.state, written)
    assert (found.lost, found.duplicated) == (0, 0)
    figure("8 crafted files", f"a {MEMBERS:,}-member zip and three 95 MB lying safetensors headers "
           f"next to a good checkpoint; main peak RSS +{grew_mb:.0f} MB", found)
