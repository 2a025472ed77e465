"""SEG-Y as surveys are: irregular 3-D outlines and holes, 2-D lines, dead traces, other header bytes.

Each file is built trace by trace with segyio. The denoised output must keep the input's textual, binary and
trace headers byte for byte, hold one trace per input trace in the input's order, carry zeros in dead
traces, and match the regular-cube path (the same canonical volume as .npy) on the live traces.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

segyio = pytest.importorskip("segyio")

from impeccable.core.errors import InputError  # noqa: E402
from impeccable.runtime.config import DenoiseConfig  # noqa: E402
from impeccable.runtime.passes import reader_stats  # noqa: E402
from impeccable.runtime.pipeline import denoise_file  # noqa: E402
from impeccable.runtime.volumes.segy import SegyReader  # noqa: E402
from impeccable.runtime.volumes import fill_absent  # noqa: E402
from fake_engines import MixingEngine  # noqa: E402

F = segyio.TraceField
IEEE, IBM = 5, 1
BYTES = {IEEE: 4, IBM: 4}


class FakeEngine(MixingEngine):
    """:class:`MixingEngine` with this module's window."""

    def __init__(self, window: tuple[int, int] = (16, 32)):
        super().__init__(window)


def _cube(shape=(6, 9, 40), seed=0) -> np.ndarray:
    """``(inline, crossline, sample)`` float32 amplitudes, no trace all zero."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 100 + 3).astype(np.float32)


def write_survey(path, cube: np.ndarray, present: np.ndarray, *, iline: int = 189, xline: int = 193,
                 fmt: int = IEEE, endian: str = "big", dead: np.ndarray | None = None, sorting: str = "inline",
                 first=(10, 100), xl_step: int = 2, il_step: int = 1):
    """A 3-D survey holding ``cube`` ``(inline, crossline, sample)`` at the ``present`` cells only.

    Inline numbers ``first[0] + il_step * i``, crossline numbers ``first[1] + xl_step * x``; traces in inline (or
    crossline) order; identification code 2 where ``dead``. Returns the ``(i, x)`` cell of each trace.
    """
    n_il, n_xl, n_s = cube.shape
    dead = np.zeros(present.shape, bool) if dead is None else dead
    cells = [(i, x) for i in range(n_il) for x in range(n_xl) if present[i, x]]
    if sorting == "crossline":
        cells.sort(key=lambda c: (c[1], c[0]))
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount, spec.endian = fmt, list(range(n_s)), len(cells), endian
    with segyio.create(str(path), spec) as f:
        for t, (i, x) in enumerate(cells):
            f.header[t] = {F.TRACE_SEQUENCE_FILE: t + 1, F.CDP_X: 25 * x, F.CDP_Y: 25 * i,
                           iline: first[0] + il_step * i, xline: first[1] + xl_step * x,  # after: they may reuse byte 5
                           F.TRACE_SAMPLE_COUNT: n_s, F.TRACE_SAMPLE_INTERVAL: 4000,
                           F.TraceIdentificationCode: 2 if dead[i, x] else 1}
            f.trace[t] = cube[i, x]
        f.bin.update(hdt=4000, hns=n_s)
    return cells


def write_lines(path, lines: list[np.ndarray], *, key: int = 189, cdp: int = 21, fmt: int = IEEE,
                endian: str = "big", descending: bool = False) -> list[tuple[int, int]]:
    """2-D lines, each ``(traces, sample)`` float32, one after the other; line ``k`` numbered ``k + 1`` in byte
    ``key``, its traces numbered from ``1000 * k`` in byte ``cdp`` (listed from the top when ``descending``),
    12.5 m apart. Returns the ``(line, position along it)`` of each trace.
    """
    n_s = lines[0].shape[1]
    order = [(k, j) for k, line in enumerate(lines)
             for j in (range(len(line) - 1, -1, -1) if descending else range(len(line)))]
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount, spec.endian = fmt, list(range(n_s)), len(order), endian
    with segyio.create(str(path), spec) as f:
        for t, (k, j) in enumerate(order):
            head = {cdp: 1000 * k + j, F.CDP_X: int(125 * j), F.CDP_Y: 50000 * k, F.TRACE_SEQUENCE_FILE: t + 1,
                    F.TRACE_SAMPLE_COUNT: n_s, F.TRACE_SAMPLE_INTERVAL: 2000}
            if key:
                head[key] = k + 1
            f.header[t] = head
            f.trace[t] = lines[k][j]
    return order


def assert_headers_kept(src, out) -> None:
    """Same textual, binary and trace headers (bytes), trace count and sample format; only samples may differ."""
    a, b = src.read_bytes(), out.read_bytes()
    assert len(a) == len(b)
    with segyio.open(str(src), ignore_geometry=True, endian=_endian(src)) as f:
        start = 3600 + 3200 * f.ext_headers
        n_traces, n_samples, fmt = f.tracecount, len(f.samples), int(f.format)
    assert a[:start] == b[:start]  # textual + binary headers
    size = 240 + n_samples * {1: 4, 2: 4, 3: 2, 5: 4, 8: 1}[fmt]
    for t in range(n_traces):
        first = start + t * size
        assert a[first:first + 240] == b[first:first + 240], f"trace header {t} differs"


def _endian(path) -> str:
    code = path.read_bytes()[3224:3226]
    return "big" if int.from_bytes(code, "big") < 256 else "little"


def traces_of(path) -> np.ndarray:
    """Every trace of a file in file order, ``(trace, sample)`` float32."""
    with segyio.open(str(path), ignore_geometry=True, endian=_endian(path)) as f:
        return f.trace.raw[:].astype(np.float32)


def _denoise(src, out, views="inline", **options):
    config = DenoiseConfig(views=views, tta=True, batch_size=3, progress=False, **options)
    return denoise_file(src, out, config, engine=FakeEngine())


def _reference(tmp_path, grid: np.ndarray, live: np.ndarray, name="ref") -> np.ndarray:
    """The regular-cube path: the canonical grid, its non-live traces filled as the pipeline fills inline
    sections, denoised as .npy on the unit scale, then mapped to the input's units by the least-squares fit
    over the live traces only (computed here with np.polyfit, independently of the pipeline's fit).
    ``(inline, crossline, sample)`` float64."""
    filled = fill_absent(grid.copy(), live)
    np.save(tmp_path / f"{name}.npy", filled)
    _denoise(tmp_path / f"{name}.npy", tmp_path / f"{name}.out.npy", scale="unit")
    unit = np.load(tmp_path / f"{name}.out.npy").astype(np.float64)
    gain, offset = np.polyfit(unit[live].ravel(), filled[live].astype(np.float64).ravel(), 1)
    return gain * unit + offset


def _corner_and_holes(shape) -> np.ndarray:
    present = np.ones(shape[:2], bool)
    present[:2, :3] = False  # a corner cut away
    present[4, 5] = present[3, 6] = False  # holes
    present[-1, -2:] = False
    return present


# ---------------------------------------------------------------------------------------------- irregular 3-D

@pytest.mark.parametrize("iline, xline, endian, fmt, sorting", [
    (189, 193, "big", IEEE, "inline"),
    (9, 21, "little", IEEE, "inline"),
    (5, 17, "big", IBM, "crossline"),
    (17, 13, "little", IBM, "inline"),
])
def test_irregular_survey_is_denoised_on_its_own_traces(tmp_path, iline, xline, endian, fmt, sorting):
    cube = _cube()
    present = _corner_and_holes(cube.shape)
    src = tmp_path / "in.sgy"
    cells = write_survey(src, cube, present, iline=iline, xline=xline, endian=endian, fmt=fmt, sorting=sorting)
    opts = {"iline_byte": iline, "xline_byte": xline}
    with SegyReader(src, iline=iline, xline=xline) as reader:
        assert reader.shape == cube.shape and reader.sorting == "irregular"
        assert reader.geometry.kind == "3-D irregular" and reader.endian == endian
        np.testing.assert_array_equal(reader.live_mask, present)
        np.testing.assert_array_equal(reader.xlines, 100 + 2 * np.arange(cube.shape[1]))
        grid = reader.read()
        crossline_block = reader.read(crosslines=slice(2, 7))
    np.testing.assert_array_equal(grid[~present], 0)  # absent cells read as zeros
    np.testing.assert_array_equal(crossline_block, grid[:, 2:7])
    tol = 0 if fmt == IEEE else float(np.abs(cube).max()) * 16.0 ** -5
    np.testing.assert_allclose(grid[present], cube[present], atol=tol, rtol=0)

    _denoise(src, tmp_path / "out.sgy", **opts)
    assert_headers_kept(src, tmp_path / "out.sgy")
    expected = _reference(tmp_path, grid, present)
    got = traces_of(tmp_path / "out.sgy")
    want = np.stack([expected[i, x] for i, x in cells])
    tol = 1e-4 if fmt == IEEE else float(np.abs(want).max()) * 16.0 ** -5 + 1e-4
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)


def test_descending_numbers_keep_the_file_order(tmp_path):
    """Inlines numbered downwards, crosslines upwards in steps of 3: canonical order follows the file."""
    cube = _cube()
    present = _corner_and_holes(cube.shape)
    write_survey(tmp_path / "in.sgy", cube, present, first=(50, 7), il_step=-1, xl_step=3)
    with SegyReader(tmp_path / "in.sgy") as reader:
        np.testing.assert_array_equal(reader.ilines, 50 - np.arange(cube.shape[0]))
        np.testing.assert_array_equal(reader.xlines, 7 + 3 * np.arange(cube.shape[1]))
        np.testing.assert_array_equal(reader.live_mask, present)
        np.testing.assert_array_equal(reader.read()[present], cube[present])


def test_statistics_do_not_see_absent_cells_nor_fill(tmp_path):
    cube = _cube() + 500  # all positive: a zero in the statistics would be a value no trace holds
    present = _corner_and_holes(cube.shape)
    write_survey(tmp_path / "in.sgy", cube, present)
    with SegyReader(tmp_path / "in.sgy") as reader:
        stats = reader_stats(reader)
    assert stats.vmin == pytest.approx(float(cube[present].min()))
    assert stats.vmax == pytest.approx(float(cube[present].max()))


@pytest.mark.parametrize("views", ["crossline", "both"])
def test_irregular_survey_other_views(tmp_path, views):
    """Crossline sections are filled along their own traces (inlines): the reference fills them so too."""
    cube = _cube()
    present = _corner_and_holes(cube.shape)
    cells = write_survey(tmp_path / "in.sgy", cube, present)
    with SegyReader(tmp_path / "in.sgy") as reader:
        grid = reader.read()
    _denoise(tmp_path / "in.sgy", tmp_path / "out.sgy", views=views)
    assert_headers_kept(tmp_path / "in.sgy", tmp_path / "out.sgy")
    # Mirror fill copies live samples, so a filled grid has the live traces' min/max: same normalization.
    across = fill_absent(np.ascontiguousarray(grid.transpose(1, 0, 2)), present.T).transpose(1, 0, 2)
    np.save(tmp_path / "across.npy", np.ascontiguousarray(across))
    _denoise(tmp_path / "across.npy", tmp_path / "across.out.npy", views="crossline", scale="unit")
    unit = np.load(tmp_path / "across.out.npy").astype(np.float64)
    if views == "both":
        np.save(tmp_path / "along.npy", fill_absent(grid.copy(), present))
        _denoise(tmp_path / "along.npy", tmp_path / "along.out.npy", scale="unit")
        unit = (unit + np.load(tmp_path / "along.out.npy")) / 2
    # The amplitude fit over the live traces only, computed independently of the pipeline's.
    gain, offset = np.polyfit(unit[present].ravel(), grid[present].astype(np.float64).ravel(), 1)
    expected = gain * unit + offset
    np.testing.assert_allclose(traces_of(tmp_path / "out.sgy"), np.stack([expected[c] for c in cells]),
                               atol=1e-3, rtol=0)


class _FlagsRepeats(FakeEngine):
    """Maps [0, 1] into [0.2, 0.8], except a row equal to the one before it (what a one-trace hole's mirror
    fill makes; live traces never repeat) which gets 1: the prediction's maximum lies on a filled trace."""

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = 0.2 + 0.6 * batch
        repeat = np.zeros(batch.shape[:3], bool)
        repeat[:, :, 1:] = (batch[:, :, 1:] == batch[:, :, :-1]).all(axis=-1)
        out[repeat] = 1.0
        return out.astype(np.float32)


def test_uint8_scale_spans_the_written_traces(tmp_path):
    """The uint8 scale's min/max come from the traces written, not from the fill of absent ones."""
    cube = _cube()
    present = np.ones(cube.shape[:2], bool)
    present[4, 5] = present[2, 3] = False  # one-trace holes
    write_survey(tmp_path / "in.sgy", cube, present)
    config = DenoiseConfig(tta=False, scale="uint8", batch_size=3, progress=False)
    denoise_file(tmp_path / "in.sgy", tmp_path / "out.sgy", config, engine=_FlagsRepeats())
    got = traces_of(tmp_path / "out.sgy")
    assert got.min() == 0 and got.max() == 255


def test_fill_mirrors_live_traces_into_gaps():
    sections = np.arange(10, dtype=np.float32)[None, :, None].repeat(2, axis=2)
    live = np.array([[False, True, True, True, False, False, False, True, True, False]])
    fill_absent(sections, live)
    # gap 0: from the right (1); gap 4..6: 4 <- 3, 5 <- 2 (left half), 6 <- 7 (right half); 9 <- 8
    np.testing.assert_array_equal(sections[0, :, 0], [1, 1, 2, 3, 3, 2, 7, 7, 8, 8])
    lonely = np.ones((1, 4, 2), np.float32) * 7
    fill_absent(lonely, np.array([[False, False, True, False]]))
    np.testing.assert_array_equal(lonely[0, :, 0], [7, 7, 7, 7])
    empty = np.ones((1, 3, 2), np.float32)
    np.testing.assert_array_equal(fill_absent(empty, np.zeros((1, 3), bool)), 0)


# ---------------------------------------------------------------------------------------------- dead traces

@pytest.mark.parametrize("irregular", [False, True])
def test_dead_traces_stay_dead(tmp_path, irregular):
    cube = _cube()
    present = _corner_and_holes(cube.shape) if irregular else np.ones(cube.shape[:2], bool)
    dead = np.zeros(present.shape, bool)
    dead[3, 3] = True  # code 2, with samples that would dominate the statistics
    cube[3, 3] = 1e6
    cube[2, 7] = 0.0  # all-zero trace, code 1
    cube[5, 0] = 0.0
    cells = write_survey(tmp_path / "in.sgy", cube, present, dead=dead)
    with SegyReader(tmp_path / "in.sgy") as reader:
        assert reader.sorting == ("irregular" if irregular else "inline")
        stats = reader_stats(reader)
        live = reader.live_mask
        grid = reader.read()
    want_live = present & ~dead
    want_live[2, 7] = want_live[5, 0] = False
    np.testing.assert_array_equal(live, want_live)
    assert stats.vmax == pytest.approx(float(cube[want_live].max()))  # not 1e6: the dead trace is left out

    _denoise(tmp_path / "in.sgy", tmp_path / "out.sgy")
    assert_headers_kept(tmp_path / "in.sgy", tmp_path / "out.sgy")  # trace_id 2 kept
    got = traces_of(tmp_path / "out.sgy")
    expected = _reference(tmp_path, grid, want_live)
    for t, (i, x) in enumerate(cells):
        if want_live[i, x]:
            np.testing.assert_allclose(got[t], expected[i, x], atol=1e-4, rtol=0)
        else:
            np.testing.assert_array_equal(got[t], 0)  # zero in (or dead), zero out


# ---------------------------------------------------------------------------------------------- 2-D lines

@pytest.mark.parametrize("endian, descending", [("big", False), ("little", True)])
def test_one_2d_line_is_one_section(tmp_path, endian, descending):
    line = _cube((1, 23, 40))[0]
    order = write_lines(tmp_path / "in.sgy", [line], key=0, endian=endian, descending=descending)
    with SegyReader(tmp_path / "in.sgy") as reader:
        assert reader.geometry.kind == "2-D" and reader.shape == (1, 23, 40) and reader.live_mask is None
        got = reader.read()
    # Along the line by CDP number, as the file runs: a descending file reads from its own first trace.
    np.testing.assert_array_equal(got[0], line[::-1] if descending else line)
    # The lines are written at 2 ms; the .npy twin has no interval: both run at the model's (the resampling
    # has its own tests, tests/runtime/test_sample_interval.py).
    _denoise(tmp_path / "in.sgy", tmp_path / "out.sgy", sample_interval=4.0)
    assert_headers_kept(tmp_path / "in.sgy", tmp_path / "out.sgy")
    np.save(tmp_path / "line.npy", got)
    _denoise(tmp_path / "line.npy", tmp_path / "line.out.npy")
    expected = np.load(tmp_path / "line.out.npy")[0]
    if descending:
        expected = expected[::-1]
    np.testing.assert_allclose(traces_of(tmp_path / "out.sgy"), np.stack([expected[j] for _, j in order]),
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize("key, options", [(189, {}), (233, {"line_key": 233}), (9, {"line_key": 9, "cdp_byte": 25})])
def test_several_2d_lines_of_different_lengths(tmp_path, key, options):
    lines = [_cube((1, n, 40), seed=n)[0] for n in (23, 9, 31)]
    cdp = options.get("cdp_byte", 21)
    order = write_lines(tmp_path / "in.sgy", lines, key=key, cdp=cdp)
    reader_opts = {"line_key": options.get("line_key"), "cdp": cdp}
    with SegyReader(tmp_path / "in.sgy", **reader_opts) as reader:
        assert reader.geometry.kind == "2-D" and reader.shape == (3, 31, 40) and reader.views == ("inline",)
        np.testing.assert_array_equal(reader.ilines, [1, 2, 3])
        live = reader.live_mask
        grid = reader.read()
    np.testing.assert_array_equal(live.sum(axis=1), [23, 9, 31])
    for k, line in enumerate(lines):
        np.testing.assert_array_equal(grid[k, :len(line)], line)
    _denoise(tmp_path / "in.sgy", tmp_path / "out.sgy", sample_interval=4.0, **options)  # as the .npy reference
    assert_headers_kept(tmp_path / "in.sgy", tmp_path / "out.sgy")
    expected = _reference(tmp_path, grid, live)
    np.testing.assert_allclose(traces_of(tmp_path / "out.sgy"), np.stack([expected[k, j] for k, j in order]),
                               atol=1e-4, rtol=0)


def test_2d_lines_refuse_crossline_views(tmp_path):
    write_lines(tmp_path / "in.sgy", [_cube((1, 12, 40))[0], _cube((1, 8, 40))[0]])
    with pytest.raises(InputError, match=r"^the input has no crossline sections: 2-D lines \| received --views both"):
        _denoise(tmp_path / "in.sgy", tmp_path / "out.sgy", views="both")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.sgy"]


def test_lines_with_shared_cdps_need_their_line_key(tmp_path):
    """Line numbers in a user byte the reader does not look at: lines would merge; the error says what to pass."""
    lines = [_cube((1, 12, 40))[0], _cube((1, 12, 40), seed=1)[0]]
    write_lines(tmp_path / "in.sgy", lines, key=233)
    with segyio.open(str(tmp_path / "in.sgy"), "r+", ignore_geometry=True) as f:
        for t in range(f.tracecount):  # the same CDP numbers on both lines
            f.header[t] = {F.CDP: 1 + t % 12}
    with pytest.raises(InputError, match=r"^SEG-Y traces do not form .*share one location .*--line-key BYTE") as info:
        SegyReader(tmp_path / "in.sgy")
    assert "\n" not in str(info.value)
    with SegyReader(tmp_path / "in.sgy", line_key=233) as reader:
        assert reader.shape == (2, 12, 40)


def test_3d_survey_with_wrong_bytes_is_not_taken_for_a_2d_line(tmp_path):
    cube = _cube()
    write_survey(tmp_path / "in.sgy", cube, np.ones(cube.shape[:2], bool), iline=9, xline=13)
    with segyio.open(str(tmp_path / "in.sgy"), "r+", ignore_geometry=True) as f:
        for t in range(f.tracecount):
            f.header[t] = {F.CDP: t + 1}
    with pytest.raises(InputError, match=r"jump \d+ times .* a 3-D survey, not 2-D lines \| .*--iline-byte N "
                                         r"--xline-byte M \(tried 189/193; common: 9/21"):
        SegyReader(tmp_path / "in.sgy")


# ---------------------------------------------------------------------------------------------- command line

def test_cli_header_byte_flags(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from impeccable.runtime import cli, pipeline

    cube = _cube()
    write_survey(tmp_path / "in.sgy", cube, _corner_and_holes(cube.shape), iline=9, xline=21)
    seen = {}
    real = pipeline.denoise_file

    def spy(input_path, output, config, engine=None):
        seen["config"] = config
        return real(input_path, output, config, engine=FakeEngine())

    monkeypatch.setattr(pipeline, "denoise_file", spy)
    result = CliRunner().invoke(cli.main, [str(tmp_path / "in.sgy"), "--no-progress"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "tried 189/193" in result.output and "9/21" in result.output
    result = CliRunner().invoke(cli.main, [str(tmp_path / "in.sgy"), "--iline-byte", "9", "--xline-byte", "21",
                                           "--no-progress"])
    assert result.exit_code == 0, result.output
    assert seen["config"].segy_options() == {"iline": 9, "xline": 21, "line_key": None, "cdp": 21}
    assert_headers_kept(tmp_path / "in.sgy", tmp_path / "in.denoised.sgy")


# ---------------------------------------------------------------------------------------------- out of core

def _bytes_read() -> int:
    with open("/proc/self/io") as fh:
        return int(next(line for line in fh if line.startswith("rchar:")).split()[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/io")
def test_irregular_reads_only_the_block_asked_for(tmp_path):
    """Reading one inline of an irregular file reads that inline's traces, not the file (measured in bytes)."""
    cube = _cube((40, 50, 200))
    present = np.ones(cube.shape[:2], bool)
    present[:10, :20] = False
    present[20:25, 30:35] = False
    write_survey(tmp_path / "in.sgy", cube, present)
    size = (tmp_path / "in.sgy").stat().st_size
    with SegyReader(tmp_path / "in.sgy") as reader:
        before = _bytes_read()
        block = reader.read(inlines=slice(22, 23))
        one_inline = _bytes_read() - before
        before = _bytes_read()
        reader.read(crosslines=slice(31, 33))
        two_crosslines = _bytes_read() - before
    np.testing.assert_array_equal(block[0][present[22]], cube[22][present[22]])
    assert one_inline < 0.05 * size, (one_inline, size)
    assert two_crosslines < 0.25 * size, (two_crosslines, size)


CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from impeccable.runtime.volumes import open_reader, open_writer

    src, dst = sys.argv[1], sys.argv[2]
    reader = open_reader(src)
    writer = open_writer(dst, like=reader)
    total = 0.0
    for start in range(0, reader.shape[0], 4):
        data = reader.read(inlines=slice(start, start + 4))
        total += float(data.sum(dtype=np.float64))
        writer.write(slice(start, start + data.shape[0]), data * 2)
    writer.commit()
    for start in range(0, reader.shape[1], 8):
        reader.read(crosslines=slice(start, start + 8))
    print(json.dumps({"peak_rss": int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) * 1024,
                      "total": total, "live": int(reader.live_mask.sum())}))
""")


@pytest.mark.slow
def test_large_irregular_file_streams_with_bounded_memory(tmp_path):
    """A ~400 MB irregular survey read and rewritten by blocks in a fresh process: peak memory well below it."""
    shape = (100, 500, 2000)
    present = np.ones(shape[:2], bool)
    present[:40, :150] = False  # outline
    present[60:70, 200:260] = False  # hole
    rng = np.random.default_rng(0)
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount = IEEE, list(range(shape[2])), int(present.sum())
    total, t = 0.0, 0
    with segyio.create(str(tmp_path / "big.sgy"), spec) as f:
        for i in range(shape[0]):
            block = rng.standard_normal((shape[1], shape[2]), dtype=np.float32)
            for x in np.flatnonzero(present[i]):
                f.header[t] = {189: i + 1, 193: int(x) + 1, F.TRACE_SAMPLE_COUNT: shape[2]}
                f.trace[t] = block[x]
                total += float(block[x].sum(dtype=np.float64))
                t += 1
    size = (tmp_path / "big.sgy").stat().st_size
    run = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "big.sgy"), str(tmp_path / "out.sgy")],
                         capture_output=True, text=True, check=True)
    report = json.loads(run.stdout)
    assert report["live"] == present.sum()
    assert report["total"] == pytest.approx(total, rel=1e-6)
    assert report["peak_rss"] < 0.4 * size, (report["peak_rss"], size)
    assert (tmp_path / "out.sgy").stat().st_size == size


# ---------------------------------------------------------------------------------------------- with a network

def test_corner_cut_denoises_like_the_full_cube_on_the_kept_traces(tmp_path, tiny_volume, tiny_model_dir):
    """A real (tiny) network looks across many traces: the fill of a cut corner must barely move its neighbours.

    The full cube goes through the regular path (.npy); the cut survey through SEG-Y. The cube's extremes
    sit in the kept part, so both are normalized alike, and both are compared on the unit scale (before the
    per-volume amplitude fit, which sees other traces in each), so the difference is the fill's alone.
    """
    cube = tiny_volume((6, 60, 128), seed=5)
    present = np.ones(cube.shape[:2], bool)
    present[:3, :24] = False
    lo, hi = np.unravel_index(cube.argmin(), cube.shape), np.unravel_index(cube.argmax(), cube.shape)
    cube[5, 50, 10], cube[lo], cube[5, 55, 20], cube[hi] = cube[lo], cube[5, 50, 10], cube[hi], cube[5, 55, 20]
    cells = write_survey(tmp_path / "cut.sgy", cube, present)
    np.save(tmp_path / "full.npy", cube)
    config = DenoiseConfig(model=tiny_model_dir, engine="onnxruntime", batch_size=2, progress=False, scale="unit")
    denoise_file(tmp_path / "full.npy", tmp_path / "full.out.npy", config)
    denoise_file(tmp_path / "cut.sgy", tmp_path / "cut.out.sgy", config)
    full = np.load(tmp_path / "full.out.npy")
    got = traces_of(tmp_path / "cut.out.sgy")
    want = np.stack([full[c] for c in cells])
    err = np.abs(got - want)  # unit scale: a share of the amplitude range
    untouched = np.array([i >= 3 for i, _ in cells])  # inlines without a gap: identical
    assert err[untouched].max() < 1e-5
    assert err.max() < 0.01, err.max()
    unit_in = (np.stack([cube[c] for c in cells]) - cube.min()) / (cube.max() - cube.min())
    assert not np.allclose(want, unit_in, atol=0.01)  # the network changed the data
