"""What a run did: one report and one summary wording for every driver (one process, ``--cluster``, the API).

``--report FILE`` writes :meth:`RunReport.as_dict`: the same keys from every driver; a cluster run adds its own
(``workers``, ``slabs``, ``resumed``, ``retries``, ``dashboard``). :func:`summary_lines` are the lines the
command prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from impeccable.core.amplitude import VolumeStats


@dataclass(frozen=True)
class ClusterRun:
    """What a ``--cluster`` run adds to its report.

    Attributes:
        workers: Per worker address: sections, seconds inside its prediction tasks, sections/s.
        slabs: Tasks per pass (``inline``, ``crossline``).
        resumed: Slabs an earlier attempt had done (all passes), not recomputed.
        retries: Task retries the scheduler made.
        dashboard: The dashboard's address, if any.
    """

    workers: dict
    slabs: dict
    resumed: int = 0
    retries: int = 0
    dashboard: str | None = None

    def as_dict(self) -> dict:
        return {"slabs": self.slabs, "resumed": self.resumed, "retries": self.retries, "workers": self.workers,
                "dashboard": self.dashboard}


@dataclass(frozen=True)
class RunReport:
    """What a run did and how long it took.

    Attributes:
        output: The written file.
        sections: Sections denoised (all views; on a cluster, in this attempt).
        images: Engine images (tiles x TTA copies).
        engine_s: Seconds inside engine calls (on a cluster, summed over the workers).
        total_s: Wall seconds of the whole run.
        nonfinite: NaN/Inf samples, filled with ``stats.fill_value`` (the finite mean) before normalizing;
            the output there holds the denoised value.
        stats: The input's min/max and non-finite count.
        engine: Engine name and precision.
        load_s: Seconds spent creating the engine (0 when one was passed in, or on a cluster), part of ``total_s``.
        batch_size: The batch the run used (``--batch-size`` bounded,
            :func:`~impeccable.runtime.memory.run_batch`).
        batch_note: Why it differs from the one asked for ("" when it does not).
        stale_removed: Temp files of dead runs removed beside the output.
        fit: The amplitude fit (:meth:`~impeccable.core.calibration.AmplitudeFit.as_dict`).
        qc: The QC figures (:func:`impeccable.core.qc.merge_qc`).
        strength: The ``--strength`` used.
        cluster: What a ``--cluster`` run adds (None in one process).
        sampling: The data's and the model's sample intervals (:meth:`~impeccable.runtime.predict.Sampling.as_dict`).
        output_guard: What was done to each output section (:meth:`~impeccable.core.output_guard.OutputGuard.as_dict`).
    """

    output: Path
    sections: int
    images: int
    engine_s: float
    total_s: float
    nonfinite: int
    stats: VolumeStats
    engine: str
    load_s: float = 0.0
    batch_size: int = 0
    batch_note: str = ""
    stale_removed: tuple[Path, ...] = ()
    fit: dict = field(default_factory=dict)
    qc: dict = field(default_factory=dict)
    strength: float = 1.0
    cluster: ClusterRun | None = None
    sampling: dict = field(default_factory=dict)
    output_guard: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The report as JSON-ready data (``--report FILE``)."""
        out = {"output": str(self.output), "engine": self.engine, "sections": self.sections, "images": self.images,
               "total_s": self.total_s, "engine_s": self.engine_s, "load_s": self.load_s,
               "sections_per_s": self.sections_per_s, "batch_size": self.batch_size,
               "input": {"min": self.stats.vmin, "max": self.stats.vmax, "nonfinite": self.nonfinite},
               "strength": self.strength, "sampling": self.sampling, "output_guard": self.output_guard,
               "amplitude_fit": self.fit, "qc": self.qc}
        if self.cluster is not None:
            out.update(self.cluster.as_dict())
        return out

    @property
    def sections_per_s(self) -> float:
        """End-to-end throughput."""
        return self.sections / self.total_s if self.total_s > 0 else 0.0

    @property
    def pipeline_s(self) -> float:
        """Seconds of the run spent outside the engine's calls and its creation (reading, tiling, writing...)."""
        return max(0.0, self.total_s - self.engine_s - self.load_s)

    # A cluster run's own figures, read where they were before one report served every driver.
    @property
    def workers(self) -> dict:
        return self.cluster.workers if self.cluster else {}

    @property
    def slabs(self) -> dict:
        return self.cluster.slabs if self.cluster else {}

    @property
    def resumed(self) -> int:
        return self.cluster.resumed if self.cluster else 0

    @property
    def retries(self) -> int:
        return self.cluster.retries if self.cluster else 0

    @property
    def dashboard(self) -> str | None:
        return self.cluster.dashboard if self.cluster else None


def summary_lines(report: RunReport, preview: Path | None = None) -> list[str]:
    """The lines a run prints on stdout: what ran and how fast, the cluster's share (if any), the QC."""
    lines = [f"denoised {report.sections} sections with {report.engine} at batch {report.batch_size} "
             f"in {report.total_s:.1f} s ({report.sections_per_s:.2f} sections/s; engine {report.engine_s:.1f} s, "
             f"loading {report.load_s:.1f} s, reading/tiling/writing {report.pipeline_s:.1f} s) -> {report.output}"
             + (f", preview {preview}" if preview is not None else "")]
    if report.cluster is not None:
        lines.append(cluster_line(report.cluster))
    if report.sampling:
        lines.append(sampling_line(report.sampling))
    lines.append(qc_line(report))
    return lines


def sampling_line(sampling: dict) -> str:
    """The sample interval the run took and where from, said once."""
    model = f"the model's {sampling['model_ms']:g} ms"
    if sampling["source"] == "unknown":
        return f"sample interval unknown: run at {model} (pass --sample-interval MS if the data differ)"
    if sampling["source"] == "depth":
        return (f"depth volume: its sample interval is not compared with a model trained in time; run at {model} "
                "(pass --sample-interval to resample)")
    given = "--sample-interval" if sampling["source"] == "option" else "the file"
    if sampling["resampled"]:
        return f"sample interval {sampling['data_ms']:g} ms ({given}): resampled to {model} and back"
    return f"sample interval {sampling['data_ms']:g} ms ({given}): {model}, no resampling"


def notes(report: RunReport) -> list[str]:
    """What the run tells on stderr: stale temporaries removed, the batch bound, NaN/Inf filled, QC warnings."""
    out = []
    if report.stale_removed:
        out.append(f"removed {len(report.stale_removed)} temporary file(s) of dead runs beside the output: "
                   + ", ".join(p.name for p in report.stale_removed))
    if report.batch_note:
        out.append(report.batch_note)
    if report.nonfinite:
        out.append(f"filled {report.nonfinite} NaN/Inf samples with the volume's finite mean "
                   f"({report.stats.fill_value:g}) before normalizing; the output holds the denoised value there")
    return out


def warnings(report: RunReport) -> list[str]:
    """The QC's warnings, each a line to show as ``Warning: ...``."""
    return list(report.qc.get("warnings", []))


def cluster_line(cluster: ClusterRun) -> str:
    """The line of ``--cluster``: workers and their throughput, slabs, retries, resumed slabs."""
    per_worker = ", ".join(f"{addr.rsplit('/', 1)[-1]} {w['sections']} sections {w['sections_per_s']:.2f}/s"
                           for addr, w in sorted(cluster.workers.items()))
    slabs = f"{cluster.slabs['inline']} inline" + (f" + {cluster.slabs['crossline']} crossline"
                                                   if cluster.slabs["crossline"] else "")
    return (f"on {len(cluster.workers)} workers (per worker: {per_worker or 'none'}); slabs: {slabs}; "
            f"retries {cluster.retries}; slabs resumed {cluster.resumed}")


def qc_line(report: RunReport) -> str:
    """The QC line every run prints, in words (:func:`impeccable.core.qc.summary_words`); the numbers in --report."""
    from impeccable.core.qc import summary_words

    return report.qc.get("summary") or summary_words(report.qc)
