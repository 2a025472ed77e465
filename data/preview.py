"""PNGs of one section, so a person can judge data and results by eye.

Two pictures:

- :func:`save_run_preview` (``impeccable-denoise --preview``): one section of a run, as a geophysicist
  compares before and after. Left to right: input, output and the removed part (input - output) on ONE
  symmetric colour clip (the input's median +- the 99th percentile of its absolute deviation from it, the
  removed part about 0 with the same half-width), so a weaker output looks weaker; the local similarity of
  the removed part and the output (:func:`impeccable.core.qc.local_similarity`, absolute value, fixed 0..1
  scale: high where signal was removed with the noise); and the amplitude spectra of input, output and
  removed part of that section in dB below the input's peak (:mod:`impeccable.core.qc`), with the signal
  band and 8 Hz marked. Axes are labelled with trace numbers (crossline, inline or trace) and time in ms
  (or depth) when the reader knows the interval, else sample indices, and the axis says so.
- :func:`save_pair_preview`: inline sections of a synthetic or challenge pair (noisy, clean, denoised, a
  difference), each panel on its own symmetric clip (its median +- the 99th percentile of the absolute
  deviation from that median), since the challenge's noisy volumes sit on another amplitude scale than the
  clean ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from impeccable.core.atomic import atomic_write
from impeccable.core.errors import InputError, OutputError


def save_pair_preview(path: str | Path, clean: np.ndarray | None = None, noisy: np.ndarray | None = None,
                      denoised: np.ndarray | None = None, *, inline: int | None = None,
                      title: str | None = None) -> Path:
    """Write a PNG of inline section ``inline`` (time running down) of the given volumes.

    Args:
        path: The PNG to write (written to a temporary file, then renamed).
        clean: ``(inline, crossline, sample)`` clean volume, any real dtype, or None.
        noisy: The noisy volume, same shape, or None.
        denoised: A denoised volume, same shape, or None (``impeccable-denoise --preview`` passes
            ``noisy`` and ``denoised``).
        inline: The inline index; the middle one by default.
        title: Figure title.

    Returns:
        The PNG path.

    Raises:
        InputError: No volume given, volumes not 3-D, shapes differ, or ``inline`` out of range.
        OutputError: The PNG cannot be written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    given = {k: v for k, v in (("noisy", noisy), ("clean", clean), ("denoised", denoised)) if v is not None}
    if not given:
        raise InputError("preview has no volume to show", expected="clean, noisy and/or denoised")
    shapes = {k: np.shape(v) for k, v in given.items()}
    first = next(iter(shapes.values()))
    if len(first) != 3 or any(s != first for s in shapes.values()):
        raise InputError("preview volumes are not 3-D volumes of one shape", received=shapes,
                         expected="(inline, crossline, sample) each")
    n_il = first[0]
    inline = n_il // 2 if inline is None else int(inline)
    if not 0 <= inline < n_il:
        raise InputError("preview inline is out of range", received=inline, expected=f"0..{n_il - 1}")

    # (crossline, sample) -> (sample, crossline): time runs down the page.
    panels = [(name, np.asarray(v[inline], dtype=np.float64).T) for name, v in given.items()]
    centred = {"noisy - denoised"}
    if noisy is not None and denoised is not None:
        signal = panels[[p[0] for p in panels].index("denoised")][1]
        removed = panels[0][1] - signal
        panels.append(("noisy - denoised", removed))
    elif noisy is not None and clean is not None:
        panels.append(("noise (noisy - affine fit of clean)", _affine_residual(panels[0][1], panels[1][1])))

    n_t, n_x = panels[0][1].shape
    width = max(2.2, min(5.0, 8.0 * n_x / n_t))
    fig = Figure(figsize=(width * len(panels) + 0.6, 8.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (name, img) in zip(axes, panels):
        # The difference is centred on zero (what "nothing" is for them), the data on
        # their median (a volume on an offset would otherwise be one colour).
        centre = 0.0 if name in centred else float(np.median(img))
        clip = float(np.percentile(np.abs(img - centre), 99)) or 1.0
        im = ax.imshow(img, cmap="seismic", vmin=centre - clip, vmax=centre + clip, aspect="auto",
                       interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("crossline")
        fig.colorbar(im, ax=ax, orientation="horizontal", fraction=0.04, pad=0.01, aspect=30)
    axes[0].set_ylabel("sample index")
    fig.suptitle(title or f"inline {inline}", fontsize=11)

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError("cannot write the preview PNG", received=f"{path} ({exc.strerror or exc})",
                          todo="pick a writable path") from exc
    with atomic_write(path, what="cannot write the preview PNG") as out:
        fig.savefig(out.tmp, format="png")
    return path


def _affine_residual(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """``noisy - (a * clean + b)``: the noise in the noisy volume's units (sections are ``(sample, trace)``).

    a, b are fitted by least squares on the top 10 % of the samples, the water column, where the challenge
    (and the synthetic generator) adds no noise; a fit over everything would leak strong reflectors (the
    seafloor) into the residual. Falls back to the whole section where the top is flat.
    """
    top = max(8, clean.shape[0] // 10)
    c, n = clean[:top], noisy[:top]
    if np.std(c) <= 1e-6 * (np.std(clean) + 1e-30):
        c, n = clean, noisy
    a, b = np.polyfit(c.ravel(), n.ravel(), 1)
    return noisy - (a * clean + b)


def section_axes(reader, section: tuple[str, int]) -> dict:
    """Axis labels of section ``section`` (``("inline" | "crossline", index)``) of a reader, for the preview.

    Reads what the reader has (duck-typed, nothing guessed): ``ilines`` / ``xlines`` (the trace numbers of
    SEG-Y), ``samples`` (its time axis, ms), ``sample_interval_ms``, ``depth``.

    Returns:
        Keyword arguments of :func:`draw_run_preview` (``trace_label``, ``trace_numbers``, ``sample_interval``,
        ``start``, ``depth``, ``section_label``).
    """
    from impeccable.core.qc import sample_interval_ms

    view, index = section
    ilines, xlines = getattr(reader, "ilines", None), getattr(reader, "xlines", None)
    two_d = getattr(getattr(reader, "geometry", None), "kind", "") == "2-D"
    if view == "inline":
        numbers, label = xlines, ("trace" if two_d else "crossline")
        own = ilines[index] if ilines is not None else index
        name = f"line {own}" if two_d else f"inline {own}"
    else:
        numbers, label = ilines, "inline"
        name = f"crossline {xlines[index] if xlines is not None else index}"
    samples = getattr(reader, "samples", None)
    return {"trace_label": label, "trace_numbers": None if numbers is None else np.asarray(numbers),
            "sample_interval": sample_interval_ms(reader),
            "start": float(samples[0]) if samples is not None and len(samples) else 0.0,
            "depth": bool(getattr(reader, "depth", False)), "section_label": name}


def save_run_preview(path: str | Path, reader, section: tuple[str, int], denoised: np.ndarray,
                     title: str | None = None) -> Path:
    """The ``--preview`` PNG of one section of a run (see the module docstring for what is drawn).

    Args:
        path: The PNG to write.
        reader: The run's input reader, canonical ``(inline, crossline, sample)``.
        section: ``("inline", i)`` or ``("crossline", j)``.
        denoised: That section of the output in the input's units, ``(1, crossline, sample)`` (an inline) or
            ``(inline, 1, sample)`` (a crossline) float32.
        title: Figure title (e.g. the output's name); the section's name is added.
    """
    view, index = section
    if view == "inline":
        noisy, out = reader.read(inlines=slice(index, index + 1))[0], np.asarray(denoised)[0]
    else:
        noisy, out = reader.read(crosslines=slice(index, index + 1))[:, 0], np.asarray(denoised)[:, 0]
    noisy = np.where(np.isfinite(noisy), noisy, out)  # a hole in the input shows as no difference
    return draw_run_preview(path, noisy, out, title=title, **section_axes(reader, section))


def _extent(n: int, numbers: np.ndarray | None) -> tuple[tuple[float, float], bool]:
    """The edges of ``n`` cells numbered ``numbers`` (regularly spaced), or of indices where they are not."""
    if numbers is not None and len(numbers) == n and n > 1:
        step = np.diff(np.asarray(numbers, dtype=np.float64))
        if np.all(step == step[0]) and step[0] != 0:
            return (float(numbers[0]) - step[0] / 2, float(numbers[-1]) + step[0] / 2), True
    if numbers is not None and len(numbers) == 1:
        return (float(numbers[0]) - 0.5, float(numbers[0]) + 0.5), True
    return (-0.5, n - 0.5), False


def draw_run_preview(path: str | Path, noisy: np.ndarray, denoised: np.ndarray, *, trace_label: str = "trace",
                     trace_numbers: np.ndarray | None = None, sample_interval: float | None = None,
                     start: float = 0.0, depth: bool = False, section_label: str = "",
                     title: str | None = None) -> Path:
    """Draw input, output, removed part (one clip), local similarity (0..1) and spectra of one section.

    Args:
        path: The PNG to write (atomically).
        noisy: The input section ``(traces, samples)`` in its units.
        denoised: The output section, same shape and units.
        trace_label: What the traces are called on the x axis (``crossline``, ``inline``, ``trace``).
        trace_numbers: Their numbers (e.g. SEG-Y crossline numbers), or None for indices.
        sample_interval: ms (m for depth), or None: the vertical axis is then the sample index, and says so.
        start: Time (or depth) of the first sample.
        depth: The vertical axis is depth.
        section_label: The section's name (``inline 1150``).
        title: Figure title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from impeccable.core.qc import BAND_WARN, LOW_HZ, local_similarity, merge_qc, qc_part

    x = np.asarray(noisy, dtype=np.float64)
    y = np.asarray(denoised, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape:
        raise InputError("preview sections differ in shape", received=f"{x.shape} and {y.shape}",
                         expected="two (traces, samples) sections of one shape")
    removed = x - y
    centre = float(np.median(x))
    clip = float(np.percentile(np.abs(x - centre), 99)) or float(np.abs(x - centre).max()) or 1.0
    similarity, defined = local_similarity(removed, y - float(np.mean(x)))
    similarity = np.where(defined, np.abs(similarity), np.nan)
    q = merge_qc([qc_part(0, x[None].astype(np.float32), y[None].astype(np.float32), None, mean=float(np.mean(x)),
                          sampled=[0])], sample_interval, depth)

    n_tr, n_t = x.shape
    (x0, x1), numbered = _extent(n_tr, trace_numbers)
    if sample_interval:
        t0, t1 = start - sample_interval / 2, start + (n_t - 0.5) * sample_interval
        vlabel = "depth (m)" if depth else "time (ms)"
    else:
        t0, t1 = -0.5, n_t - 0.5
        vlabel = "sample index (sample interval unknown)"
    xlabel = trace_label if numbered else f"{trace_label} index"

    width = max(2.2, min(5.0, 8.0 * n_tr / n_t))
    fig = Figure(figsize=(4 * width + 5.2, 8.8), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 5, width_ratios=[width] * 4 + [4.2], height_ratios=[1, 0.03])
    images = [("input", x, centre, "seismic"), ("output", y, centre, "seismic"),
              ("removed (input - output)", removed, 0.0, "seismic")]
    first, drawn = None, []
    for col, (name, img, c, cmap) in enumerate(images):
        ax = fig.add_subplot(grid[0, col], sharey=first)
        first = first or ax
        im = ax.imshow(img.T, cmap=cmap, vmin=c - clip, vmax=c + clip, aspect="auto", interpolation="nearest",
                       extent=(x0, x1, t1, t0))
        drawn.append(im)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
        if col:
            ax.tick_params(labelleft=False)
    first.set_ylabel(vlabel)
    cax = fig.add_subplot(grid[1, 0:3])
    bar = fig.colorbar(drawn[0], cax=cax, orientation="horizontal")
    bar.set_label(f"input and output amplitude, one clip; the removed part on the same clip about 0\n"
                  f"(+-{clip:.4g}: the input's 99th percentile of |deviation from its median|)", fontsize=8)
    ax = fig.add_subplot(grid[0, 3], sharey=first)
    sim = ax.imshow(similarity.T, cmap="magma", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest",
                    extent=(x0, x1, t1, t0))
    ax.set_title("local similarity |removed, output|", fontsize=10)
    ax.set_xlabel(xlabel)
    ax.tick_params(labelleft=False)
    fig.colorbar(sim, cax=fig.add_subplot(grid[1, 3]), orientation="horizontal").set_label(
        "0 (noise removed)\n.. 1 (signal removed)", fontsize=8)

    ax = fig.add_subplot(grid[0, 4])
    spectra = q["spectra"]
    freq = np.asarray(spectra["frequency"])
    peak = max(float(np.max(spectra["input"])), 1e-300)
    for key, colour in (("input", "k"), ("output", "tab:blue"), ("removed", "tab:red")):
        amp = np.maximum(np.asarray(spectra[key]), peak * 1e-6)
        ax.plot(freq, 20 * np.log10(amp / peak), color=colour, lw=1.2, label=key)
    if q["signal_band"]:
        for k, f in enumerate(q["signal_band"]):
            ax.axvline(f, color="0.5", ls=":", lw=1, label=None if k else "signal band (input within -20 dB)")
    if q["frequency_unit"] == "Hz":
        ax.axvspan(0, LOW_HZ, color="0.9", zorder=0, label=f"below {LOW_HZ:g} Hz")
    ax.set_ylim(-60, 6)
    ax.set_xlim(0, float(freq[-1]) if freq.size else 1.0)
    ax.set_xlabel(f"frequency ({q['frequency_unit']})")
    ax.set_ylabel("amplitude (dB below the input's peak)")
    low = q["low_frequency"].get("below_8_hz") or q["low_frequency"].get("below_signal_band")
    note = ""
    if low and low["output_over_input"] is not None:
        note = (f"output/input energy below {low['below']:.3g} {q['frequency_unit']}:\n"
                f"{low['output_over_input']:.2f}x") + (
            " (ADDED)" if low["output_over_input"] > BAND_WARN else "")
    ax.set_title("amplitude spectra, this section", fontsize=10)
    if note:
        ax.text(0.03, 0.03, note.strip(), transform=ax.transAxes, fontsize=8, va="bottom",
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.7"})
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    fig.suptitle(" - ".join(t for t in (title, section_label) if t)
                 + f": removed {q['removed_energy']:.1%} of the energy; removed part's trace-to-trace "
                   f"correlation {q['coherence']['removed']:.2f}", fontsize=11)

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError("cannot write the preview PNG", received=f"{path} ({exc.strerror or exc})",
                          todo="pick a writable path") from exc
    with atomic_write(path, what="cannot write the preview PNG") as out:
        fig.savefig(out.tmp, format="png")
    return path
