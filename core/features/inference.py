"""Inference backends: what runs the backbone's forward pass for a fingerprint.

* ``torch``: PyTorch eager, the reference; the only backend on a GPU.
* ``onnxruntime``: an ONNX export of the *verified* weights run by ONNX Runtime on the CPU: one image and one thread
  per run, as many runs at once as there are cores (speed against PyTorch eager: bench/extract.py and the README's
  'Speed'). The model is exported on first use into a cache folder, never
  downloaded, and every time it is loaded it is checked against PyTorch on real photos: beyond
  :data:`TOLERANCE` it is refused (a damaged cache file is re-exported once) and the run falls back to PyTorch.

Both engines take crops as they come out of the pipeline, (N, 224, 224, 3) uint8 RGB, and return
{probe: (N, dim) float32 pooled features} from one forward pass. The ONNX graph includes the normalisation (uint8 in),
so the engines compute the same function of the same pixels.

Cache folder: ``$TFE_CACHE_DIR/onnx`` when TFE_CACHE_DIR is set, else ``$XDG_CACHE_HOME`` or ``~/.cache`` +
``/task-fingerprint-explorer/onnx``. A file's name holds the backbone, its weights' sha256, the probes, the export
recipe (core/features/onnx_export.py) and the torch and onnxruntime major.minor versions; it is written to a
temporary file and renamed, so a reader never sees half a file.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import threading
import warnings
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from core.features.batching import ONNXRUNTIME_BATCH, TORCH_CPU_BATCH, TORCH_GPU_BATCH
from core.features.onnx_export import EXPORT_RECIPE, export_onnx
from core.features.preprocess import CROP, prepare, to_model_input
from core.features.specs import BackboneSpec, pooled_probes, resolve_backend_choice

if TYPE_CHECKING:
    from core.features.backbones import LoadedBackbone

#: largest max abs difference of any pooled feature between the ONNX model and PyTorch on the check images; the
#: features' bin edges are ~1e-2 to 1e-1 wide, measured differences are ~1e-5
TOLERANCE = 1e-3
#: images per ONNX Runtime run: small runs keep a run's activations in the core's cache (measurements: README 'Speed')
RUN_SIZE = 1
CACHE_ENV = "TFE_CACHE_DIR"
log = logging.getLogger(__name__)


def _stack_runs(outputs: list[list[np.ndarray]], probes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """{probe: rows of every run, in run order} from each run's outputs (one array per probe, in ``probes`` order)."""
    return {name: np.concatenate([output[k] for output in outputs]) for k, name in enumerate(probes)}


class PendingFeatures:
    """The pooled probes of one batch, being computed: :meth:`result` waits for them and returns
    {probe: (N, dim) float32}, rows in the order of the batch."""

    def __init__(self, parts: list[Future], probes: tuple[str, ...]) -> None:
        self._parts, self._probes = parts, probes
        self._result: dict[str, np.ndarray] | None = None

    @classmethod
    def done(cls, features: dict[str, np.ndarray]) -> "PendingFeatures":
        pending = cls([], tuple(features))
        pending._result = features
        return pending

    def result(self) -> dict[str, np.ndarray]:
        """Waits for every run; an error in any run is raised here."""
        if self._result is None:
            self._result = _stack_runs([part.result() for part in self._parts], self._probes)
        return self._result

    def cancel(self) -> None:
        """Drop the runs that have not started (a cancelled or abandoned fingerprint); running ones finish."""
        for part in self._parts:
            part.cancel()


class Engine(Protocol):
    """Runs one forward pass of a backbone and returns its pooled probes."""

    name: str
    probes: tuple[str, ...]
    #: crops per batch the pipeline hands this engine unless told otherwise
    batch_size: int

    def submit(self, batch: np.ndarray) -> PendingFeatures:
        """Start the forward pass of crops (N, 224, 224, 3) uint8 RGB (an engine may finish it before returning)."""

    def probe_features(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """{probe: (N, dim) float32} for crops (N, 224, 224, 3) uint8 RGB."""

    def describe(self) -> str:
        """One line for logs and the command line: which backend, and how it was checked."""


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def cache_dir() -> Path:
    """Folder of exported ONNX models (see the module docstring); created on demand."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "onnx"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "task-fingerprint-explorer" / "onnx"


def _major_minor(version: str) -> str:
    return ".".join(version.split("+")[0].split(".")[:2])


def onnx_path(spec: BackboneSpec, weights_sha256: str, probes: tuple[str, ...]) -> Path:
    """Cache file of the ONNX model for these weights and probes under the running torch/onnxruntime versions."""
    import onnxruntime
    return cache_dir() / (f"{spec.name}-{weights_sha256[:16]}-{'+'.join(probes)}-{EXPORT_RECIPE}"
                          f"-torch{_major_minor(torch.__version__)}-ort{_major_minor(onnxruntime.__version__)}.onnx")


class TorchEngine:
    """PyTorch eager on the backbone's device (CPU in channels-last layout, or CUDA/MPS). It keeps the backbone's
    model, spec and device, not the backbone itself, so the engine cache does not keep a backbone alive."""

    name = "torch"

    @property
    def batch_size(self) -> int:
        """Crops per forward batch: :data:`TORCH_CPU_BATCH` on the CPU, :data:`TORCH_GPU_BATCH` on a GPU."""
        return TORCH_CPU_BATCH if self.device.type == "cpu" else TORCH_GPU_BATCH

    def __init__(self, backbone: "LoadedBackbone", probes: tuple[str, ...], note: str = "") -> None:
        self.model, self.spec, self.device = backbone.model, backbone.spec, backbone.device
        self.probes, self.note = probes, note

    @torch.inference_mode()
    def probe_features(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        tensor = to_model_input(batch, self.spec.mean, self.spec.std, self.device)
        pooled = pooled_probes(self.model, self.spec, tensor, self.probes)
        return {name: values.float().cpu().numpy() for name, values in pooled.items()}

    def submit(self, batch: np.ndarray) -> PendingFeatures:
        """Computed at once: eager PyTorch already uses every core inside one forward pass."""
        return PendingFeatures.done(self.probe_features(batch))

    def describe(self) -> str:
        return f"torch on {self.device}" + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class Verification:
    """How an ONNX model was checked against PyTorch: largest absolute difference of any pooled feature over
    ``n_images`` real photos, and whether the model was exported by this check (else read from the cache)."""

    max_abs_diff: float
    n_images: int
    exported: bool
    path: Path


class OnnxEngine:
    """ONNX Runtime on the CPU with full graph optimisation. Each run has one thread and :data:`RUN_SIZE` images;
    ``workers`` runs go at once (one per core), from a small thread pool (ONNX Runtime releases the GIL and
    ``InferenceSession.run`` is thread-safe). Rows come back in the order of the batch."""

    name = "onnxruntime"
    batch_size = ONNXRUNTIME_BATCH

    def __init__(self, session, probes: tuple[str, ...], verification: Verification, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.session, self.probes, self.verification, self.workers = session, probes, verification, workers
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _run(self, images: np.ndarray) -> list[np.ndarray]:
        return self.session.run(list(self.probes), {"image": images})

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="onnxruntime-run")
            return self._pool

    def submit(self, batch: np.ndarray) -> PendingFeatures:
        """Queue the batch's runs on the workers and return at once, so the caller can prepare the next batch (and
        queue it too) while these run (with one worker they run here, before returning). The runs read ``batch``
        until :meth:`PendingFeatures.result` returns: do not change it before."""
        batch = np.ascontiguousarray(batch, dtype=np.uint8)
        slices = [batch[start:start + RUN_SIZE] for start in range(0, len(batch), RUN_SIZE)]
        if not slices:  # no rows: one run gives correctly shaped empty outputs
            return PendingFeatures.done(dict(zip(self.probes, self._run(batch))))
        if self.workers == 1:
            return PendingFeatures.done(_stack_runs([self._run(images) for images in slices], self.probes))
        executor = self._executor()
        return PendingFeatures([executor.submit(self._run, images) for images in slices], self.probes)

    def close(self) -> None:
        """Stop the worker threads (queued runs are dropped); the engine can still be used afterwards."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def probe_features(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self.submit(batch).result()

    def describe(self) -> str:
        check = self.verification
        origin = "exported from the verified weights to" if check.exported else "cached at"
        runs = f"{self.workers} concurrent single-thread runs" if self.workers > 1 else "single-thread runs"
        return (f"onnxruntime (CPU, {runs}; ONNX model {origin} {check.path}; "
                f"max abs difference vs PyTorch on {check.n_images} check images {check.max_abs_diff:.1e}, "
                f"tolerance {TOLERANCE:.0e})")


class OnnxRefused(Exception):
    """The ONNX model could not be made, loaded or did not match PyTorch; the message says why."""


def check_images() -> np.ndarray:
    """(6, 224, 224, 3) uint8: centre and mirrored corner crops of three real photos shipped with scikit-image
    (astronaut, chelsea, coffee) through the fingerprint pipeline's own preparation."""
    from skimage import data
    crops = []
    for image in (data.astronaut(), data.chelsea(), data.coffee()):
        prepared = prepare(image)
        crops.append(prepared[16:16 + CROP, 16:16 + CROP])
        crops.append(prepared[:CROP, -CROP:][:, ::-1])
    return np.ascontiguousarray(np.stack(crops))


def _session(path: Path):
    """One ONNX Runtime session whose runs each use only the calling thread (concurrency comes from
    :class:`OnnxEngine`'s workers, not from threads inside a run)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _difference(engine: OnnxEngine, images: np.ndarray, reference: dict[str, np.ndarray]) -> float:
    """Largest absolute difference of any pooled feature between ``engine`` (run as a fingerprint runs it) and the
    PyTorch ``reference``."""
    outputs = engine.probe_features(images)
    worst = 0.0
    for name, values in outputs.items():
        if values.shape != reference[name].shape:
            raise OnnxRefused(f"output '{name}' has shape {values.shape}, PyTorch gives {reference[name].shape}")
        difference = np.abs(values.astype(np.float64) - reference[name])
        worst = max(worst, float(np.max(difference)) if np.all(np.isfinite(difference)) else float("inf"))
    return worst


def load_verified_onnx(backbone: "LoadedBackbone", probes: tuple[str, ...]) -> OnnxEngine:
    """The cached ONNX model of these weights and probes, checked against PyTorch on :func:`check_images`; exported
    first when missing, and once more when the cached file cannot be loaded or does not match. Raises
    :class:`OnnxRefused` when even a fresh export does not match within :data:`TOLERANCE`."""
    path = onnx_path(backbone.spec, backbone.weights_sha256, probes)
    images = check_images()
    reference = TorchEngine(backbone, probes).probe_features(images)
    workers = max(1, torch.get_num_threads())
    problem = ""
    for fresh in (False, True):
        if fresh or not path.is_file():
            try:
                export_onnx(backbone, probes, path)
            except Exception as err:
                raise OnnxRefused(f"exporting {backbone.spec.name} to ONNX failed ({type(err).__name__}: "
                                  f"{str(err).splitlines()[0] if str(err) else ''}); is the 'onnx' package "
                                  "installed (pip install -r requirements.txt)?") from None
            fresh = True
        try:
            engine = OnnxEngine(_session(path), probes, Verification(0.0, len(images), fresh, path), workers)
            difference = _difference(engine, images, reference)
        except Exception as err:  # a damaged or foreign file: never trusted
            problem = f"{path} could not be loaded ({type(err).__name__}: {str(err)[:200]})"
        else:
            if difference <= TOLERANCE:
                engine.verification = Verification(difference, len(images), fresh, path)
                return engine
            problem = (f"{path} differs from PyTorch by up to {difference:.2e} on {len(images)} check images "
                       f"(tolerance {TOLERANCE:.0e})")
        if fresh:
            path.unlink(missing_ok=True)
            raise OnnxRefused(problem)
        log.warning("%s; exporting it again", problem)
    raise AssertionError("unreachable")


def make_engine(backbone: "LoadedBackbone", probes: tuple[str, ...], choice: str) -> Engine:
    """The engine for ``choice``: "torch"; "onnxruntime" (CPU only; falls back to torch, with a warning, when the
    ONNX model cannot be made or does not match PyTorch); "auto" (onnxruntime when installed and the backbone runs
    on the CPU, else torch)."""
    choice = resolve_backend_choice(choice)
    if choice == "torch":
        return TorchEngine(backbone, probes)
    if backbone.device.type != "cpu":
        if choice == "onnxruntime":
            raise ValueError(f"the onnxruntime backend runs on the CPU, but the device is {backbone.device}: "
                             "choose --device cpu, or --backend torch (or auto) to use the GPU")
        return TorchEngine(backbone, probes)
    if not onnxruntime_available():
        if choice == "onnxruntime":
            raise ValueError("the onnxruntime backend needs the package 'onnxruntime': pip install onnxruntime "
                             "(or pip install -r requirements.txt), or choose --backend torch")
        return TorchEngine(backbone, probes, note="onnxruntime is not installed")
    try:
        return load_verified_onnx(backbone, probes)
    except OnnxRefused as err:
        message = f"ONNX Runtime refused, using PyTorch instead: {err}"
        log.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return TorchEngine(backbone, probes, note=f"fallback: {err}")


# --------------------------------------------------------------------------- the engines of each loaded backbone
#: loaded backbone -> {probes: engine}; an entry goes when its backbone is no longer referenced
_ENGINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ENGINES_LOCK = threading.Lock()


def engine_for(backbone: "LoadedBackbone", probes: tuple[str, ...] | None = None) -> Engine:
    """The engine that computes ``probes`` (default ``backbone.run_probes()``) with the backend the backbone was
    loaded for (``backbone.backend_choice``): made on first use for each backbone and probe set (an ONNX model is
    exported or read from the cache and checked against PyTorch then) and kept while the backbone lives."""
    probes = tuple(probes or backbone.run_probes())
    with _ENGINES_LOCK:
        engines = _ENGINES.setdefault(backbone, {})
        if probes not in engines:
            engines[probes] = make_engine(backbone, probes, backbone.backend_choice)
        return engines[probes]


def submit(backbone: "LoadedBackbone", batch: np.ndarray, probes: tuple[str, ...] | None = None) -> PendingFeatures:
    """Start the forward pass of crops (N, 224, 224, 3) uint8 RGB; ``result()`` holds at least ``probes`` (default
    the run probes), (N, dim) float32 each. Probes a fingerprint run needs share its engine; other probe sets (e.g.
    every probe, for building the catalogue) get their own."""
    run = backbone.run_probes()
    wanted = tuple(probes or run)
    return engine_for(backbone, run if set(wanted) <= set(run) else wanted).submit(batch)


def backend_of(backbone: "LoadedBackbone", probes: tuple[str, ...] | None = None) -> str:
    """The backend that computes ``probes`` (default the run probes) for this backbone: 'onnxruntime' or 'torch'
    (what a fingerprint records as its ``meta.backend``)."""
    return engine_for(backbone, probes).name
