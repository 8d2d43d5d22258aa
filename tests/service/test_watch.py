"""The watcher over real files and real watchdog observers (inotify and polling).

Most tests turn the watcher by hand at the times of a fake clock (`Stepped`): it is not
started, and each `at(t)` runs one turn of its loop at fake time t. So "nothing was
emitted yet" is a fact about the code at that time, not a guess about how far a busy
machine got during a sleep. Their candidates come from the watcher's own rescans (the
rule that also covers polling, NFS and events inotify dropped) or, for inotify's
close-after-write rule, from real inotify events that the test waits for explicitly.
A few tests run the real loop on the real clock with both observers, end to end.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from alphawatch.config import RunConfig, WatchConfig
from alphawatch.service.observers import choose_observer, filesystem_type, needs_polling
from alphawatch.service.watch import RunWatcher

from tests.service.conftest import QUIET, Emitted, sac_bytes, slow_write
from tests.support import wait_until

OBSERVERS = ["inotify", "polling"]
RESCAN = 0.1  # with steps at least this far apart, every step rescans
STALE = 10 * QUIET  # the watcher's stale hold: max(rescan interval, 10 x quiet period)


class _SeenLogger:
    """The watcher's logger: keeps the paths of `checkpoint_seen` (called from observer threads)."""

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    def info(self, event: str, **fields: object) -> None:
        if event == "checkpoint_seen":
            self.seen.append(str(fields["path"]))

    def warning(self, event: str, **fields: object) -> None:
        pass

    error = debug = warning


class Stepped:
    """A RunWatcher turned by hand at the times of a fake clock (see the module docstring)."""

    def __init__(self, folder: Path, observer: str = "polling", recursive: bool = False) -> None:
        cfg = WatchConfig(
            observer=observer,
            polling_interval_seconds=3600.0,  # the polling observer stays silent: rescans find files
            quiet_period_seconds=QUIET,
            rescan_interval_seconds=RESCAN,
        )
        self.emitted = Emitted()
        self.seen: list[str] = []  # `checkpoint_seen` paths, in the order the watcher logged them
        run = RunConfig(watch=folder, name="run1", recursive=recursive)
        self.watcher = RunWatcher(run, cfg, self.emitted, logger=_SeenLogger(self.seen))
        assert self.watcher.stale_hold == STALE
        self.now = 0.0

    def at(self, t: float) -> list[Path]:
        """One turn of the loop at fake time `t`; the paths emitted so far."""
        assert t >= self.now, "the clock is monotonic"
        self.now = t
        self.watcher.step(t)
        return self.emitted.paths()

    def events_delivered(self, folder: Path) -> None:
        """Wait until the observer has handed on every event so far. Watchdog hands events on
        in order, so once a fresh marker file's creation has been seen, all before it were."""
        marker = folder / f"marker-{time.monotonic_ns()}"
        marker.touch()
        wait_until(lambda: str(marker) in self.seen, what="the observer to hand on the marker's event")
        marker.unlink()


@pytest.fixture
def stepped(tmp_path: Path):
    made: list[Stepped] = []

    def make(folder: Path | None = None, **kw: object) -> Stepped:
        folder = folder or tmp_path / "ckpts"
        folder.mkdir(exist_ok=True)
        made.append(Stepped(folder, **kw))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for s in made:
        s.watcher.stop()


# ------------------------------------------------------------------ fake clock: when a file counts


def test_a_file_still_being_written_is_emitted_once_and_only_after_the_last_chunk(stepped):
    s = stepped()
    data = sac_bytes(step=100, hidden=128)
    target = s.watcher.root / "step_100.pt"
    s.at(0.0)
    t = 0.0
    size = -(-len(data) // 12)
    with open(target, "wb") as fh:
        for i in range(0, len(data), size):  # 12 chunks, each pause shorter than the quiet period
            fh.write(data[i : i + size])
            fh.flush()
            t += 0.9 * QUIET
            assert s.at(t) == []  # the change is seen: the quiet period starts again
    assert s.at(t + QUIET - 0.01) == []
    assert s.at(t + QUIET) == [target]
    assert s.at(t + STALE + 1) == [target]  # once
    cand = s.emitted.items[0]
    assert cand.step == 100 and cand.note is None
    assert cand.identity.size == len(data) == target.stat().st_size


def test_pauses_longer_than_the_quiet_period_do_not_emit_an_incomplete_file(stepped):
    """The structural check (no zip central directory yet) holds it back."""
    s = stepped()
    data = sac_bytes(step=7, hidden=64)
    target = s.watcher.root / "model_7.pt"
    s.at(0.0)
    t = 0.0
    third = len(data) // 3
    with open(target, "wb") as fh:
        for chunk in (data[:third], data[third : 2 * third]):
            fh.write(chunk)
            fh.flush()
            t += 0.1
            assert s.at(t) == []  # the change is seen
            t += 3 * QUIET
            assert s.at(t) == []  # quiet for three periods, but not whole
        fh.write(data[2 * third :])
    t += 0.1
    assert s.at(t) == []
    assert s.at(t + QUIET) == [target]


def test_inotify_waits_for_close_after_write_even_when_quiet_and_whole(stepped):
    """A writer that has put down a structurally complete file but still holds it open (it
    may append or rewrite): with inotify the watcher waits for IN_CLOSE_WRITE."""
    s = stepped(observer="inotify")
    s.at(0.0)
    assert s.watcher.observer_kind == "inotify"
    target = s.watcher.root / "step_8.pt"
    with open(target, "wb") as fh:
        fh.write(sac_bytes(step=8))
        fh.flush()
        s.events_delivered(s.watcher.root)  # the watcher knows a writer has it open
        s.at(1.0)
        assert s.at(1.0 + 5 * QUIET) == []  # quiet and complete, but not closed yet
    s.events_delivered(s.watcher.root)  # ... and now that it was closed after writing
    assert s.at(1.0 + 5 * QUIET + 0.1) == [target]
    assert s.emitted.items[0].note is None


def test_inotify_a_temp_file_renamed_inside_a_checkpoint_folder_is_no_open_writer(stepped):
    """safetensors' save_file (what the HF Trainer calls) writes `.tmpXXXX` inside the folder
    and renames it to model.safetensors; the rename ends that writer (it used not to: the
    folder then waited for the stale hold, 60 s with the default rescan interval)."""
    s = stepped(observer="inotify")
    s.at(0.0)
    ckpt = s.watcher.root / "checkpoint-500"
    ckpt.mkdir()
    s.events_delivered(s.watcher.root)  # the observer watches inside the new folder from here on
    _safetensors_file(ckpt / "model.safetensors")
    (ckpt / "config.json").write_text("{}")
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 500}))
    s.events_delivered(s.watcher.root)
    s.at(1.0)
    assert s.at(1.0 + QUIET) == [ckpt]


def test_garbage_goes_after_the_quiet_period_and_truncated_files_after_the_stale_hold(stepped, tmp_path):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    data = sac_bytes(step=3)
    (folder / "cut_3.pt").write_bytes(data[: len(data) // 2])
    (folder / "garbage_4.pt").write_bytes(b"this is not a checkpoint\n" * 10)
    (folder / "empty_5.pt").write_bytes(b"")
    s = stepped(folder)
    assert s.at(0.0) == []  # the startup scan finds them
    assert s.at(QUIET - 0.01) == []
    # bytes that can never become a checkpoint: handed on once quiet, so the failure is reported at once
    assert [p.name for p in s.at(QUIET)] == ["garbage_4.pt"]
    assert s.emitted.items[0].note is None
    # maybe still being written: held back for the whole stale hold (a writer may have paused)
    assert [p.name for p in s.at(STALE - 0.01)] == ["garbage_4.pt"]
    assert sorted(p.name for p in s.at(STALE)) == ["cut_3.pt", "empty_5.pt", "garbage_4.pt"]
    assert [c.note for c in s.emitted.items[1:]] == ["incomplete", "incomplete"]


def test_temp_names_and_plain_folders_are_never_candidates(stepped):
    s = stepped()
    folder = s.watcher.root
    data = sac_bytes(step=1)
    for name in ("a.tmp", "b.part", ".hidden.pt", "c.pt~"):
        (folder / name).write_bytes(data)
    (folder / "tmp-checkpoint-9").mkdir()
    (folder / "tmp-checkpoint-9" / "trainer_state.json").write_text("{}")
    (folder / "logs").mkdir()  # a folder that is not a checkpoint: not a candidate at all
    (folder / "logs" / "events.out").write_bytes(b"x" * 100)
    (folder / "real_1.pt").write_bytes(data)
    s.at(0.0)
    assert s.at(QUIET) == [folder / "real_1.pt"]
    assert s.at(STALE + QUIET) == [folder / "real_1.pt"]
    assert s.seen == [str(folder / "real_1.pt")]
    never = ["logs/events.out", "logs", "tmp-checkpoint-9/trainer_state.json", ".tmp-step=200.ckpt.part"]
    for path in never:
        assert s.watcher.candidate_for(folder / path) is None, path


def test_startup_scan_emits_existing_checkpoints(stepped, tmp_path):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for step in (10, 20, 30):
        (folder / f"step_{step}.pt").write_bytes(sac_bytes(step=step, hidden=8))
    s = stepped(folder)
    s.at(0.0)
    s.at(QUIET)
    assert sorted(c.step for c in s.emitted.items) == [10, 20, 30]


def test_symlink_outside_is_flagged_and_in_tree_link_is_not_doubled(stepped, tmp_path):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    outside = tmp_path / "secret.pt"
    outside.write_bytes(sac_bytes(step=5))
    (folder / "step_1.pt").write_bytes(sac_bytes(step=1))
    (folder / "evil.pt").symlink_to(outside)
    (folder / "last.ckpt").symlink_to(folder / "step_1.pt")  # like Lightning's save_last="link"
    s = stepped(folder)
    s.at(0.0)
    s.at(QUIET)
    s.at(STALE + QUIET)
    by_path = {c.path.name: c for c in s.emitted.items}
    assert len(s.emitted.items) == 2 and set(by_path) == {"step_1.pt", "evil.pt"}
    assert by_path["evil.pt"].note == "outside_watch" and by_path["step_1.pt"].note is None


def _safetensors_file(path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.randn(16, 8), "fc.bias": torch.zeros(16)}, str(path))


def test_hf_checkpoint_folder_waits_for_trainer_state(stepped):
    s = stepped()
    ckpt = s.watcher.root / "checkpoint-500"
    ckpt.mkdir()
    _safetensors_file(ckpt / "model.safetensors")
    (ckpt / "config.json").write_text("{}")
    s.at(0.0)
    assert s.at(QUIET) == []  # the Trainer writes trainer_state.json last
    assert s.at(STALE + QUIET) == []  # not even after the stale hold: a folder is never forced
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 500}))
    t = STALE + QUIET + 0.1
    s.at(t)
    assert s.at(t + QUIET) == [ckpt] and s.emitted.items[0].step == 500


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_dcp_folder_waits_for_metadata_renamed_last(stepped, tmp_path):
    import torch
    import torch.distributed.checkpoint as dcp

    s = stepped()
    staging = tmp_path / "staging"
    dcp.save({"model": {"fc.weight": torch.randn(16, 16)}}, checkpoint_id=str(staging))
    target = s.watcher.root / "step_300"
    target.mkdir()
    for f in staging.iterdir():
        if f.name != ".metadata":
            shutil.copy(f, target / f.name)
    s.at(0.0)
    assert s.at(QUIET) == [] and s.at(STALE + QUIET) == []
    shutil.copy(staging / ".metadata", target / ".metadata.tmp")
    os.replace(target / ".metadata.tmp", target / ".metadata")
    t = STALE + QUIET + 0.1
    s.at(t)
    assert s.at(t + QUIET) == [target] and s.emitted.items[0].step == 300


def test_rewritten_file_is_emitted_again_with_its_new_identity(stepped):
    s = stepped()
    target = s.watcher.root / "last_1.pt"
    target.write_bytes(sac_bytes(step=1, hidden=8))
    s.at(0.0)
    assert s.at(QUIET) == [target]
    target.write_bytes(sac_bytes(step=1, hidden=16))
    s.at(1.0)
    assert s.at(1.0 + QUIET) == [target, target]
    assert s.emitted.items[0].identity != s.emitted.items[1].identity


# ------------------------------------------------------------------ real clock, real observers, end to end


@pytest.mark.parametrize("observer", OBSERVERS)
def test_slow_writer_is_emitted_after_the_last_chunk(tmp_path, make_watcher, observer):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    watcher, emitted = make_watcher(folder, observer=observer)
    wait_until(lambda: watcher.status()[0] and watcher.observer_kind == observer)
    data = sac_bytes(step=100, hidden=128)
    target = folder / "step_100.pt"
    slow_write(target, data, chunks=4, seconds=4 * 0.6 * QUIET)  # pauses shorter than the quiet period
    finished = time.monotonic()
    wait_until(lambda: emitted.items, timeout=10)
    cand = emitted.items[0]
    assert cand.path == target and cand.step == 100 and cand.identity.size == len(data)
    assert emitted.times[0] >= finished  # never before the writer was done


@pytest.mark.parametrize("observer", OBSERVERS)
def test_rename_into_place_uses_the_destination(tmp_path, make_watcher, observer):
    """No periodic rescan during the test (30 s): only the observer's moved event finds it."""
    folder = tmp_path / "ckpts"
    folder.mkdir()
    watcher, emitted = make_watcher(folder, observer=observer, rescan=30.0)
    wait_until(lambda: watcher.observer_kind)
    tmp = folder / ".tmp-epoch=1-step=200.ckpt.part"
    tmp.write_bytes(sac_bytes(step=200))
    os.replace(tmp, folder / "epoch=1-step=200.ckpt")
    wait_until(lambda: emitted.items)
    assert emitted.paths() == [folder / "epoch=1-step=200.ckpt"]
    assert emitted.items[0].step == 200


@pytest.mark.parametrize("observer", ["polling"])  # inotify: see the stepped test above
def test_events_inside_a_checkpoint_folder_count_for_the_folder(tmp_path, make_watcher, observer):
    """No periodic rescan during the test: the observer's events for files written inside
    `checkpoint-500/` must be mapped to the folder, which is emitted once whole."""
    folder = tmp_path / "ckpts"
    folder.mkdir()
    watcher, emitted = make_watcher(folder, observer=observer, rescan=30.0)
    wait_until(lambda: watcher.observer_kind)
    ckpt = folder / "checkpoint-500"
    ckpt.mkdir()
    _safetensors_file(ckpt / "model.safetensors")
    (ckpt / "config.json").write_text("{}")
    written = time.monotonic()
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 500}))
    wait_until(lambda: emitted.items, timeout=10)  # well under the stale hold (30 s here)
    assert emitted.paths() == [ckpt] and emitted.items[0].step == 500
    assert emitted.times[0] >= written


def test_folder_created_later_then_deleted_and_recreated(tmp_path, make_watcher):
    folder = tmp_path / "later"
    watcher, emitted = make_watcher(folder)
    wait_until(lambda: watcher.status()[0])
    assert "waiting" in watcher.status()[1]
    folder.mkdir()
    (folder / "step_1.pt").write_bytes(sac_bytes(step=1, hidden=8))
    wait_until(lambda: len(emitted.items) == 1)
    shutil.rmtree(folder)
    wait_until(lambda: "waiting" in watcher.status()[1], what="the watcher to notice the folder is gone")
    folder.mkdir()
    (folder / "step_2.pt").write_bytes(sac_bytes(step=2, hidden=8))
    wait_until(lambda: len(emitted.items) == 2)
    assert [c.step for c in emitted.items] == [1, 2]
    assert watcher.status()[0]


def test_recursive_finds_nested_checkpoints(tmp_path, make_watcher):
    folder = tmp_path / "ckpts"
    (folder / "seed_0").mkdir(parents=True)
    watcher, emitted = make_watcher(folder, recursive=True)
    wait_until(lambda: watcher.observer_kind)
    (folder / "seed_0" / "step_4.pt").write_bytes(sac_bytes(step=4, hidden=8))
    wait_until(lambda: emitted.items)
    assert emitted.paths() == [folder / "seed_0" / "step_4.pt"]


# ------------------------------------------------------------------ observer choice


def test_filesystem_type_picks_the_longest_mount_prefix(tmp_path):
    base = os.path.realpath(tmp_path)
    for sub in ("nfs", "ssh box", "host"):
        (tmp_path / sub).mkdir()
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        f"40 22 0:35 / {base}/nfs rw,relatime shared:2 - nfs4 server:/export rw,vers=4.2\n"
        f"41 22 0:36 / {base}/ssh\\040box rw shared:3 - fuse.sshfs me@host:/ rw\n"
        f"42 22 0:37 / {base}/host rw - 9p hostshare rw\n"
    )
    assert filesystem_type(tmp_path / "nfs" / "not-yet" / "deeper", str(info)) == "nfs4"
    assert filesystem_type(tmp_path / "ssh box", str(info)) == "fuse.sshfs"
    assert filesystem_type(tmp_path / "host", str(info)) == "9p"
    assert filesystem_type(tmp_path / "hostile", str(info)) == "ext4"  # prefix, not substring
    assert needs_polling("nfs4") and needs_polling("fuse.sshfs") and needs_polling("9p")
    assert not needs_polling("ext4") and not needs_polling("tmpfs") and not needs_polling("overlay")


def test_mount_table_of_macos_and_native_observers_off_linux(tmp_path, monkeypatch):
    from alphawatch.service import observers

    table = observers.mount_table(
        "/dev/disk3s1s1 on / (apfs, sealed, local, read-only, journaled)\n"
        "map auto_home on /System/Volumes/Data/home (autofs, automounted, nobrowse)\n"
        "//alice@nas/share on /Volumes/share (smbfs, nodev, nosuid, mounted by alice)\n"
        "nas:/export/ckpt on /Volumes/ckpt with spaces (nfs, asynchronous)\n")
    assert table[0] == ("/", "apfs") and ("/Volumes/share", "smbfs") in table
    assert ("/Volumes/ckpt with spaces", "nfs") in table
    assert needs_polling("smbfs") and needs_polling("nfs") and not needs_polling("apfs")
    monkeypatch.setattr(observers.sys, "platform", "darwin")
    choice = observers.choose_observer("auto", tmp_path)
    fstype = filesystem_type(tmp_path)
    assert choice.kind == ("polling" if needs_polling(fstype) else "native")  # FSEvents, not polling
    from watchdog.observers import Observer

    assert isinstance(observers.make_observer("native", 1.0), Observer)


def test_choose_observer_respects_forced_values_and_detects_local_fs(tmp_path):
    assert choose_observer("polling", tmp_path).kind == "polling"
    assert choose_observer("inotify", tmp_path).kind == "inotify"
    auto = choose_observer("auto", tmp_path)
    fstype = filesystem_type(tmp_path)
    assert auto.kind == ("polling" if needs_polling(fstype) else "inotify")
    assert str(fstype) in auto.reason


def test_rescan_interval_0_scans_only_when_the_folder_is_armed(tmp_path):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    (folder / "step_1.pt").write_bytes(sac_bytes(step=1, hidden=8))
    cfg = WatchConfig(observer="polling", polling_interval_seconds=3600.0, quiet_period_seconds=QUIET,
                      rescan_interval_seconds=0.0)
    emitted = Emitted()
    watcher = RunWatcher(RunConfig(watch=folder, name="run1"), cfg, emitted)
    try:
        watcher.step(0.0)  # arms the folder: the startup scan finds step_1
        (folder / "step_2.pt").write_bytes(sac_bytes(step=2, hidden=8))
        for t in (1.0, 2.0, 3.0, 50.0):  # the silent observer reports nothing; no rescan runs
            watcher.step(t)
        assert emitted.paths() == [folder / "step_1.pt"]
    finally:
        watcher.stop()
