"""core/atomic: temp names with the owner, no-clobber commits, preallocation, stale-temp removal."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import numpy as np
import pytest

from impeccable.core import atomic
from impeccable.core.atomic import AtomicFile, TargetAppeared, atomic_write, remove_stale_temps, temp_path
from impeccable.core.errors import OutputError


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_temp_file_sits_beside_the_target_hidden_and_named_after_its_owner(tmp_path):
    handle = AtomicFile(tmp_path / "out.npy", tag="scratch")
    name = handle.tmp.name
    assert handle.tmp.parent == tmp_path and name.startswith(".out.npy.scratch.") and name.endswith(".tmp")
    assert f".{os.getpid()}.{atomic._host()}." in name and atomic._TEMP_RE.match(name)
    handle.abort()
    assert _listing(tmp_path) == []


def test_commit_moves_the_result_into_place(tmp_path):
    with atomic_write(tmp_path / "a.bin", overwrite=False) as out:
        out.tmp.write_bytes(b"ours")
    assert _listing(tmp_path) == ["a.bin"] and (tmp_path / "a.bin").read_bytes() == b"ours"


@pytest.mark.parametrize("existing", ["file", "dangling symlink"])
def test_a_target_that_appeared_is_left_alone_and_the_result_kept_aside(tmp_path, existing):
    target = tmp_path / "out.npy"
    handle = AtomicFile(target)
    handle.tmp.write_bytes(b"ours")
    if existing == "file":
        target.write_bytes(b"theirs")
    else:
        target.symlink_to(tmp_path / "nowhere")
    with pytest.raises(TargetAppeared, match="appeared during the run") as info:
        handle.commit()
    kept = info.value.kept
    assert str(kept) in str(info.value) and "--overwrite" in str(info.value)
    assert kept.read_bytes() == b"ours" and kept.name == f"out.{os.getpid()}.npy"
    if existing == "file":
        assert target.read_bytes() == b"theirs"
    else:
        assert target.is_symlink() and not target.exists()
    assert sorted(_listing(tmp_path)) == sorted(["out.npy", kept.name])


def test_overwrite_replaces(tmp_path):
    target = tmp_path / "out.npy"
    target.write_bytes(b"old")
    with atomic_write(target, overwrite=True) as out:
        out.tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and _listing(tmp_path) == ["out.npy"]


@pytest.mark.parametrize("without", ["renameat2", "renameat2 and hard links"])
def test_no_clobber_also_where_the_filesystem_lacks_renameat2_or_links(tmp_path, monkeypatch, without):
    # Simulates filesystems (NFS, FUSE, SMB) that refuse the atomic primitives: only those calls are replaced.
    monkeypatch.setattr(atomic, "_renameat2", lambda src, dst: False)
    if "links" in without:
        def no_link(*args, **kwargs):
            raise OSError(errno.EPERM, "Operation not permitted")
        monkeypatch.setattr(atomic.os, "link", no_link)
    with atomic_write(tmp_path / "a.bin", overwrite=False) as out:
        out.tmp.write_bytes(b"ours")
    assert (tmp_path / "a.bin").read_bytes() == b"ours" and _listing(tmp_path) == ["a.bin"]
    handle = AtomicFile(tmp_path / "a.bin")
    handle.tmp.write_bytes(b"second")
    with pytest.raises(TargetAppeared):
        handle.commit()
    assert (tmp_path / "a.bin").read_bytes() == b"ours"


def test_abort_and_a_failing_block_leave_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic_write(tmp_path / "a.bin") as out:
            out.tmp.write_bytes(b"half")
            raise ValueError("boom")
    with pytest.raises(OutputError, match=r"^cannot write a\.bin \| received No space left on device"):
        with atomic_write(tmp_path / "a.bin"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert _listing(tmp_path) == []


def test_creating_in_a_missing_folder_is_one_line(tmp_path):
    with pytest.raises(OutputError, match="cannot create a file beside x.npy"):
        AtomicFile(tmp_path / "missing" / "x.npy")


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_committed_files_take_the_umask_mode_whatever_wrote_them(tmp_path, umask):
    old = os.umask(umask)
    try:
        with atomic_write(tmp_path / "a.bin") as out:
            out.tmp.write_bytes(b"x")
        with atomic_write(tmp_path / "b.bin") as out:  # a library that writes its own file, owner-only
            os.unlink(out.tmp)
            os.close(os.open(out.tmp, os.O_WRONLY | os.O_CREAT, 0o600))
    finally:
        os.umask(old)
    for name in ("a.bin", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_stale_temps_of_dead_processes_are_removed_and_others_kept(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".out.npy.{dead}.{atomic._host()}.0123abcd.tmp"
    stale_scratch = tmp_path / f".out.npy.scratch.{dead}.{atomic._host()}.0123abcd.tmp"
    live = temp_path(tmp_path / "out.npy")  # ours: this process is alive
    other_host = tmp_path / f".out.npy.{dead}.elsewhere-{atomic._host()}.0123abcd.tmp"
    unrelated = tmp_path / ".out.npy.tmp"
    for path in (stale, stale_scratch, live, other_host, unrelated):
        path.write_bytes(b"x")
    removed = remove_stale_temps(tmp_path)
    assert sorted(removed) == sorted([stale, stale_scratch])
    assert _listing(tmp_path) == sorted(p.name for p in (live, other_host, unrelated))


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs (skipped where mounting is not permitted)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_preallocation_fails_at_once_on_a_full_disk_and_removes_the_temp(small_tmpfs):
    handle = AtomicFile(small_tmpfs / "big.npy")
    with pytest.raises(OutputError, match=r"^not enough disk space for big\.npy \| received 0\.004 GB needed"):
        handle.preallocate(4 << 20)
    assert _listing(small_tmpfs) == []
    fits = AtomicFile(small_tmpfs / "small.npy")
    fits.preallocate(256 << 10)
    assert fits.tmp.stat().st_blocks * 512 >= 256 << 10  # really reserved, not a sparse file
    fits.abort()


def test_the_cluster_npy_output_is_reserved_at_creation(small_tmpfs):
    """The run directory's output.npy of a --cluster run: a full disk is one error now, not SIGBUS in a worker."""
    from types import SimpleNamespace

    from impeccable.runtime.volumes.npy import NpySink

    run_dir = small_tmpfs / ".out.npy.impeccable-run"
    run_dir.mkdir()
    too_big = SimpleNamespace(stored_shape=(4, 64, 4096))  # 4 MiB of float32
    with pytest.raises(OutputError, match=r"^not enough disk space for out\.npy \| received 0\.004 GB needed"):
        NpySink().create(run_dir, too_big, small_tmpfs / "out.npy", np.dtype(np.float32), False, 1)
    assert _listing(run_dir) == []
    path = NpySink().create(run_dir, SimpleNamespace(stored_shape=(2, 16, 1024)), small_tmpfs / "out.npy",
                            np.dtype(np.float32), False, 1)
    assert path.stat().st_blocks * 512 >= 2 * 16 * 1024 * 4  # reserved, not sparse
