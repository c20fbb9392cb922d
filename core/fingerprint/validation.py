"""The strict reader of shared fingerprint files: they are untrusted input.

Everything is checked before anything is allocated from what the file declares: member sizes, JSON size and nesting
depth, every metadata field's type and range (one :class:`FieldRule` per field, see
``core.fingerprint.fingerprint.META_RULES``), the ``.npy`` headers (dtype, shape = feature_dim x 1000, byte
count) before their data is read. Every problem raises
:class:`FingerprintFileError` with one line naming the file and the field.
"""
from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import FingerprintFileError

#: whole fingerprint file; a 8192-feature uint32 fingerprint is ~33 MB before compression
MAX_FILE_BYTES = 64 * 1024**2
MAX_META_BYTES = 1024**2
MAX_JSON_DEPTH = 8
MAX_MEMBERS = 8
#: widest feature vector accepted (timm backbones in use have 512-2048; 8192 leaves room)
MAX_FEATURE_DIM = 8192
MAX_NAME_CHARS = 256
MAX_CLASSES = 10_000
MAX_CLASS_COUNT = 10**9
#: largest |mean| of a pooled feature accepted from a file. Pooled outputs of batch-normalised layers stay near unit
#: scale: the shipped catalogue's largest is 12.8 (preact probe) and 5.5 (postact); 1,000 is far beyond what any image
#: gives, and a mean of 1e308 would turn every distance into the same number
MAX_ABS_FEATURE_MEAN = 1_000.0
_BACKBONES_FILE = Path(__file__).resolve().parents[1] / "features" / "backbones.json"
_NPY_HEADER_BYTES = 4096
COUNT_DTYPES = ("|u1", "<u2", "<u4", "<u8")
MEAN_DTYPES = ("<f4", "<f8")

Check = Callable[[Any], "str | None"]  # returns what is wrong, or None


@dataclass(frozen=True)
class FieldRule:
    """One metadata field: its JSON name, the Python types allowed (bool is never an int here), whether it must be
    present (fields with a default in FingerprintMeta may be absent) and a check of its value."""

    name: str
    types: tuple[type, ...]
    check: Check | None = None
    required: bool = True


def text(max_chars: int) -> Check:
    """A string of at most ``max_chars`` characters (control characters are removed later, for display)."""
    return lambda value: f"is longer than {max_chars} characters" if len(value) > max_chars else None


def hex_digest(length: int) -> Check:
    pattern = re.compile(f"[0-9a-f]{{{length}}}")
    return lambda value: None if pattern.fullmatch(value) else f"must be {length} lower-case hex digits"


def int_range(low: int, high: int) -> Check:
    return lambda value: None if low <= value <= high else f"must be between {low:,} and {high:,}, found {value:,}"


def one_of(*allowed: object) -> Check:
    return lambda value: None if value in allowed else f"must be one of {list(allowed)}, found {value!r}"


def count_map(max_entries: int, max_key_chars: int = MAX_NAME_CHARS, max_count: int = MAX_CLASS_COUNT) -> Check:
    """An object of at most ``max_entries`` names -> non-negative integer counts."""
    def check(value: dict) -> str | None:
        if len(value) > max_entries:
            return f"has {len(value):,} entries, more than {max_entries:,}"
        for key, count in value.items():
            if len(key) > max_key_chars:
                return f"has a name longer than {max_key_chars} characters"
            if type(count) is not int or not 0 <= count <= max_count:
                return f"entry '{key[:40]}' must be a whole number between 0 and {max_count:,}, found {count!r}"
        return None
    return check


def nested(rules: tuple[FieldRule, ...]) -> Check:
    """An object whose fields follow ``rules`` (unknown keys are ignored)."""
    def check(value: dict) -> str | None:
        for rule in rules:
            problem = field_problem(value, rule)
            if problem:
                return f"field '{rule.name}' {problem}"
        return None
    return check


_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
               float: "a number", type(None): "null"}


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def field_problem(raw: dict, rule: FieldRule) -> str | None:
    """What is wrong with ``raw[rule.name]`` (None when it is fine or optional and absent)."""
    if rule.name not in raw:
        return "is missing" if rule.required else None
    value = raw[rule.name]
    allowed = rule.types
    if type(value) not in allowed:  # exact types: True is not an int, 1.0 is not an int
        expected = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in allowed)
        return f"must be {expected}, found {_type_name(value)}"
    return rule.check(value) if rule.check is not None else None


def validate_fields(raw: object, rules: tuple[FieldRule, ...], source: str, member: str = "meta.json") -> dict:
    """The values of ``rules``' fields in ``raw`` (absent optional fields left out); raises on the first problem."""
    if not isinstance(raw, dict):
        raise FingerprintFileError(f"{source}: {member} must hold a JSON object, found {_type_name(raw)}")
    for rule in rules:
        problem = field_problem(raw, rule)
        if problem:
            raise FingerprintFileError(f"{source}: {member} field '{rule.name}' {problem}")
    return {rule.name: raw[rule.name] for rule in rules if rule.name in raw}


def json_depth(document: str) -> int:
    """Deepest nesting of objects and lists in a JSON text (strings ignored); computed without recursion."""
    skeleton = re.sub(r'"(?:[^"\\]|\\.)*"', '""', document)
    depth = deepest = 0
    for bracket in re.findall(r"[\[\]{}]", skeleton):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def read_meta_json(bundle: zipfile.ZipFile, source: str) -> object:
    """meta.json parsed after its size and depth were checked."""
    info = bundle.getinfo("meta.json")
    if info.file_size > MAX_META_BYTES:
        raise FingerprintFileError(f"{source}: meta.json is {info.file_size:,} bytes, more than {MAX_META_BYTES:,}")
    try:
        document = bundle.read(info).decode("utf-8")
    except UnicodeDecodeError:
        raise FingerprintFileError(f"{source}: meta.json is not UTF-8 text") from None
    depth = json_depth(document)
    if depth > MAX_JSON_DEPTH:
        raise FingerprintFileError(f"{source}: meta.json is nested {depth:,} levels deep, more than {MAX_JSON_DEPTH}")
    try:
        return json.loads(document, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, ValueError, RecursionError) as err:
        raise FingerprintFileError(f"{source}: meta.json is not valid JSON ({str(err)[:120]})") from None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def check_members(bundle: zipfile.ZipFile, limits: dict[str, int], source: str) -> None:
    """Every required member present and no member larger than its limit (bytes, as declared and as inflated)."""
    infos = bundle.infolist()
    if len(infos) > MAX_MEMBERS:
        raise FingerprintFileError(f"{source}: {len(infos)} members, a fingerprint has {len(limits)}")
    names = {info.filename for info in infos}
    missing = sorted(set(limits) - names)
    if missing:
        raise FingerprintFileError(f"{source}: not a fingerprint file (missing {', '.join(missing)})")
    for info in infos:
        limit = limits.get(info.filename)
        if limit is not None and info.file_size > limit:
            raise FingerprintFileError(f"{source}: member {info.filename} is {info.file_size:,} bytes, more than "
                                       f"the {limit:,} its shape allows")


def read_npy(bundle: zipfile.ZipFile, member: str, dtypes: tuple[str, ...], shape: tuple[int, ...],
             source: str) -> np.ndarray:
    """Read a ``.npy`` member after checking its header: dtype in ``dtypes``, C order, exactly ``shape``; only then
    are its ``prod(shape) * itemsize`` bytes read."""
    where = f"{source}: {member}"
    with bundle.open(member) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in reader:
                raise ValueError(f"unsupported .npy version {version}")
            declared, fortran, dtype = reader[version](stream, max_header_size=_NPY_HEADER_BYTES)
        except (ValueError, SyntaxError, TypeError, EOFError) as err:
            if "object" in str(err).lower() or "pickle" in str(err).lower():
                raise FingerprintFileError(f"{where} carries a pickled Python object, which is refused (it could "
                                           "run code)") from None
            raise FingerprintFileError(f"{where} has a damaged array header ({str(err)[:120]})") from None
        if dtype.hasobject:
            raise FingerprintFileError(f"{where} carries a pickled Python object, which is refused (it could run "
                                       "code)")
        if dtype.str not in dtypes:
            raise FingerprintFileError(f"{where} must be of type {' or '.join(dtypes)}, found {dtype.str}")
        if tuple(declared) != shape or fortran:
            raise FingerprintFileError(f"{where} must have shape {shape} in C order, the header declares "
                                       f"{tuple(declared)}{' in Fortran order' if fortran else ''}")
        size = int(np.prod(shape)) * dtype.itemsize
        payload = stream.read(size + 1)
    if len(payload) != size:
        raise FingerprintFileError(f"{where} holds {len(payload):,} data bytes, its header needs {size:,}")
    return np.frombuffer(payload, dtype=dtype).reshape(shape)


def member_limits(feature_dim: int = MAX_FEATURE_DIM) -> dict[str, int]:
    """Largest plausible size in bytes of each member for ``feature_dim`` features."""
    from core.fingerprint.binning import N_BINS_LARGE
    return {"meta.json": MAX_META_BYTES, "counts.npy": _NPY_HEADER_BYTES + feature_dim * N_BINS_LARGE * 8,
            "mean.npy": _NPY_HEADER_BYTES + feature_dim * 8, "postact_mean.npy": _NPY_HEADER_BYTES + feature_dim * 8}


@lru_cache(maxsize=1)
def _known_backbones() -> dict:
    """backbones.json as read (without importing torch, as core.features.backbones does)."""
    return {name: entry for name, entry in json.loads(_BACKBONES_FILE.read_text()).items()
            if not name.startswith("_")}


def _known_network(backbone: str, weights_sha256: str) -> dict | None:
    """The registry entry when the file claims exactly the registry's weights (then its layers' widths and ranges
    are known); None for other weights (a user's own backbone file, tests' synthetic fingerprints)."""
    entry = _known_backbones().get(backbone)
    return entry if entry and entry.get("weights_sha256") == weights_sha256 else None


def dimension_problem(backbone: str, weights_sha256: str, probe: str, feature_dim: int,
                      postact_dim: int) -> str | None:
    """What is wrong with the declared widths (None when fine): the post-activation layer is the probe itself for
    probe 'postact', and for known weights every width is the network's own."""
    if probe == "postact" and postact_dim != feature_dim:
        return (f"declares postact_dim = {postact_dim:,} but feature_dim = {feature_dim:,}, and with probe 'postact' "
                "both are the same layer")
    network = _known_network(backbone, weights_sha256)
    if network is None:
        return None
    probes = network.get("probes", {})
    if probe not in probes:
        return f"probe '{probe}' is not a layer of {backbone} (known: {', '.join(sorted(probes))})"
    expected = {"feature_dim": (feature_dim, probes[probe].get("feature_dim")),
                "postact_dim": (postact_dim, probes.get("postact", {}).get("feature_dim", network.get("feature_dim")))}
    for name, (declared, width) in expected.items():
        if width is not None and declared != width:
            return f"declares {name} = {declared:,}, but {backbone} (probe '{probe}') has {width:,} features"
    return None


def values_problem(backbone: str, weights_sha256: str, probe: str, mean: np.ndarray,
                   postact_mean: np.ndarray) -> str | None:
    """What is implausible about the mean vectors (None when fine): not finite; |mean| above MAX_ABS_FEATURE_MEAN;
    every feature exactly 0 (no set of images gives that, and it turns P2L into 0 for every task); post-activation
    means negative or above the activation's ceiling (ReLU6: 6 for tf_efficientnet_lite0)."""
    network = _known_network(backbone, weights_sha256) or {}
    ceiling = network.get("probes", {}).get("postact", {}).get("max_value", MAX_ABS_FEATURE_MEAN)
    arrays = [("mean.npy", mean, probe == "postact"), ("postact_mean.npy", postact_mean, True)]
    for member, values, post_activation in arrays:
        if not np.all(np.isfinite(values)):
            return f"{member} must hold finite numbers"
        largest = float(np.abs(values).max(initial=0.0))
        if not np.any(values):
            return f"{member} is 0 for every feature, which no set of images gives"
        if post_activation and values.min(initial=0.0) < 0:
            return f"{member} must be non-negative (means of post-activation features), found {values.min():.4g}"
        limit = ceiling if post_activation else MAX_ABS_FEATURE_MEAN
        if largest > limit:
            return (f"{member} holds {largest:.4g}, more than the {limit:g} the layer can produce"
                    + (" (ReLU6)" if limit == 6.0 else ""))
    return None
