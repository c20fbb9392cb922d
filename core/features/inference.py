"""Inference backends: what runs the backbone's forward pass for a fingerprint.

* ``torch``: PyTorch eager, the reference; the only backend on a GPU.
* ``onnxruntime``: an ONNX export of the *verified* weights run by ONNX Runtime on the CPU (1.5x PyTorch eager on a
  quiet 2-core machine, far more when other jobs share the cores). The model is exported on first use into a cache
  folder, never downloaded, and every time it is loaded it is checked against PyTorch on real photos: beyond
  :data:`TOLERANCE` it is refused (a damaged cache file is re-exported once) and the run falls back to PyTorch.

Both engines take crops as they come out of the pipeline, (N, 224, 224, 3) uint8 RGB, and return
{probe: (N, dim) float32 pooled features} from one forward pass. The ONNX graph includes the normalisation (uint8 in),
so the engines compute the same function of the same pixels.

Cache folder: ``$TFE_CACHE_DIR/onnx`` when TFE_CACHE_DIR is set, else ``$XDG_CACHE_HOME`` or ``~/.cache`` +
``/task-fingerprint-explorer/onnx``. A file's name holds the backbone, its weights' sha256, the probes and the
torch and onnxruntime major.minor versions; it is written to a temporary file and renamed, so a reader never sees
half a file.
"""
from __future__ import annotations

import copy
import importlib.util
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from core.features.backbones import BackboneSpec, pooled_probes
from core.features.preprocess import CROP, prepare, to_model_input

if TYPE_CHECKING:
    from core.features.backbones import LoadedBackbone

BACKEND_CHOICES = ("auto", "onnxruntime", "torch")
#: largest max abs difference of any pooled feature between the ONNX model and PyTorch on the check images; the
#: features' bin edges are ~1e-2 to 1e-1 wide, measured differences are ~1e-5
TOLERANCE = 1e-3
CACHE_ENV = "TFE_CACHE_DIR"
_OPSET = 17
log = logging.getLogger(__name__)


class Engine(Protocol):
    """Runs one forward pass of a backbone and returns its pooled probes."""

    name: str
    probes: tuple[str, ...]

    def probe_features(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """{probe: (N, dim) float32} for crops (N, 224, 224, 3) uint8 RGB."""

    def describe(self) -> str:
        """One line for logs and the command line: which backend, and how it was checked."""


def resolve_backend_choice(choice: str | None) -> str:
    """Validate a backend name ("auto", "onnxruntime", "torch"; None means "auto")."""
    choice = (choice or "auto").lower()
    if choice not in BACKEND_CHOICES:
        raise ValueError(f"unknown backend '{choice}': choose one of {', '.join(BACKEND_CHOICES)}")
    return choice


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
    return cache_dir() / (f"{spec.name}-{weights_sha256[:16]}-{'+'.join(probes)}-torch{_major_minor(torch.__version__)}"
                          f"-ort{_major_minor(onnxruntime.__version__)}.onnx")


class TorchEngine:
    """PyTorch eager on the backbone's device (CPU in channels-last layout, or CUDA/MPS)."""

    name = "torch"

    def __init__(self, backbone: "LoadedBackbone", probes: tuple[str, ...], note: str = "") -> None:
        self.backbone, self.probes, self.note = backbone, probes, note

    @torch.inference_mode()
    def probe_features(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        spec = self.backbone.spec
        tensor = to_model_input(batch, spec.mean, spec.std, self.backbone.device)
        pooled = pooled_probes(self.backbone.model, spec, tensor, self.probes)
        return {name: values.float().cpu().numpy() for name, values in pooled.items()}

    def describe(self) -> str:
        return f"torch on {self.backbone.device}" + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class Verification:
    """How an ONNX model was checked against PyTorch: largest absolute difference of any pooled feature over
    ``n_images`` real photos, and whether the model was exported by this check (else read from the cache)."""

    max_abs_diff: float
    n_images: int
    exported: bool
    path: Path


class OnnxEngine:
    """ONNX Runtime on the CPU with full graph optimisation, sequential execution, one thread per core, idle threads
    not spinning."""

    name = "onnxruntime"

    def __init__(self, session, probes: tuple[str, ...], verification: Verification) -> None:
        self.session, self.probes, self.verification = session, probes, verification

    def probe_features(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(list(self.probes), {"image": np.ascontiguousarray(batch, dtype=np.uint8)})
        return dict(zip(self.probes, outputs))

    def describe(self) -> str:
        check = self.verification
        origin = "exported from the verified weights to" if check.exported else "cached at"
        return (f"onnxruntime (CPU; ONNX model {origin} {check.path}; max abs difference vs PyTorch on "
                f"{check.n_images} check images {check.max_abs_diff:.1e}, tolerance {TOLERANCE:.0e})")


class OnnxRefused(Exception):
    """The ONNX model could not be made, loaded or did not match PyTorch; the message says why."""


class _ExportModule(torch.nn.Module):
    """What is exported: uint8 crops (N, 224, 224, 3) -> normalised NCHW -> the backbone -> a tuple of pooled
    probes (N, dim) in the order of ``probes``."""

    def __init__(self, backbone: "LoadedBackbone", probes: tuple[str, ...]) -> None:
        super().__init__()
        self.model = copy.deepcopy(backbone.model).to("cpu", memory_format=torch.contiguous_format).eval()
        self.spec, self.probes = backbone.spec, probes
        std, mean = backbone.spec.std, backbone.spec.mean
        self.register_buffer("scale", torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, 3, 1, 1))
        self.register_buffer("shift", torch.tensor([m / s for m, s in zip(mean, std)]).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch = image.permute(0, 3, 1, 2).float().mul(self.scale).sub(self.shift)
        pooled = pooled_probes(self.model, self.spec, batch, self.probes)
        return tuple(pooled[name] for name in self.probes)


def export_onnx(backbone: "LoadedBackbone", probes: tuple[str, ...], path: Path) -> Path:
    """Export the backbone with ``probes`` as outputs to ``path`` (temporary file, then an atomic rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    module = _ExportModule(backbone, probes)
    example = torch.zeros((2, CROP, CROP, 3), dtype=torch.uint8)
    handle, temporary = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(module, (example,), temporary, input_names=["image"], output_names=list(probes),
                              dynamic_axes={"image": {0: "n"}, **{p: {0: "n"} for p in probes}},
                              opset_version=_OPSET, dynamo=False)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a shared cache folder may serve several users
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


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


def _session(path: Path, threads: int):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    # idle worker threads sleep instead of spinning: on a 2-core machine spinning starves the decoder thread and
    # anything else running (measured 65 -> 99 img/s for the whole pipeline while another job used the cores)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _difference(session, probes: tuple[str, ...], images: np.ndarray, reference: dict[str, np.ndarray]) -> float:
    outputs = session.run(list(probes), {"image": images})
    worst = 0.0
    for name, values in zip(probes, outputs):
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
    threads = max(1, torch.get_num_threads())
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
            session = _session(path, threads)
            difference = _difference(session, probes, images, reference)
        except Exception as err:  # a damaged or foreign file: never trusted
            problem = f"{path} could not be loaded ({type(err).__name__}: {str(err)[:200]})"
        else:
            if difference <= TOLERANCE:
                return OnnxEngine(session, probes, Verification(difference, len(images), fresh, path))
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
