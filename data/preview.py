"""A PNG of one inline section of a volume pair, so a person can judge data and results by eye.

Panels, left to right, for whatever is given: noisy, clean, denoised, and a difference (``noisy - denoised``
when both exist, else the noise of a synthetic pair, ``noisy`` minus its least-squares affine fit to ``clean``,
since the challenge's noisy volumes sit on another amplitude scale than the clean ones). Each panel has its own
symmetric colour clip: its median +- the 99th percentile of the absolute deviation from that median.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from impeccable.core.atomic import atomic_write
from impeccable.core.errors import InputError, OutputError


def save_pair_preview(path: str | Path, clean: np.ndarray | None = None, noisy: np.ndarray | None = None,
                      denoised: np.ndarray | None = None, *, inline: int | None = None,
                      title: str | None = None, leakage: bool = False) -> Path:
    """Write a PNG of inline section ``inline`` (time running down) of the given volumes.

    Args:
        path: The PNG to write (written to a temporary file, then renamed).
        clean: ``(inline, crossline, sample)`` clean volume, any real dtype, or None.
        noisy: The noisy volume, same shape, or None.
        denoised: A denoised volume, same shape, or None (``impeccable-denoise --preview`` passes
            ``noisy`` and ``denoised``).
        inline: The inline index; the middle one by default.
        title: Figure title.
        leakage: With ``noisy`` and ``denoised``: add a panel of the local similarity between the removed part
            and the denoised signal (:func:`impeccable.core.qc.local_similarity`; red where signal leaked).

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
        if leakage:
            from impeccable.core.qc import local_similarity

            similarity, _ = local_similarity(removed.T, (signal - signal.mean()).T)
            panels.append(("local similarity (leakage)", similarity.T))
            centred.add("local similarity (leakage)")
    elif noisy is not None and clean is not None:
        panels.append(("noise (noisy - affine fit of clean)", _affine_residual(panels[0][1], panels[1][1])))

    n_t, n_x = panels[0][1].shape
    width = max(2.2, min(5.0, 8.0 * n_x / n_t))
    fig = Figure(figsize=(width * len(panels) + 0.6, 8.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (name, img) in zip(axes, panels):
        # The removed part and the similarity are centred on zero (what "nothing" is for them), the data on
        # their median (a volume on an offset would otherwise be one colour).
        centre = 0.0 if name in centred else float(np.median(img))
        clip = float(np.percentile(np.abs(img - centre), 99)) or 1.0
        if name == "local similarity (leakage)":
            clip = 1.0
        im = ax.imshow(img, cmap="seismic", vmin=centre - clip, vmax=centre + clip, aspect="auto",
                       interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("crossline")
        fig.colorbar(im, ax=ax, orientation="horizontal", fraction=0.04, pad=0.01, aspect=30)
    axes[0].set_ylabel("sample")
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
