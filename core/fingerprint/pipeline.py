"""From a folder of images to a :class:`Fingerprint`: scan, sample, extract, histogram."""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path

from core.errors import InputFolderError
from core.features.backbones import POSTACT, LoadedBackbone
from core.features.extract import ProgressCallback, iter_features
from core.features.inference import backend_of
from core.features.sampling import SamplingProtocol, reuse_note
from core.fingerprint.binning import BinEdges
from core.fingerprint.fingerprint import Fingerprint, FingerprintMeta, HistogramAccumulator
from core.images.dataset import ImageDataset, ReadReport, open_dataset
from core.images.readers.nifti import DEFAULT_SLICE_AXIS
from core.text import printable, printable_counts


@dataclass
class FingerprintRun:
    """A fingerprint with the read report of the images it was made from."""

    fingerprint: Fingerprint
    report: ReadReport


def fingerprint_dataset(dataset: ImageDataset, backbone: LoadedBackbone, edges: BinEdges,
                        protocol: SamplingProtocol, name: str = "my task", batch_size: int | None = None,
                        progress: ProgressCallback | None = None, keep_samples: bool = False,
                        cancel: threading.Event | None = None, include_classes: bool = True,
                        allow_partial: bool = False) -> Fingerprint:
    """Fingerprint an opened dataset. ``keep_samples`` keeps per-sample bins and features for bootstrapping.

    Samples of files that fail while decoding are dropped and noted in the report; when more than half of
    ``protocol.n`` are lost, :class:`InputFolderError` names the file that lost most, unless ``allow_partial``."""
    if edges.n_features != backbone.feature_dim:
        raise ValueError(f"bin edges have {edges.n_features} features but {backbone.spec.name} gives "
                         f"{backbone.feature_dim}: use edges made with the same backbone")
    accumulator = HistogramAccumulator(edges, keep_samples=keep_samples)
    separate_postact = backbone.probe != POSTACT
    for batch in iter_features(dataset, backbone, protocol, batch_size, progress, cancel):
        accumulator.add(batch.probes[backbone.probe], batch.probes[POSTACT] if separate_postact else None)
    name = printable(name)
    if accumulator.n == 0:
        raise InputFolderError(f"{name}: none of the sampled images could be decoded; see the skipped files")
    report = dataset.report
    report.sampling_note = reuse_note(len(dataset), protocol.n) or ""
    _check_lost_samples(report, protocol.n, accumulator.n, allow_partial)
    meta = FingerprintMeta(
        name=name, backbone=backbone.spec.name, weights_sha256=backbone.weights_sha256,
        feature_dim=backbone.feature_dim, edges_id=edges.identity, n_samples=accumulator.n,
        protocol=protocol.to_dict(), class_counts=printable_counts(report.class_counts()) if include_classes else {},
        format_counts=_format_counts(report), probe=backbone.probe, postact_dim=backbone.probe_dim(POSTACT),
        backend=backend_of(backbone))
    return accumulator.fingerprint(meta, keep_samples)


def fingerprint_folder(folder: str | Path, backbone: LoadedBackbone, edges: BinEdges, protocol: SamplingProtocol,
                       name: str | None = None, slice_axis: int = DEFAULT_SLICE_AXIS,
                       batch_size: int | None = None, progress: ProgressCallback | None = None,
                       keep_samples: bool = False, cancel: threading.Event | None = None,
                       workdir: Path | None = None, allow_partial: bool = False) -> FingerprintRun:
    """Scan ``folder`` (a folder of images or a .zip) and fingerprint it; temporary extractions are removed
    afterwards."""
    with open_dataset(folder, slice_axis=slice_axis, workdir=workdir) as dataset:
        fingerprint = fingerprint_dataset(dataset, backbone, edges, protocol, name or Path(folder).stem,
                                          batch_size, progress, keep_samples, cancel, allow_partial=allow_partial)
        return FingerprintRun(fingerprint, dataset.report)


def with_probe(fingerprint: Fingerprint, probe: str, edges: BinEdges) -> Fingerprint:
    """The same samples' fingerprint under another probe of the same forward pass, with no image read again: a run
    keeps its post-activation features beside its probe's (``sample_postact``, with ``keep_samples``), binned here
    with ``edges`` (those of the catalogue made with that probe). Equals a run made with that probe (its mean is the
    run's post-activation mean, summed batch by batch as such a run sums it)."""
    if probe == fingerprint.meta.probe:
        return fingerprint
    if probe != POSTACT or fingerprint.sample_postact is None:
        raise ValueError(f"a fingerprint of probe '{fingerprint.meta.probe}' holds the samples of probe "
                         f"'{POSTACT}' only (and only when it kept its samples), not of '{probe}'")
    accumulator = HistogramAccumulator(edges, keep_samples=True)
    accumulator.add(fingerprint.sample_postact)
    dim = fingerprint.sample_postact.shape[1]
    meta = replace(fingerprint.meta, probe=POSTACT, edges_id=edges.identity, feature_dim=dim, postact_dim=dim)
    made = accumulator.fingerprint(meta, keep_samples=True)
    return replace(made, mean=fingerprint.postact_mean, postact_mean=fingerprint.postact_mean)


def _format_counts(report: ReadReport) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (fmt, _), n in report.images.items():
        counts[fmt] = counts.get(fmt, 0) + n
    return dict(sorted(counts.items()))


def _check_lost_samples(report: ReadReport, asked: int, kept: int, allow_partial: bool) -> None:
    """Say why a fingerprint holds fewer samples than asked (a report note), and fail when more than half were
    lost, naming the file that lost most, unless ``allow_partial``."""
    lost = asked - kept
    if lost <= 0:
        return
    worst, worst_lost = report.dropped_samples.most_common(1)[0] if report.dropped_samples else ("?", lost)
    reason = next((s.reason for s in reversed(report.skipped) if s.path == worst), "failed while decoding")
    message = (f"{lost:,} of {asked:,} samples were lost to files that failed while decoding, {worst_lost:,} of "
               f"them to {worst} ({reason})")
    if lost * 2 > asked and not allow_partial:
        raise InputFolderError(f"{message}; only {kept:,} samples are left. Fix or remove the file, or allow a "
                               "partial fingerprint (--allow-partial)")
    report.notes.append(("fingerprint", f"holds {kept:,} samples, not {asked:,}: {message}"))
