"""SEG-Y volumes: canonical reads of inline- and crossline-sorted files, header-preserving writes, errors."""

from __future__ import annotations

import numpy as np
import pytest

segyio = pytest.importorskip("segyio")

from impeccable.core.errors import InputError, OutputError  # noqa: E402
from impeccable.runtime.volumes.segy import SegyReader, SegyWriter, create_segy  # noqa: E402
from impeccable.runtime.volumes import open_reader, open_writer  # noqa: E402
from fake_engines import MixingEngine  # noqa: E402

SHAPE = (5, 7, 30)
IEEE, IBM, INT16, INT8 = 5, 1, 3, 8
BYTES_PER_SAMPLE = {IEEE: 4, IBM: 4, INT16: 2, INT8: 1}


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    """``(inline, crossline, sample)`` float32 amplitudes in a range int16 holds."""
    rng = np.random.default_rng(3)
    return (rng.standard_normal(SHAPE) * 1000).astype(np.float32)


def _tolerance(fmt: int, values: np.ndarray) -> float:
    """What the stored format can hold of float32 values."""
    if fmt == IEEE:
        return 0.0
    if fmt == IBM:  # 24-bit hexadecimal mantissa: relative error below 16 ** -5
        return float(np.abs(values).max()) * 16.0 ** -5
    return 0.5  # integers: rounded


@pytest.mark.parametrize("sorting", ["inline", "crossline"])
@pytest.mark.parametrize("fmt", [IEEE, IBM, INT16])
def test_reads_canonical_volume(tmp_path, volume, sorting, fmt):
    path = create_segy(tmp_path / "v.sgy", volume, sorting=sorting, sample_format=fmt)
    with SegyReader(path) as reader:
        assert reader.sorting == sorting
        assert reader.shape == SHAPE and reader.dtype == np.float32
        got = reader.read()
    assert got.dtype == np.float32 and got.shape == SHAPE
    np.testing.assert_allclose(got, volume, rtol=0, atol=_tolerance(fmt, volume))


@pytest.mark.parametrize("sorting", ["inline", "crossline"])
def test_blocks_along_and_across_the_sorting(tmp_path, volume, sorting):
    path = create_segy(tmp_path / "v.sgy", volume, sorting=sorting)
    blocks = [(slice(1, 4), slice(None)), (slice(None), slice(2, 5)), (slice(1, 4), slice(2, 6)),
              (slice(None, None, 2), slice(1, None, 3)), (slice(None, None, -1), slice(5, 0, -2)),
              (slice(3, 3), slice(None)), (slice(-1, None), slice(-2, None))]
    with SegyReader(path) as reader:
        for inlines, crosslines in blocks:
            np.testing.assert_array_equal(reader.read(inlines, crosslines), volume[inlines, crosslines])


def test_crossline_sorted_file_gives_the_same_canonical_volume(tmp_path, volume):
    by_inline = create_segy(tmp_path / "il.sgy", volume, sorting="inline", first_inline=100, first_crossline=20)
    by_crossline = create_segy(tmp_path / "xl.sgy", volume, sorting="crossline", first_inline=100, first_crossline=20)
    with SegyReader(by_inline) as a, SegyReader(by_crossline) as b:
        np.testing.assert_array_equal(a.read(), b.read())
        np.testing.assert_array_equal(a.ilines, b.ilines)
        np.testing.assert_array_equal(b.xlines, np.arange(20, 27))


def test_matches_segyio_cube_of_a_segyio_made_file(tmp_path, volume):
    """A file written by segyio's own tools reads like segyio.tools.cube (inline-sorted: same order)."""
    path = tmp_path / "from_array.sgy"
    segyio.tools.from_array(str(path), volume, format=IEEE)
    with segyio.open(str(path)) as f:
        cube = segyio.tools.cube(f)
    with open_reader(path) as reader:
        assert isinstance(reader, SegyReader)
        np.testing.assert_array_equal(reader.read(), cube)


def test_little_endian_file(tmp_path, volume):
    path = create_segy(tmp_path / "le.sgy", volume, endian="little")
    with SegyReader(path) as reader:
        assert reader.endian == "little"
        np.testing.assert_array_equal(reader.read(), volume)


def test_inline_crossline_bytes_can_be_overridden(tmp_path, volume):
    path = create_segy(tmp_path / "v.sgy", volume, sorting="crossline", iline=17, xline=13)
    with SegyReader(path, iline=17, xline=13) as reader:
        np.testing.assert_array_equal(reader.read(), volume)
    with pytest.raises(InputError, match=r"received \d+ traces with 1 distinct inline numbers \(byte 189\)"):
        SegyReader(path)


def _layout(path, fmt: int) -> tuple[bytes, np.ndarray]:
    """The file's bytes and a mask of the bytes that are trace samples."""
    data = open(path, "rb").read()
    with segyio.open(str(path), ignore_geometry=True) as f:
        start, n_traces, n_samples = 3600 + 3200 * f.ext_headers, f.tracecount, len(f.samples)
    trace_bytes = 240 + n_samples * BYTES_PER_SAMPLE[fmt]
    assert len(data) == start + n_traces * trace_bytes
    samples = np.zeros(len(data), dtype=bool)
    for t in range(n_traces):
        first = start + t * trace_bytes + 240
        samples[first:first + n_samples * BYTES_PER_SAMPLE[fmt]] = True
    return data, samples


def _write_all(reader: SegyReader, path, values: np.ndarray, step: int = 2, dtype=np.float32) -> None:
    writer = open_writer(path, like=reader, dtype=dtype)
    assert isinstance(writer, SegyWriter)
    for start in range(0, values.shape[0], step):
        writer.write(slice(start, start + step), values[start:start + step])
    writer.commit()


@pytest.mark.parametrize("sorting", ["inline", "crossline"])
@pytest.mark.parametrize("fmt", [IEEE, IBM, INT16])
def test_writer_keeps_every_header_and_changes_only_samples(tmp_path, volume, sorting, fmt):
    src = create_segy(tmp_path / "in.sgy", volume, sorting=sorting, sample_format=fmt, first_inline=7)
    out = tmp_path / "out.sgy"
    denoised = (volume * -0.5 + 3.25).astype(np.float32)
    with SegyReader(src) as reader:
        _write_all(reader, out, denoised)

    with segyio.open(str(src), ignore_geometry=True) as a, segyio.open(str(out), ignore_geometry=True) as b:
        assert a.text[0] == b.text[0]
        assert dict(a.bin) == dict(b.bin)
        assert str(a.format) == str(b.format) and a.tracecount == b.tracecount
        for t in range(a.tracecount):
            assert dict(a.header[t]) == dict(b.header[t]), f"trace header {t} differs"
    (src_bytes, mask), (out_bytes, out_mask) = _layout(src, fmt), _layout(out, fmt)
    np.testing.assert_array_equal(mask, out_mask)
    src_arr, out_arr = np.frombuffer(src_bytes, np.uint8), np.frombuffer(out_bytes, np.uint8)
    np.testing.assert_array_equal(src_arr[~mask], out_arr[~mask])  # every non-sample byte identical
    assert not np.array_equal(src_arr[mask], out_arr[mask])
    with SegyReader(out) as written:
        assert written.sorting == sorting
        np.testing.assert_allclose(written.read(), denoised, rtol=0, atol=_tolerance(fmt, denoised))


def test_identity_write_reproduces_the_file_byte_for_byte(tmp_path, volume):
    src = create_segy(tmp_path / "in.sgy", volume, sorting="crossline", sample_format=IBM)
    out = tmp_path / "out.sgy"
    with SegyReader(src) as reader:
        _write_all(reader, out, reader.read(), step=3)
    assert out.read_bytes() == src.read_bytes()


def test_integer_format_rounds_and_clips(tmp_path, volume):
    src = create_segy(tmp_path / "in.sgy", volume, sample_format=INT16)
    values = np.full(SHAPE, 2.6, dtype=np.float32)
    values[0] = 1e6  # beyond int16: clipped, not wrapped around
    with SegyReader(src) as reader:
        _write_all(reader, tmp_path / "out.sgy", values)
    with SegyReader(tmp_path / "out.sgy") as out:
        got = out.read()
    assert np.all(got[0] == 32767) and np.all(got[1:] == 3)


def test_uint8_scale_into_a_float_file(tmp_path, volume):
    src = create_segy(tmp_path / "in.sgy", volume, sample_format=IBM)
    values = np.arange(np.prod(SHAPE)).reshape(SHAPE).astype(np.uint8)
    with SegyReader(src) as reader:
        _write_all(reader, tmp_path / "out.sgy", values, dtype=np.uint8)
    with SegyReader(tmp_path / "out.sgy") as out:
        np.testing.assert_array_equal(out.read(), values.astype(np.float32))


def _prestack(path):
    segyio.tools.from_array(str(path), np.zeros((3, 4, 3, 10), np.float32), format=IEEE)


def _shared_location(path):
    """Two traces claim one (inline, crossline): wrong header bytes or a broken file."""
    segyio.tools.from_array(str(path), np.zeros((3, 4, 10), np.float32), format=IEEE)
    with segyio.open(str(path), "r+", ignore_geometry=True) as f:
        f.header[6] = {189: 2, 193: 2}


def _two_d_repeated_cdps(path):
    """One 2-D line (inline/crossline bytes 0) whose CDP numbers repeat: no order along the line."""
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount = IEEE, list(range(10)), 6
    with segyio.create(str(path), spec) as f:
        for t in range(6):
            f.header[t] = {segyio.TraceField.CDP: 1 + t % 3, segyio.TraceField.TRACE_SAMPLE_COUNT: 10}
            f.trace[t] = np.ones(10, np.float32)


def _format_code(code: int, endian: str = "big"):
    def make(path):
        create_segy(path, np.ones((2, 3, 10), np.float32), endian=endian)
        with open(path, "r+b") as fh:
            fh.seek(3224)
            fh.write(int(code).to_bytes(2, endian))
    make.__name__ = f"_format_{code}_{endian}"
    return make


def _random_headers(path):
    rng = np.random.default_rng(0)
    spec = segyio.spec()
    spec.format, spec.samples, spec.tracecount = IEEE, list(range(10)), 12
    with segyio.create(str(path), spec) as f:
        for t in range(12):
            f.header[t] = {189: int(rng.integers(1, 99)), 193: int(rng.integers(1, 99)),
                           segyio.TraceField.TRACE_SAMPLE_COUNT: 10}
            f.trace[t] = np.zeros(10, np.float32)


def _not_segy(path):
    path.write_bytes(b"\x01" * 5000)


def _too_short(path):
    path.write_bytes(b"C 1 hello")


@pytest.mark.parametrize("make, match", [
    (_prestack, r"^SEG-Y has 3 offsets per location: a pre-stack gather \| received offsets \[1, 2, 3\]"),
    (_shared_location, r"^SEG-Y traces do not form an inline x crossline grid \| received 12 traces with 3 distinct "
                       r"inline numbers \(byte 189\), 4 distinct crossline numbers \(byte 193\).*: traces 5 and 6 "
                       r"share one location .*--iline-byte N --xline-byte M \(tried 189/193; common: 9/21"),
    (_two_d_repeated_cdps, r"^SEG-Y traces do not form an inline x crossline grid \| received 6 traces with 1 distinct "
                           r"inline .* 3 distinct CDP numbers \(byte 21\).*: traces 0 and 3 share one location"),
    (_format_code(15), r"^SEG-Y sample format 15 \(3-byte unsigned integer\) cannot be decoded \| received bad.sgy, "
                       r"format code 15"),
    (_format_code(15, "little"), r"^SEG-Y sample format 15 \(3-byte unsigned integer\) cannot be decoded"),
    (_format_code(4), r"^SEG-Y sample format 4 \(4-byte fixed point with gain\) cannot be decoded"),
    (_format_code(7, "little"), r"^SEG-Y sample format 7 \(3-byte signed integer\) cannot be decoded"),
    (_format_code(13), r"^bad.sgy has an unknown SEG-Y sample format code \| received bytes 3225-3226 = 13"),
    (_random_headers, r"^SEG-Y traces do not form an inline x crossline grid \| received 12 traces"),
    (_not_segy, r"^bad.sgy has an unknown SEG-Y sample format code \| received bytes 3225-3226 = 257"),
    (_too_short, r"^bad.sgy is too short to be SEG-Y"),
])
def test_unusable_files_give_one_line_errors(tmp_path, make, match):
    path = tmp_path / "bad.sgy"
    make(path)
    with pytest.raises(InputError, match=match) as info:
        SegyReader(path)
    assert "\n" not in str(info.value)


def test_time_axis_other_than_last_is_refused(tmp_path, volume):
    path = create_segy(tmp_path / "v.sgy", volume)
    SegyReader(path, time_axis=2).close()
    with pytest.raises(InputError, match="a time axis cannot be chosen for SEG-Y"):
        SegyReader(path, time_axis=0)


def test_abort_and_incomplete_commit_leave_nothing(tmp_path, volume):
    src = create_segy(tmp_path / "in.sgy", volume)
    out = tmp_path / "out.sgy"
    with SegyReader(src) as reader:
        writer = SegyWriter(out, like=reader)
        writer.write(slice(0, 2), volume[:2])
        writer.abort()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.sgy"]

        writer = SegyWriter(out, like=reader)
        writer.write(slice(0, 2), volume[:2])
        with pytest.raises(OutputError, match="SEG-Y output incomplete"):
            writer.commit()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.sgy"]


def test_writer_refuses_what_it_cannot_write(tmp_path, volume):
    src = create_segy(tmp_path / "in.sgy", np.clip(volume, -100, 100), sample_format=INT8)
    with SegyReader(src) as reader:
        with pytest.raises(OutputError, match="do not fit the SEG-Y sample format"):
            SegyWriter(tmp_path / "out.sgy", like=reader, dtype=np.uint8)
        writer = SegyWriter(tmp_path / "out.sgy", like=reader)
        with pytest.raises(OutputError, match="block does not fit"):
            writer.write(slice(0, 2), volume[:1])
        writer.abort()
    with pytest.raises(OutputError, match="needs a SEG-Y input"):
        SegyWriter(tmp_path / "out.sgy", like=object())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.sgy"]


FakeEngine = MixingEngine


def _denoise(src, out):
    pipeline = pytest.importorskip("impeccable.runtime.pipeline")
    if not hasattr(pipeline, "denoise_file"):
        pytest.skip("runtime.pipeline.denoise_file not available yet")
    from impeccable.runtime.config import DenoiseConfig

    config = DenoiseConfig(views="both", tta=True, batch_size=3, progress=False)
    pipeline.denoise_file(src, out, config, engine=FakeEngine())


@pytest.mark.parametrize("sorting", ["inline", "crossline"])
@pytest.mark.parametrize("fmt", [IEEE, IBM])
def test_segy_denoised_samples_equal_the_npy_path(tmp_path, volume, sorting, fmt):
    """The same volume through the whole pipeline as .npy and as SEG-Y: the same denoised samples."""
    src = create_segy(tmp_path / "in.sgy", volume, sorting=sorting, sample_format=fmt)
    with SegyReader(src) as reader:
        stored = reader.read()  # what the SEG-Y holds (IBM rounds the float32 input)
    np.save(tmp_path / "in.npy", stored)
    _denoise(tmp_path / "in.npy", tmp_path / "out.npy")
    _denoise(src, tmp_path / "out.sgy")
    expected = np.load(tmp_path / "out.npy")
    with SegyReader(tmp_path / "out.sgy") as out:
        got = out.read()
    assert not np.allclose(expected, stored)  # the fake engine changed the samples
    np.testing.assert_allclose(got, expected, rtol=0, atol=_tolerance(fmt, expected))
    leftovers = {p.name for p in tmp_path.iterdir()} - {"in.sgy", "in.npy", "out.npy", "out.sgy"}
    assert not leftovers


REV2_CODES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 16]


@pytest.mark.parametrize("endian", ["big", "little"])
@pytest.mark.parametrize("code", REV2_CODES)
def test_byte_order_is_detected_for_every_rev2_format_code(tmp_path, code, endian):
    from impeccable.runtime.volumes.segy_geometry import DECODED_FORMATS, sample_format

    path = tmp_path / "v.sgy"
    create_segy(path, np.ones((2, 3, 10), np.float32), endian=endian)
    with open(path, "r+b") as fh:
        fh.seek(3224)
        fh.write(code.to_bytes(2, endian))
    assert sample_format(path) == (code, endian)
    if code not in DECODED_FORMATS:  # never segyio's fallback read as IBM float
        with pytest.raises(InputError, match=rf"^SEG-Y sample format {code} \(.*\) cannot be decoded \| received "
                                             rf"v.sgy, format code {code}") as info:
            SegyReader(path)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("endian, word", [("big", bytes([1, 2, 3, 4])), ("little", bytes([4, 3, 2, 1]))])
def test_rev2_byte_order_word_is_read(tmp_path, endian, word):
    """Bytes 3297-3300 hold 0x01020304 in the file's byte order (rev 2); the code is read in that order."""
    from impeccable.runtime.volumes.segy_geometry import sample_format

    path = tmp_path / "v.sgy"
    create_segy(path, np.ones((2, 3, 10), np.float32), endian=endian)
    with open(path, "r+b") as fh:
        fh.seek(3296)
        fh.write(word)
    assert sample_format(path) == (5, endian)
    with SegyReader(path) as reader:
        assert reader.endian == endian
        np.testing.assert_array_equal(reader.read(), 1)


@pytest.mark.parametrize("option", [{"iline": 241}, {"xline": 0}])
def test_a_header_byte_outside_the_trace_header_is_one_line(tmp_path, volume, option):
    path = create_segy(tmp_path / "v.sgy", volume)
    with pytest.raises(InputError, match=r"^not a SEG-Y trace-header byte \| received (241|0)") as info:
        SegyReader(path, **option)
    assert "\n" not in str(info.value)
