"""Bad inputs are reported with a reason and the file name, never a raw exception."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from alphawatch.checkpoints import load
from alphawatch.errors import REASONS, CheckpointError

from tests import factories


def _load_error(path: Path, **kw) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        load(path, **kw)
    assert str(path) in info.value.message
    assert info.value.reason in REASONS
    return info.value


def test_zero_byte(tmp_path: Path) -> None:
    (tmp_path / "z.pt").write_bytes(b"")
    assert _load_error(tmp_path / "z.pt").reason == "empty"


def test_text_named_pt(tmp_path: Path) -> None:
    (tmp_path / "notes.pt").write_text("hello, this is not a checkpoint\n")
    assert _load_error(tmp_path / "notes.pt").reason == "not_a_checkpoint"


def test_directory_named_pt(tmp_path: Path) -> None:
    (tmp_path / "model.pt").mkdir()
    assert _load_error(tmp_path / "model.pt").reason == "is_directory"


def test_no_weights(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "counts": torch.arange(10), "name": "x"}, tmp_path / "nw.pt")
    assert _load_error(tmp_path / "nw.pt").reason == "no_weights"
    torch.save({"optimizer": factories.optimizer_state_dict(factories.mlp([2, 2]))}, tmp_path / "opt.pt")
    assert _load_error(tmp_path / "opt.pt").reason == "no_weights"


def test_meta_device_tensors_are_no_weights(tmp_path: Path) -> None:
    """A model built on the 'meta' device and saved unmaterialized: a clear refusal, not a bug."""
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    torch.save(model.state_dict(), tmp_path / "meta.pt")
    error = _load_error(tmp_path / "meta.pt")
    assert error.reason == "no_weights"
    assert "meta" in error.message


def test_meta_tensors_next_to_real_weights_are_left_out(tmp_path: Path) -> None:
    real = factories.mlp([8, 16, 4]).state_dict()
    torch.save({**real, "lazy.weight": torch.empty(16, 16, device="meta")}, tmp_path / "mixed.pt")
    ckpt = load(tmp_path / "mixed.pt")
    assert set(ckpt.networks["model"]) == set(real)
    assert any("meta" in note for note in ckpt.notes)


def test_only_biases_is_no_weights(tmp_path: Path) -> None:
    sd = factories.mlp([8, 16, 4]).state_dict()
    torch.save({k: v for k, v in sd.items() if k.endswith("bias")}, tmp_path / "biases.pt")
    error = _load_error(tmp_path / "biases.pt")
    assert error.reason == "no_weights"
    assert "1-D" in error.message


def test_relative_path_error_names_the_file_without_an_arrow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken.pt").write_bytes(b"PK\x03\x04garbage")
    monkeypatch.chdir(tmp_path)
    error = _load_error(Path("broken.pt"))
    assert error.message.startswith("broken.pt: ")
    assert "->" not in error.message


def test_patterns_matching_nothing(sac_file: Path) -> None:
    assert _load_error(sac_file, network_patterns={"x": ["nothing.*"]}).reason == "no_weights"


def test_symlink_out_of_root_is_refused(tmp_path: Path, sac_file: Path) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    outside = tmp_path / "elsewhere" / "secret.pt"
    outside.parent.mkdir()
    shutil.copy(sac_file, outside)
    (watched / "last.ckpt").symlink_to(outside)
    err = _load_error(watched / "last.ckpt", root=watched)
    assert err.reason == "outside_watch"
    # a relative link climbing out, and a link to a folder outside, are refused too
    (watched / "up.pt").symlink_to(Path("..") / "elsewhere" / "secret.pt")
    assert _load_error(watched / "up.pt", root=watched).reason == "outside_watch"
    (watched / "dir").symlink_to(outside.parent, target_is_directory=True)
    assert _load_error(watched / "dir" / "secret.pt", root=watched).reason == "outside_watch"
    # without a root (the CLI on an explicit path) the same link is followed
    assert load(watched / "last.ckpt").step == 300


def test_symlink_inside_root_is_followed(tmp_path: Path) -> None:
    path = factories.save_sac_checkpoint(tmp_path / "epoch=1-step=700.ckpt", step=None, hidden=8)
    (tmp_path / "last.ckpt").symlink_to(path.name)
    ckpt = load(tmp_path / "last.ckpt", root=tmp_path)
    assert ckpt.path == str(tmp_path / "last.ckpt")
    assert ckpt.step == 700  # taken from the link target's name


def test_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "gone.pt").symlink_to(tmp_path / "missing.pt")
    assert _load_error(tmp_path / "gone.pt").reason == "unreadable"


def _as_nobody(fn, *args) -> str:
    """Run fn(*args) -> str in a forked child that dropped root (root ignores mode bits).

    Forked rather than exec'd: the interpreter lives under /root, which `nobody` cannot
    read, and everything the call imports lazily has already been imported by the parent.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            os.setgid(65534)
            os.setuid(65534)
            out = fn(*args)
        except BaseException as exc:  # report, never fall back into the test runner
            out = f"child failed: {type(exc).__name__}: {exc}"
        os.write(write_fd, out.encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        result = fh.read().decode()
    os.waitpid(pid, 0)
    return result


def _try_load(path: Path) -> str:
    from alphawatch.checkpoints import is_complete

    if is_complete(path):
        return "is_complete said True"
    try:
        load(path)
    except CheckpointError as exc:
        return f"{exc.reason} {exc.message}"
    return "loaded"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions")
def test_permission_denied(sac_file: Path, tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="aw-perm-"))
    try:
        os.chmod(folder, 0o755)
        path = folder / "locked.pt"
        shutil.copy(sac_file, path)
        load(path)  # warm every lazy import while still allowed to read them
        os.chmod(path, 0o000)
        out = _as_nobody(_try_load, path) if os.geteuid() == 0 else _try_load(path)
        assert out.startswith("unreadable "), out
        assert str(path) in out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _write_format(fmt: str, path: Path) -> Path:
    obj = factories.sac_checkpoint_dict(3, hidden=8)
    if fmt == "zip":
        torch.save(obj, path)
    elif fmt == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        from safetensors.torch import save_file

        sds = factories.sac_state_dicts(hidden=8)
        save_file({f"{n}.{k}": v for n, sd in sds.items() for k, v in sd.items()}, str(path))
    return path


@pytest.mark.parametrize("fmt", ["zip", "legacy", "safetensors"])
def test_corrupted_bytes_never_escape_as_raw_exceptions(fmt: str, tmp_path: Path) -> None:
    """Flip bytes all over a real checkpoint: either it loads or it is a CheckpointError."""
    data = bytearray(_write_format(fmt, tmp_path / "src").read_bytes())
    rng = random.Random(0)
    positions = [rng.randrange(len(data)) for _ in range(30)] + list(range(0, 200, 9))
    for i, pos in enumerate(positions):
        broken = bytearray(data)
        broken[pos] ^= 0xFF
        path = tmp_path / f"flip_{i}.pt"
        path.write_bytes(bytes(broken))
        try:
            load(path)
        except CheckpointError as exc:
            assert str(path) in exc.message
            assert exc.reason != "internal_error", exc.message
        path.unlink()


@pytest.mark.parametrize("fmt", ["zip", "legacy", "safetensors"])
def test_every_cut_is_truncated(fmt: str, tmp_path: Path, cut) -> None:
    src = _write_format(fmt, tmp_path / "src")
    size = src.stat().st_size
    # (a file cut inside its first 14 bytes has no recognisable signature: not_a_checkpoint)
    for n in sorted({20, 100, size // 3, size // 2, size - 30, size - 1}):
        assert _load_error(cut(src, n)).reason == "truncated", n


def test_missing_zip_member_is_reported(sac_file: Path, tmp_path: Path) -> None:
    import zipfile

    src = zipfile.ZipFile(sac_file)
    path = tmp_path / "missing_member.pt"
    with zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("/data/0"):
                dst.writestr(info, src.read(info))
    assert _load_error(path).reason in ("truncated", "not_a_checkpoint")
