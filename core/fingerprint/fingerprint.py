"""The ``Fingerprint`` type: per-feature histograms (1000 bins; 100 by coarsening) plus the mean feature vector,
with metadata, saved to one portable file without pickle.

File layout (a zip, extension ``.npz``): ``meta.json`` (UTF-8 JSON), ``counts.npy`` (m x 1000, uint16 or uint32),
``mean.npy`` (m, float64: the probe's mean feature vector, which weights bKLD small) and ``postact_mean.npy`` (k,
float64: the mean of the backbone's pooled post-activation features, non-negative, which P2L needs whatever the
probe). No pixels and no file names are stored; class names and counts are, because they describe the task (leave
them out with ``include_classes=False``).

Format 2 added the probe (``meta.probe``) and ``postact_mean.npy``; format 1 files are refused with a message saying
how to recompute them. ``meta.backend`` (what ran the forward pass) is optional: files without it were made with
torch.
"""
from __future__ import annotations

import io
import json
import os
import stat
import tempfile
import zipfile
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from core import __version__
from core.errors import FingerprintFileError, IncompatibleFingerprintsError
from core.features.sampling import MAX_SAMPLES
from core.fingerprint.binning import (
    N_BINS_LARGE,
    N_BINS_SMALL,
    BinEdges,
    bin_indices,
    count_bins,
    histogram_probabilities,
)
from core.fingerprint.validation import (
    COUNT_DTYPES,
    MAX_CLASSES,
    MAX_FEATURE_DIM,
    MAX_FILE_BYTES,
    MAX_NAME_CHARS,
    MEAN_DTYPES,
    FieldRule,
    check_members,
    count_map,
    dimension_problem,
    hex_digest,
    int_range,
    member_limits,
    nested,
    one_of,
    read_meta_json,
    read_npy,
    text,
    validate_fields,
    values_problem,
)
from core.text import printable, printable_counts

FORMAT_VERSION = 2
_FIXED_ZIP_TIME = (2024, 1, 1, 0, 0, 0)  # fixed member dates: the same fingerprint gives the same bytes


@dataclass(frozen=True)
class FingerprintMeta:
    """Everything needed to decide whether two fingerprints can be compared, and to describe the task."""

    name: str
    backbone: str
    weights_sha256: str
    feature_dim: int
    edges_id: str
    n_samples: int
    protocol: dict  # SamplingProtocol.to_dict(): n, seed, augment, pipeline
    class_counts: dict = field(default_factory=dict)
    format_counts: dict = field(default_factory=dict)
    n_bins: int = N_BINS_LARGE
    probe: str = "postact"  # the backbone layer whose pooled output are the features (core/features/backbones.json)
    postact_dim: int = 0  # length of postact_mean (0: the same as feature_dim)
    #: what ran the forward pass (core/features/inference.py): "onnxruntime" or "torch". Informative only: both
    #: compute the same features (checked on every load), so it is not a difference that check_comparable refuses. Files
    #: written before it was recorded were all made with torch.
    backend: str = "torch"
    created_by: str = f"task-fingerprint-explorer {__version__}"
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if not self.postact_dim:
            object.__setattr__(self, "postact_dim", self.feature_dim)


#: how SamplingProtocol.to_dict() is checked in a file
PROTOCOL_RULES: tuple[FieldRule, ...] = (
    FieldRule("n", (int,), int_range(1, MAX_SAMPLES)),
    FieldRule("seed", (int,), int_range(0, 2**63 - 1)),
    FieldRule("augment", (bool,)),
    FieldRule("pipeline", (str,), text(128)),
)

#: one rule per FingerprintMeta field, checked before anything is built from a file (add a field: add a line)
META_RULES: tuple[FieldRule, ...] = (
    FieldRule("name", (str,), text(MAX_NAME_CHARS)),
    FieldRule("backbone", (str,), text(128)),
    FieldRule("weights_sha256", (str,), hex_digest(64)),
    FieldRule("feature_dim", (int,), int_range(1, MAX_FEATURE_DIM)),
    FieldRule("edges_id", (str,), text(128)),
    FieldRule("n_samples", (int,), int_range(1, MAX_SAMPLES)),
    FieldRule("protocol", (dict,), nested(PROTOCOL_RULES)),
    FieldRule("class_counts", (dict,), count_map(MAX_CLASSES), required=False),
    FieldRule("format_counts", (dict,), count_map(64), required=False),
    FieldRule("n_bins", (int,), one_of(N_BINS_LARGE), required=False),
    FieldRule("created_by", (str,), text(MAX_NAME_CHARS), required=False),
    FieldRule("format_version", (int,), int_range(1, FORMAT_VERSION)),
    FieldRule("probe", (str,), text(64)),
    FieldRule("postact_dim", (int,), int_range(1, MAX_FEATURE_DIM), required=False),
    FieldRule("backend", (str,), one_of("torch", "onnxruntime"), required=False),
)


@dataclass(frozen=True)
class Fingerprint:
    """counts: (m, 1000) integer histogram counts; mean: (m,) mean probe feature vector; postact_mean: (k,) mean of
    the pooled post-activation features (P2L's input); meta: see FingerprintMeta.

    ``sample_bins`` (n, m) uint16, ``sample_features`` (n, m) and ``sample_postact`` (n, k) float32 optionally keep
    each sample's fine bins and features (in memory only, never saved) so a distance's uncertainty can be
    bootstrapped over the samples.
    """

    counts: np.ndarray
    mean: np.ndarray
    meta: FingerprintMeta
    postact_mean: np.ndarray | None = None
    sample_bins: np.ndarray | None = field(default=None, compare=False, repr=False)
    sample_features: np.ndarray | None = field(default=None, compare=False, repr=False)
    sample_postact: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.postact_mean is None:  # the probe is the post-activation layer itself
            object.__setattr__(self, "postact_mean", self.mean)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def n_features(self) -> int:
        return int(self.counts.shape[0])

    def probabilities(self, n_bins: int = N_BINS_SMALL) -> np.ndarray:
        """Normalised histogram (m, n_bins), float64, rows sum to 1; n_bins is 100 or 1000."""
        return histogram_probabilities(self.counts, n_bins)

    def renamed(self, name: str) -> "Fingerprint":
        return replace(self, meta=replace(self.meta, name=name))

    # ----------------------------------------------------------------- saving and loading
    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the fingerprint atomically (a temporary file beside it, then a rename: never a half-written file);
        refuses to replace an existing file unless ``overwrite``."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path}: already exists; choose another name or allow overwriting")
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:100]}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as sink:
                sink.write(self.to_bytes())
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    def to_bytes(self) -> bytes:
        counts = self.counts.astype("<u2" if self.counts.max(initial=0) <= 65_535 else "<u4")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            _write_member(bundle, "meta.json", json.dumps(asdict(self.meta), indent=1, sort_keys=True).encode())
            _write_member(bundle, "counts.npy", _npy_bytes(counts))
            _write_member(bundle, "mean.npy", _npy_bytes(self.mean.astype("<f8")))
            _write_member(bundle, "postact_mean.npy", _npy_bytes(self.postact_mean.astype("<f8")))
        return buffer.getvalue()

    @classmethod
    def load(cls, path: str | Path) -> "Fingerprint":
        """Read and validate a fingerprint file; only regular files up to MAX_FILE_BYTES are opened (never a FIFO
        or a device, which could block or never end)."""
        path = Path(path)
        try:
            status = path.stat()
            if not stat.S_ISREG(status.st_mode):
                raise FingerprintFileError(f"{path}: not a regular file (a folder, FIFO or device is not a "
                                           "fingerprint)")
            if status.st_size > MAX_FILE_BYTES:
                raise FingerprintFileError(f"{path}: {status.st_size:,} bytes, larger than any fingerprint "
                                           f"({MAX_FILE_BYTES:,})")
            with open(path, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as err:
            raise FingerprintFileError(f"{path}: cannot read ({err.strerror or err})") from None
        return cls.from_bytes(data, source=str(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "fingerprint") -> "Fingerprint":
        """Parse and validate strictly (see core.fingerprint.validation); every problem raises
        :class:`FingerprintFileError` with one line naming ``source`` and the field."""
        source = printable(source, 400)
        if len(data) > MAX_FILE_BYTES:
            raise FingerprintFileError(f"{source}: larger than any fingerprint ({MAX_FILE_BYTES:,} bytes)")
        try:
            bundle = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
            raise FingerprintFileError(f"{source}: not a fingerprint file (not a zip/npz container, or truncated)") \
                from None
        try:
            with bundle:
                _refuse_old_format(bundle, source)
                check_members(bundle, member_limits(), source)
                meta = _parse_meta(read_meta_json(bundle, source), source)
                shape = (meta.feature_dim, meta.n_bins)
                counts = read_npy(bundle, "counts.npy", COUNT_DTYPES, shape, source)
                mean = read_npy(bundle, "mean.npy", MEAN_DTYPES, (meta.feature_dim,), source)
                postact_mean = read_npy(bundle, "postact_mean.npy", MEAN_DTYPES, (meta.postact_dim,), source)
        except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError, ValueError,
                zlib.error) as err:
            raise FingerprintFileError(f"{source}: damaged or truncated fingerprint file ({str(err)[:160]})") \
                from None
        problem = values_problem(meta.backbone, meta.weights_sha256, meta.probe, mean, postact_mean)
        if problem:
            raise FingerprintFileError(f"{source}: {problem}")
        if counts.max(initial=0) > meta.n_samples:  # before summing: huge (e.g. wrapped uint64) counts never add up
            raise FingerprintFileError(f"{source}: counts.npy holds a count of {int(counts.max()):,}, more than "
                                       f"n_samples = {meta.n_samples:,}")
        row_sums = counts.sum(axis=1, dtype=np.uint64)
        if np.any(row_sums != meta.n_samples):
            raise FingerprintFileError(f"{source}: counts.npy rows do not sum to n_samples = {meta.n_samples:,}")
        return cls(counts.astype(np.uint32), mean.astype(np.float64), meta, postact_mean.astype(np.float64))


#: deflate level of a fingerprint file's members: level 1 writes a 2,000-sample fingerprint 9x faster than the
#: default (6) for a file 16 % larger (bench/local_scale.py writes thousands)
COMPRESS_LEVEL = 1


def _write_member(bundle: zipfile.ZipFile, name: str, payload: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_FIXED_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    bundle.writestr(info, payload, compresslevel=COMPRESS_LEVEL)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _refuse_old_format(bundle: zipfile.ZipFile, source: str) -> None:
    """Refuse files of an older format before looking for members they may not have, saying how to remake them."""
    if "meta.json" not in bundle.namelist():
        return
    raw = read_meta_json(bundle, source)
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if type(version) is int and version < FORMAT_VERSION:
        raise FingerprintFileError(
            f"{source}: fingerprint format {version} was made before the probe layer was recorded (format "
            f"{FORMAT_VERSION}); it cannot be compared safely. Recompute it from your images: python -m core "
            "fingerprint FOLDER -o NEW.npz (or on the app's 'Your task' page)")


def _parse_meta(raw: object, source: str) -> FingerprintMeta:
    """Version first (other versions may have other fields), then every field by META_RULES; text that is shown
    (the name, class and format names) is made printable."""
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if type(version) is int and version > FORMAT_VERSION:
        raise FingerprintFileError(f"{source}: format version {version} is newer than this tool reads "
                                   f"({FORMAT_VERSION}); update the tool")
    values = validate_fields(raw, META_RULES, source)
    problem = dimension_problem(values["backbone"], values["weights_sha256"], values["probe"],
                                values["feature_dim"], values.get("postact_dim", values["feature_dim"]))
    if problem:
        raise FingerprintFileError(f"{source}: meta.json {problem}")
    if values["n_samples"] > values["protocol"]["n"]:
        raise FingerprintFileError(f"{source}: meta.json field 'n_samples' ({values['n_samples']:,}) is more than "
                                   f"the protocol's n ({values['protocol']['n']:,})")
    values["name"] = printable(values["name"])
    for key in ("class_counts", "format_counts"):
        if key in values:
            values[key] = printable_counts(values[key])
    return FingerprintMeta(**values)


# --------------------------------------------------------------------- building and comparing
class HistogramAccumulator:
    """Accumulates fine-bin counts and the feature sum batch by batch. Bin indices are buffered and counted once
    per ``flush_every`` samples (one 1.28 M-bin count per ~1,000 samples instead of per batch); memory stays bounded
    whatever n is."""

    def __init__(self, edges: BinEdges, keep_samples: bool = False, flush_every: int = 1024) -> None:
        self.edges = edges
        self._counts = np.zeros((edges.n_features, N_BINS_LARGE), dtype=np.int64)
        self.feature_sum = np.zeros(edges.n_features, dtype=np.float64)
        self.postact_sum: np.ndarray | None = None
        self.n = 0
        self.flush_every = flush_every
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._sample_bins: list[np.ndarray] | None = [] if keep_samples else None
        self._sample_features: list[np.ndarray] = []
        self._sample_postact: list[np.ndarray] = []

    def add(self, features: np.ndarray, postact: np.ndarray | None = None) -> None:
        """features: (b, m) probe features of one batch; postact: (b, k) post-activation features of the same
        samples (None when the probe is the post-activation layer)."""
        if len(features) == 0:
            return
        if postact is not None:
            if self.postact_sum is None:
                self.postact_sum = np.zeros(postact.shape[1], dtype=np.float64)
            self.postact_sum += postact.sum(axis=0, dtype=np.float64)
            if self._sample_bins is not None:
                self._sample_postact.append(np.asarray(postact, dtype=np.float32))
        indices = bin_indices(features, self.edges, N_BINS_LARGE).astype(np.uint16)
        self._pending.append(indices)
        self._pending_n += len(indices)
        self.feature_sum += features.sum(axis=0, dtype=np.float64)
        self.n += len(features)
        if self._sample_bins is not None:
            self._sample_bins.append(indices)
            self._sample_features.append(np.asarray(features, dtype=np.float32))
        if self._pending_n >= self.flush_every:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._counts += count_bins(np.concatenate(self._pending).astype(np.int64), N_BINS_LARGE)
            self._pending, self._pending_n = [], 0

    @property
    def counts(self) -> np.ndarray:
        """(m, 1000) int64 counts of every sample added so far."""
        self._flush()
        return self._counts

    def kept_samples(self) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """(bins (n, m) uint16, features (n, m) float32, post-activation features (n, k) float32 or None) when
        kept, else (None, None, None)."""
        if not self._sample_bins:
            return None, None, None
        postact = np.concatenate(self._sample_postact) if self._sample_postact else None
        return np.concatenate(self._sample_bins), np.concatenate(self._sample_features), postact

    def fingerprint(self, meta: FingerprintMeta, keep_samples: bool = False) -> "Fingerprint":
        """The fingerprint of everything added so far (``meta.n_samples`` must equal the samples added)."""
        if meta.n_samples != self.n:
            raise ValueError(f"metadata says {meta.n_samples} samples, {self.n} were added")
        postact_mean = None if self.postact_sum is None else self.postact_sum / self.n
        bins, features, postact = self.kept_samples() if keep_samples else (None, None, None)
        return Fingerprint(self.counts.astype(np.uint32), self.feature_sum / self.n, meta, postact_mean, bins,
                           features, postact)


def check_comparable(target: Fingerprint, source: Fingerprint) -> list[str]:
    """Raise :class:`IncompatibleFingerprintsError` if the features differ; return warnings for softer differences
    (sample size and seed change only the noise, not the meaning, of a distance)."""
    a, b = target.meta, source.meta
    hard = [(label, getattr(a, attr), getattr(b, attr)) for label, attr in
            (("backbone", "backbone"), ("probe layer", "probe"), ("weights sha256", "weights_sha256"),
             ("bin edges", "edges_id"), ("feature dimension", "feature_dim"),
             ("post-activation dimension", "postact_dim"))]
    hard += [(f"protocol {key}", a.protocol.get(key), b.protocol.get(key)) for key in ("pipeline", "augment")]
    differences = [f"{label}: {x!r} vs {y!r}" for label, x, y in hard if x != y]
    if differences:
        raise IncompatibleFingerprintsError(
            f"'{a.name}' and '{b.name}' were made differently and cannot be compared ({'; '.join(differences)}). "
            "Fingerprint both with the same backbone, probe, weights, bin edges and protocol.")
    warnings = []
    if a.protocol.get("n") != b.protocol.get("n"):
        warnings.append(f"'{a.name}' used n = {a.n_samples:,} samples and '{b.name}' n = {b.n_samples:,}: "
                        "distances are noisier for small n")
    return warnings
