"""Streaming feature extraction, one batch at a time, so memory does not grow with n. Decoding, resizing and cropping
run in a background thread, at most 4 batches ahead, overlapping the forward pass (ONNX Runtime releases the GIL;
with PyTorch eager on 2 cores a concurrent decoder stalls the forward pass, so there it runs in line), and one batch
waits queued behind the running one. A file that fails to decode is listed in the dataset's report and its
samples are dropped; the run goes on."""
from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from core.errors import UnreadableImageError
from core.features.backbones import LoadedBackbone
from core.features.inference import backend_of, engine_for, submit
from core.features.preprocess import CROP, PreparedImage, prepare
from core.features.sampling import SamplePlan, SamplingProtocol, plan_samples
from core.images.dataset import ImageDataset


@dataclass(frozen=True)
class ExtractionProgress:
    """Samples done of total, throughput in images per second and estimated seconds left (None until known)."""

    done: int
    total: int
    images_per_s: float
    eta_s: float | None


ProgressCallback = Callable[[ExtractionProgress], None]


@dataclass(frozen=True)
class FeatureBatch:
    """Features of b samples. ``probes``: probe name -> (b, dim) float32 pooled features, all from one forward pass;
    ``images``: (b,) int, the dataset index of the image each row was cropped from (for image-disjoint splits)."""

    probes: dict[str, np.ndarray]
    images: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    @staticmethod
    def concatenate(parts: list["FeatureBatch"], probes: tuple[str, ...], dims: dict[str, int]) -> "FeatureBatch":
        if not parts:
            return FeatureBatch({p: np.empty((0, dims[p]), np.float32) for p in probes}, np.empty(0, np.int64))
        return FeatureBatch({p: np.concatenate([part.probes[p] for part in parts]) for p in probes},
                            np.concatenate([part.images for part in parts]))


class ExtractionCancelled(Exception):
    """Raised by :func:`iter_features` when the caller's cancel event is set."""


def crop_batches(dataset: ImageDataset, plan: SamplePlan, batch_size: int,
                 cancel: threading.Event) -> Iterator[tuple[np.ndarray | None, int, np.ndarray]]:
    """(crops (b, 224, 224, 3) uint8 RGB or None, samples consumed, (b,) image indices) per batch of ``plan``'s
    samples (:func:`~core.features.sampling.plan_samples`). Each sampled image is decoded once for all its crops; a
    file that fails is listed in the report and its samples are dropped."""
    buffer = np.empty((batch_size, CROP, CROP, 3), dtype=np.uint8)
    images = np.empty(batch_size, dtype=np.int64)
    filled = consumed = 0
    current, prepared = -1, None
    reported: set[tuple[str, str]] = set()  # the slices of one broken volume fail alike: one row per file
    for sample in plan.grouped_order():
        if cancel.is_set():
            return
        consumed += 1
        index = int(plan.image[sample])
        if index != current:
            current, prepared = index, None
            item = dataset.items[index]
            try:
                prepared = PreparedImage(prepare(dataset.read(item)))
            except UnreadableImageError as err:
                _skip_once(dataset, reported, item.key, f"{err} (found while sampling; its samples were dropped)")
            except Exception as err:  # never let one file stop a long run
                _skip_once(dataset, reported, item.key,
                           f"unexpected error ({type(err).__name__}: {err}); samples dropped")
        if prepared is None:
            dataset.report.dropped_samples[item.key] += 1
            continue
        prepared.crop_into(buffer[filled], int(plan.top[sample]), int(plan.left[sample]), bool(plan.flip[sample]))
        images[filled] = index
        filled += 1
        if filled == batch_size:
            yield buffer.copy(), consumed, images.copy()
            filled = consumed = 0
    if filled or consumed:
        yield (buffer[:filled].copy() if filled else None), consumed, images[:filled].copy()


def _skip_once(dataset: ImageDataset, reported: set[tuple[str, str]], key: str, reason: str) -> None:
    """List a file that failed while sampling, once per file and reason however many of its frames failed."""
    if (key, reason) not in reported:
        reported.add((key, reason))
        dataset.report.skip(key, reason)


def _in_background(batches: Iterator) -> Iterator:
    """Run a batch generator in a decoder thread, at most 4 batches ahead. The thread is stopped when the consumer
    stops (finished, cancelled or failed); the caller's cancel event is never touched."""
    handoff: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                handoff.put(batch)
        except BaseException as err:  # hand any failure to the consumer instead of hanging it
            handoff.put(err)
            return
        handoff.put(None)

    thread = threading.Thread(target=produce, name="fingerprint-decoder", daemon=True)
    thread.start()
    try:
        while (message := handoff.get()) is not None:
            if isinstance(message, BaseException):
                raise message
            yield message
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                handoff.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def decode_in_background_default(backbone: LoadedBackbone | None = None) -> bool:
    """Decode in a separate thread with ONNX Runtime, or with more than 2 cores. With PyTorch eager on 2 cores the
    forward pass already uses both cores and a concurrent decoder stalls it one-for-one (measured:
    bench/extract.py)."""
    return (os.cpu_count() or 1) > 2 or (backbone is not None and backend_of(backbone) == "onnxruntime")


def iter_features(dataset: ImageDataset, backbone: LoadedBackbone, protocol: SamplingProtocol,
                  batch_size: int | None = None, progress: ProgressCallback | None = None,
                  cancel: threading.Event | None = None, background: bool | None = None,
                  probes: tuple[str, ...] | None = None) -> Iterator[FeatureBatch]:
    """Yield a :class:`FeatureBatch` per batch for the protocol's n samples of ``dataset``.

    ``batch_size``: crops per batch (default: the backend's :attr:`~core.features.inference.Engine.batch_size`).
    ``probes``: which probes to return (default: the backbone's probe and ``postact``, which P2L uses), all from
    one forward pass. ``background``: decode in a separate thread (default: :func:`decode_in_background_default`).
    """
    batch_size = engine_for(backbone).batch_size if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    cancel = cancel or threading.Event()
    batches = crop_batches(dataset, plan_samples(len(dataset), protocol), batch_size, cancel)
    if decode_in_background_default(backbone) if background is None else background:
        batches = _in_background(batches)
    wanted = probes or backbone.run_probes()
    started, done = time.perf_counter(), 0
    in_flight: deque = deque()  # (pending features or None, samples consumed, image indices)

    def finish(pending, consumed: int, images: np.ndarray) -> Iterator[FeatureBatch]:
        nonlocal done
        if pending is not None:
            features = pending.result()
            yield FeatureBatch({name: features[name] for name in wanted}, images)
        done += consumed
        if progress is not None:
            elapsed = time.perf_counter() - started
            rate = done / elapsed if elapsed > 0 else 0.0
            eta = (protocol.n - done) / rate if rate > 0 else None
            progress(ExtractionProgress(done, protocol.n, rate, eta))

    def stop_if_cancelled() -> None:  # batches stop early on cancel: never hand back a partial result as complete
        if cancel.is_set():
            raise ExtractionCancelled("fingerprinting was cancelled")

    try:
        for crops, consumed, images in batches:
            stop_if_cancelled()
            # a batch waits queued behind the running one, so the workers never idle while this thread counts
            in_flight.append((None if crops is None else submit(backbone, crops, probes), consumed, images))
            if len(in_flight) > 1:
                yield from finish(*in_flight.popleft())
        while in_flight:
            stop_if_cancelled()
            yield from finish(*in_flight.popleft())
        stop_if_cancelled()
    finally:  # cancelled, failed or abandoned by the caller: queued runs are dropped, not left to run
        for pending, _, _ in in_flight:
            if pending is not None:
                pending.cancel()


def extract_all(dataset: ImageDataset, backbone: LoadedBackbone, protocol: SamplingProtocol,
                probes: tuple[str, ...], batch_size: int | None = None,
                progress: ProgressCallback | None = None) -> FeatureBatch:
    """All samples' features of several probes in memory (n_effective rows each): for building the catalogue
    (reference edges, image-disjoint halves, every probe's validity figures), not for user folders."""
    parts = list(iter_features(dataset, backbone, protocol, batch_size, progress, probes=probes))
    return FeatureBatch.concatenate(parts, probes, {p: backbone.probe_dim(p) for p in probes})
