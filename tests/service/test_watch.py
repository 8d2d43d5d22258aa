"""The watcher over real files and real watchdog observers (inotify and polling)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from alphawatch.service.observers import choose_observer, filesystem_type, needs_polling

from tests.service.conftest import QUIET, sac_bytes, slow_write
from tests.support import wait_until

OBSERVERS = ["inotify", "polling"]


@pytest.mark.parametrize("observer", OBSERVERS)
def test_slow_writer_is_emitted_once_and_only_after_the_last_chunk(tmp_path, make_watcher, observer):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    watcher, emitted = make_watcher(folder, observer=observer)
    wait_until(lambda: watcher.status()[0] and watcher.observer_kind == observer)
    data = sac_bytes(step=100, hidden=128)
    target = folder / "step_100.pt"
    # 12 chunks over ~4 s: every pause (0.33 s) is shorter than the quiet period, but the
    # file is incomplete (no zip central directory) during the whole write.
    slow_write(target, data, chunks=12, seconds=4.0)
    finished = time.monotonic()
    wait_until(lambda: emitted.items, timeout=10)
    time.sleep(3 * QUIET)
    assert len(emitted.items) == 1
    cand = emitted.items[0]
    assert cand.path == target and cand.step == 100 and cand.note is None
    assert cand.identity.size == len(data) == target.stat().st_size
    assert emitted.times[0] >= finished  # never before the writer was done


def test_inotify_waits_for_close_after_write_even_when_quiet_and_whole(tmp_path, make_watcher):
    """A writer that has put down a structurally complete file but still holds it open
    (it may append or rewrite): with inotify the watcher waits for IN_CLOSE_WRITE."""
    folder = tmp_path / "ckpts"
    folder.mkdir()
    watcher, emitted = make_watcher(folder, observer="inotify", rescan=30.0)
    wait_until(lambda: watcher.observer_kind == "inotify")
    with open(folder / "step_8.pt", "wb") as fh:
        fh.write(sac_bytes(step=8))
        fh.flush()
        time.sleep(5 * QUIET)
        assert emitted.items == []  # quiet and complete, but not closed yet
    closed = time.monotonic()
    wait_until(lambda: emitted.items)
    assert emitted.times[0] >= closed and emitted.items[0].note is None


def test_slow_writer_with_long_pauses_is_not_emitted_early(tmp_path, make_watcher):
    """Pauses longer than the quiet period: the structural check still holds it back."""
    folder = tmp_path / "ckpts"
    folder.mkdir()
    watcher, emitted = make_watcher(folder, observer="polling", rescan=30.0)
    wait_until(lambda: watcher.observer_kind)
    data = sac_bytes(step=7, hidden=64)
    slow_write(folder / "model_7.pt", data, chunks=3, seconds=3 * (QUIET * 3))
    finished = time.monotonic()
    wait_until(lambda: emitted.items, timeout=10)
    assert emitted.times[0] >= finished and len(emitted.items) == 1


@pytest.mark.parametrize("observer", OBSERVERS)
def test_rename_into_place_uses_the_destination(tmp_path, make_watcher, observer):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    watcher, emitted = make_watcher(folder, observer=observer)
    wait_until(lambda: watcher.observer_kind)
    tmp = folder / ".tmp-epoch=1-step=200.ckpt.part"
    tmp.write_bytes(sac_bytes(step=200))
    time.sleep(2 * QUIET)
    assert emitted.items == []  # a dotfile / *.part temp name is never a candidate
    os.replace(tmp, folder / "epoch=1-step=200.ckpt")
    wait_until(lambda: emitted.items)
    time.sleep(2 * QUIET)
    assert emitted.paths() == [folder / "epoch=1-step=200.ckpt"]
    assert emitted.items[0].step == 200


def _safetensors_file(path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.randn(16, 8), "fc.bias": torch.zeros(16)}, str(path))


@pytest.mark.parametrize("observer", OBSERVERS)
def test_hf_checkpoint_folder_waits_for_trainer_state(tmp_path, make_watcher, observer):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    watcher, emitted = make_watcher(folder, observer=observer)
    wait_until(lambda: watcher.observer_kind)
    ckpt = folder / "checkpoint-500"
    ckpt.mkdir()
    _safetensors_file(ckpt / "model.safetensors")
    (ckpt / "config.json").write_text("{}")
    time.sleep(4 * QUIET)
    assert emitted.items == []  # the Trainer writes trainer_state.json last
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 500}))
    wait_until(lambda: emitted.items)
    time.sleep(2 * QUIET)
    assert emitted.paths() == [ckpt] and emitted.items[0].step == 500


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_dcp_folder_waits_for_metadata_renamed_last(tmp_path, make_watcher):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    watcher, emitted = make_watcher(folder)
    wait_until(lambda: watcher.observer_kind)
    import torch
    import torch.distributed.checkpoint as dcp

    staging = tmp_path / "staging"
    dcp.save({"model": {"fc.weight": torch.randn(16, 16)}}, checkpoint_id=str(staging))
    target = folder / "step_300"
    target.mkdir()
    for f in staging.iterdir():
        if f.name != ".metadata":
            shutil.copy(f, target / f.name)
    time.sleep(4 * QUIET)
    assert emitted.items == []
    shutil.copy(staging / ".metadata", target / ".metadata.tmp")
    os.replace(target / ".metadata.tmp", target / ".metadata")
    wait_until(lambda: emitted.items)
    assert emitted.paths() == [target] and emitted.items[0].step == 300


def test_temp_names_are_ignored(tmp_path, make_watcher):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    watcher, emitted = make_watcher(folder, rescan=0.5)
    wait_until(lambda: watcher.observer_kind)
    data = sac_bytes(step=1)
    for name in ("a.tmp", "b.part", ".hidden.pt", "c.pt~"):
        (folder / name).write_bytes(data)
    (folder / "tmp-checkpoint-9").mkdir()
    (folder / "tmp-checkpoint-9" / "trainer_state.json").write_text("{}")
    (folder / "logs").mkdir()  # a folder that is not a checkpoint: not a candidate at all
    (folder / "logs" / "events.out").write_bytes(b"x" * 100)
    (folder / "real_1.pt").write_bytes(data)
    wait_until(lambda: emitted.items)
    time.sleep(4 * QUIET)
    assert emitted.paths() == [folder / "real_1.pt"]
    assert watcher.candidate_for(folder / "logs" / "events.out") is None
    assert watcher.candidate_for(folder / "logs") is None
    assert watcher.candidate_for(folder / "tmp-checkpoint-9" / "trainer_state.json") is None


def test_startup_scan_emits_existing_checkpoints(tmp_path, make_watcher):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for step in (10, 20, 30):
        (folder / f"step_{step}.pt").write_bytes(sac_bytes(step=step, hidden=8))
    watcher, emitted = make_watcher(folder)
    wait_until(lambda: len(emitted.items) == 3)
    assert sorted(c.step for c in emitted.items) == [10, 20, 30]


def test_symlink_outside_is_flagged_and_in_tree_link_is_not_doubled(tmp_path, make_watcher):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    outside = tmp_path / "secret.pt"
    outside.write_bytes(sac_bytes(step=5))
    (folder / "step_1.pt").write_bytes(sac_bytes(step=1))
    (folder / "evil.pt").symlink_to(outside)
    (folder / "last.ckpt").symlink_to(folder / "step_1.pt")  # like Lightning's save_last="link"
    watcher, emitted = make_watcher(folder)
    wait_until(lambda: len(emitted.items) == 2)
    time.sleep(3 * QUIET)
    by_path = {c.path.name: c for c in emitted.items}
    assert set(by_path) == {"step_1.pt", "evil.pt"}
    assert by_path["evil.pt"].note == "outside_watch" and by_path["step_1.pt"].note is None


def test_truncated_files_wait_the_stale_hold_and_garbage_goes_at_once(tmp_path, make_watcher):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    data = sac_bytes(step=3)
    (folder / "cut_3.pt").write_bytes(data[: len(data) // 2])
    (folder / "garbage_4.pt").write_bytes(b"this is not a checkpoint\n" * 10)
    (folder / "empty_5.pt").write_bytes(b"")
    started = time.monotonic()
    watcher, emitted = make_watcher(folder, rescan=1.0)
    stale = watcher.stale_hold
    wait_until(lambda: len(emitted.items) == 3, timeout=stale + 15)
    by_path = {c.path.name: (c.note, t) for c, t in zip(emitted.items, emitted.times, strict=True)}
    # bytes that can never become a checkpoint: handed on after the quiet period, so the
    # failure is reported at once
    assert by_path["garbage_4.pt"][0] is None and by_path["garbage_4.pt"][1] < started + stale - 0.5
    # maybe still being written: held back for the whole stale hold (a writer may have paused)
    for name in ("cut_3.pt", "empty_5.pt"):
        assert by_path[name][0] == "incomplete" and by_path[name][1] >= started + stale - 0.2


def test_folder_created_later_then_deleted_and_recreated(tmp_path, make_watcher):
    folder = tmp_path / "later"
    watcher, emitted = make_watcher(folder)
    wait_until(lambda: watcher.status()[0])
    assert "waiting" in watcher.status()[1]
    folder.mkdir()
    (folder / "step_1.pt").write_bytes(sac_bytes(step=1, hidden=8))
    wait_until(lambda: len(emitted.items) == 1)
    shutil.rmtree(folder)
    time.sleep(2 * QUIET)
    folder.mkdir()
    (folder / "step_2.pt").write_bytes(sac_bytes(step=2, hidden=8))
    wait_until(lambda: len(emitted.items) == 2)
    assert [c.step for c in emitted.items] == [1, 2]
    assert watcher.status()[0]


def test_rewritten_file_is_emitted_again_with_its_new_identity(tmp_path, make_watcher):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    watcher, emitted = make_watcher(folder)
    wait_until(lambda: watcher.observer_kind)
    (folder / "last_1.pt").write_bytes(sac_bytes(step=1, hidden=8))
    wait_until(lambda: len(emitted.items) == 1)
    (folder / "last_1.pt").write_bytes(sac_bytes(step=1, hidden=16))
    wait_until(lambda: len(emitted.items) == 2)
    assert emitted.items[0].identity != emitted.items[1].identity


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
