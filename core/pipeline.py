"""From a folder of images to a :class:`Fingerprint`: scan, sample, extract, histogram."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from core.backbones import POSTACT, LoadedBackbone
from core.binning import BinEdges
from core.dataset import ImageDataset, ReadReport, open_dataset
from core.errors import InputFolderError
from core.extract import DEFAULT_BATCH_SIZE, ProgressCallback, iter_features
from core.fingerprint import Fingerprint, FingerprintMeta, HistogramAccumulator
from core.readers.nifti import DEFAULT_SLICE_AXIS
from core.sampling import SamplingProtocol


@dataclass
class FingerprintRun:
    """A fingerprint with the read report of the images it was made from."""

    fingerprint: Fingerprint
    report: ReadReport


def fingerprint_dataset(dataset: ImageDataset, backbone: LoadedBackbone, edges: BinEdges,
                        protocol: SamplingProtocol, name: str = "my task", batch_size: int = DEFAULT_BATCH_SIZE,
                        progress: ProgressCallback | None = None, keep_samples: bool = False,
                        cancel: threading.Event | None = None, include_classes: bool = True) -> Fingerprint:
    """Fingerprint an opened dataset. ``keep_samples`` keeps per-sample bins and features for bootstrapping."""
    if edges.n_features != backbone.feature_dim:
        raise ValueError(f"bin edges have {edges.n_features} features but {backbone.spec.name} gives "
                         f"{backbone.feature_dim}: use edges made with the same backbone")
    accumulator = HistogramAccumulator(edges, keep_samples=keep_samples)
    separate_postact = backbone.probe != POSTACT
    for batch in iter_features(dataset, backbone, protocol, batch_size, progress, cancel):
        accumulator.add(batch.probes[backbone.probe], batch.probes[POSTACT] if separate_postact else None)
    if accumulator.n == 0:
        raise InputFolderError(f"{name}: none of the sampled images could be decoded; see the skipped files")
    report = dataset.report
    meta = FingerprintMeta(
        name=name, backbone=backbone.spec.name, weights_sha256=backbone.weights_sha256,
        feature_dim=backbone.feature_dim, edges_id=edges.identity, n_samples=accumulator.n,
        protocol=protocol.to_dict(), class_counts=report.class_counts() if include_classes else {},
        format_counts=_format_counts(report), probe=backbone.probe, backend=backbone.backend)
    return accumulator.fingerprint(meta, keep_samples)


def fingerprint_folder(source: str | Path, backbone: LoadedBackbone, edges: BinEdges, protocol: SamplingProtocol,
                       name: str | None = None, slice_axis: int = DEFAULT_SLICE_AXIS,
                       batch_size: int = DEFAULT_BATCH_SIZE, progress: ProgressCallback | None = None,
                       keep_samples: bool = False, cancel: threading.Event | None = None,
                       workdir: Path | None = None) -> FingerprintRun:
    """Scan ``source`` (folder or .zip) and fingerprint it; temporary extractions are removed afterwards."""
    with open_dataset(source, slice_axis=slice_axis, workdir=workdir) as dataset:
        fingerprint = fingerprint_dataset(dataset, backbone, edges, protocol, name or Path(source).stem,
                                          batch_size, progress, keep_samples, cancel)
        return FingerprintRun(fingerprint, dataset.report)


def _format_counts(report: ReadReport) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (fmt, _), n in report.images.items():
        counts[fmt] = counts.get(fmt, 0) + n
    return dict(sorted(counts.items()))
