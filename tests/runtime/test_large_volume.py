"""Out of core: a ~1 GB volume streams through the HDF5 and SEG-Y readers and writers with bounded memory.

Each format's volume is written block by block, then read and rewritten block by block (inline blocks, then
crossline blocks) in a fresh Python process whose peak resident memory (``VmHWM``) must stay far below
the volume's size. A separate process, because the high-water mark covers the whole process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SHAPE = (200, 800, 1600)  # (inline, crossline, sample) float32: 1.02 GB
VOLUME_BYTES = int(np.prod(SHAPE)) * 4
BLOCK = 8  # inlines or crosslines per read

# Runs in the child: stream the input through reader -> writer, then read crossline blocks; report peak RSS
# and checksums of what was read and what was written.
CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from impeccable.runtime.volumes import open_reader, open_writer

    src, dst, block = sys.argv[1], sys.argv[2], int(sys.argv[3])
    reader = open_reader(src)
    writer = open_writer(dst, like=reader)
    by_inline = by_crossline = 0.0
    for start in range(0, reader.shape[0], block):
        data = reader.read(inlines=slice(start, start + block))
        by_inline += float(data.sum(dtype=np.float64))
        writer.write(slice(start, start + data.shape[0]), data * 2)
    writer.commit()
    for start in range(0, reader.shape[1], block):
        by_crossline += float(reader.read(crosslines=slice(start, start + block)).sum(dtype=np.float64))
    reader.close()
    out = open_reader(dst)
    written = sum(float(out.read(inlines=slice(s, s + block)).sum(dtype=np.float64))
                  for s in range(0, out.shape[0], block))
    # VmHWM: this process image's own high-water mark. Not ru_maxrss: Linux carries that over exec from the
    # (v)forked parent, so under a long pytest session it reports pytest's footprint, not ours.
    status = open('/proc/self/status').read().split('VmHWM:')[1]
    peak = int(status.split()[0]) * 1024
    print(json.dumps({"peak_rss": peak, "by_inline": by_inline, "by_crossline": by_crossline, "written": written}))
""")


class Synthetic:
    """A volume made one inline at a time: ``volume[i]`` is ``(crossline, sample)`` float32."""

    shape = SHAPE

    def __getitem__(self, i: int) -> np.ndarray:
        rng = np.random.default_rng(i)
        return rng.standard_normal(SHAPE[1:], dtype=np.float32) + np.float32(i % 7)


@pytest.fixture(scope="module")
def big_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("large")
    yield path
    for f in path.iterdir():  # ~4 GB: do not leave it for pytest's tmp retention
        f.unlink()


def _stream(src, dst) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(src), str(dst), str(BLOCK)], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check(result: dict) -> None:
    print(f"peak RSS {result['peak_rss'] / 2**20:.0f} MiB streaming a {VOLUME_BYTES / 2**20:.0f} MiB volume")
    # float64 sums of the same float32 values in different orders: equal to ~1e-12 relative.
    assert result["by_crossline"] == pytest.approx(result["by_inline"], rel=1e-9)
    assert result["written"] == pytest.approx(2 * result["by_inline"], rel=1e-9)
    # The whole volume would be 1 GB; an inline block is 41 MB. Python + numpy + h5py/segyio take ~60 MB.
    assert result["peak_rss"] < VOLUME_BYTES / 5, f"peak RSS {result['peak_rss'] / 2**20:.0f} MiB"


def test_hdf5_streams_with_bounded_memory(big_dir):
    h5py = pytest.importorskip("h5py")
    src = big_dir / "big.h5"
    volume = Synthetic()
    with h5py.File(src, "w") as f:
        ds = f.create_dataset("volume", shape=SHAPE, dtype=np.float32, chunks=(1, 200, SHAPE[2]))
        for i in range(SHAPE[0]):
            ds[i] = volume[i]
    _check(_stream(src, big_dir / "out.h5"))


def test_segy_streams_with_bounded_memory(big_dir):
    pytest.importorskip("segyio")
    from impeccable.runtime.volumes.segy import create_segy

    src = create_segy(big_dir / "big.sgy", Synthetic(), sample_format=5)
    _check(_stream(src, big_dir / "out.sgy"))
