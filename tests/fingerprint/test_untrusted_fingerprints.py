"""Issue 15, case 2: shared fingerprints are untrusted input. Each hostile file is refused with one line naming the
file and the field (exit 4 on the command line), before anything is allocated from what it declares."""
from __future__ import annotations

import dataclasses
import io
import json
import resource
import zipfile

import numpy as np
import pytest

from core.cli import EXIT_FINGERPRINT, EXIT_OK
from core.errors import FingerprintFileError
from core.fingerprint.fingerprint import META_RULES, Fingerprint, FingerprintMeta
from core.fingerprint.validation import MAX_FEATURE_DIM, json_depth
from tests.synthetic import make_catalogue, make_fingerprint, run_main

GOOD = make_fingerprint().to_bytes()


def rewrite(data: bytes, member: str, payload: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, payload if info.filename == member else src.read(info))
    return out.getvalue()


def with_meta(**changes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(GOOD)) as bundle:
        meta = json.loads(bundle.read("meta.json"))
    meta.update(changes)
    return rewrite(GOOD, "meta.json", json.dumps(meta).encode())


def npy_header_only(dtype: str, shape: tuple[int, ...], payload: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + payload


def wrapped_uint64_counts(n: int = 200) -> bytes:
    counts = np.zeros((16, 1000), dtype="<u8")
    counts[:, 0], counts[:, 1], counts[:, 2] = 2**63, 2**63, n  # sums to n modulo 2**64
    buffer = io.BytesIO()
    np.save(buffer, counts)
    return rewrite(GOOD, "counts.npy", buffer.getvalue())


def without_member(member: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(GOOD)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename != member:
                dst.writestr(info.filename, src.read(info))
    return out.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def with_means(mean: np.ndarray | None = None, postact: np.ndarray | None = None, data: bytes = GOOD) -> bytes:
    if mean is not None:
        data = rewrite(data, "mean.npy", npy(np.asarray(mean, "<f8")))
    return data if postact is None else rewrite(data, "postact_mean.npy", npy(np.asarray(postact, "<f8")))


#: the real backbone's identity (its widths and ReLU6 ceiling are known from core/features/backbones.json)
LITE0_SHA = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def lite0_like(probe: str = "preact", postact_dim: int = 1280, postact: float = 0.5) -> bytes:
    """A fingerprint that claims tf_efficientnet_lite0's real weights: 1280 features, preact probe by default."""
    counts = np.zeros((1280, 1000), np.uint32)
    counts[:, 500] = 200
    meta = dataclasses.replace(make_fingerprint().meta, weights_sha256=LITE0_SHA, feature_dim=1280, probe=probe,
                               postact_dim=postact_dim)
    return Fingerprint(counts, np.full(1280, 0.25), meta, np.full(postact_dim, postact)).to_bytes()


HOSTILE = {
    "json_nested_200000_deep": (rewrite(GOOD, "meta.json", b"[" * 200_000 + b"]" * 200_000), "nested"),
    "protocol_null": (with_meta(protocol=None), "'protocol' must be an object, found null"),
    "protocol_n_text": (with_meta(protocol={"n": "200", "seed": 42, "augment": True, "pipeline": "p1"}),
                        "field 'n' must be an integer"),
    "name_is_a_list": (with_meta(name=["a"]), "'name' must be a string, found a list"),
    "name_too_long": (with_meta(name="x" * 10_000), "'name' is longer"),
    "class_counts_is_text": (with_meta(class_counts="many"), "'class_counts' must be an object"),
    "class_counts_negative": (with_meta(class_counts={"a": -5}), "'class_counts' entry 'a'"),
    "class_counts_float": (with_meta(class_counts={"a": 2.5}), "'class_counts' entry 'a'"),
    "feature_dim_huge": (with_meta(feature_dim=10**9), "'feature_dim' must be between 1 and"),
    "feature_dim_bool": (with_meta(feature_dim=True), "'feature_dim' must be an integer, found a boolean"),
    "n_samples_missing": (with_meta(n_samples=None), "'n_samples' must be an integer, found null"),
    "weights_not_hex": (with_meta(weights_sha256="zz"), "'weights_sha256' must be 64"),
    "meta_not_object": (rewrite(GOOD, "meta.json", b"[1, 2]"), "must hold a JSON object, found a list"),
    "meta_nan": (rewrite(GOOD, "meta.json", b'{"format_version": NaN}'), "not valid JSON"),
    "counts_header_declares_1e12_columns": (rewrite(GOOD, "counts.npy", npy_header_only("<u4", (16, 10**12))),
                                            r"counts.npy must have shape \(16, 1000\)"),
    "counts_header_declares_1280_by_1e12": (rewrite(GOOD, "counts.npy", npy_header_only("<u4", (1280, 10**12))),
                                            "counts.npy must have shape"),
    "counts_short_payload": (rewrite(GOOD, "counts.npy", npy_header_only("<u4", (16, 1000), b"\0" * 100)),
                             "holds 100 data bytes"),
    "counts_float": (rewrite(GOOD, "counts.npy", npy_header_only("<f8", (16, 1000), b"\0" * 128_000)),
                     "counts.npy must be of type"),
    "counts_uint64_wrapping": (wrapped_uint64_counts(), "more than n_samples"),
    "mean_object_pickle": (rewrite(GOOD, "mean.npy", npy_header_only("|O", (16,))), "pickled"),
    "missing_member": (without_member("mean.npy"), r"missing mean\.npy"),
    "empty_zip": (b"PK\x05\x06" + b"\0" * 18, "not a fingerprint"),
    # issue 22: declared widths against every array, and values a probe can produce
    "postact_dim_differs_from_the_postact_probe": (with_means(postact=np.full(32, 0.5),
                                                              data=with_meta(postact_dim=32)),
                                                   "postact_dim = 32 but feature_dim = 16"),
    "postact_dim_not_the_networks": (lite0_like(postact_dim=1000), "postact_dim = 1,000, but tf_efficientnet_lite0"),
    "feature_dim_not_the_probes": (with_meta(weights_sha256=LITE0_SHA, probe="preact"),
                                   "feature_dim = 16, but tf_efficientnet_lite0 .probe 'preact'. has 1,280"),
    "probe_not_a_layer_of_the_network": (lite0_like(probe="made_up"), "probe 'made_up' is not a layer"),
    "mean_1e308": (with_means(mean=np.full(16, 1e308)), "mean.npy holds 1e.308, more than the 1000"),
    "mean_all_zero": (with_means(mean=np.zeros(16)), "mean.npy is 0 for every feature"),
    "mean_nan": (with_means(mean=np.full(16, np.nan)), "mean.npy must hold finite numbers"),
    "postact_mean_1e308": (with_means(postact=np.full(16, 1e308)), "postact_mean.npy holds 1e.308"),
    "postact_mean_all_zero": (with_means(postact=np.zeros(16)), "postact_mean.npy is 0 for every feature"),
    "postact_mean_negative": (with_means(postact=np.full(16, -0.5)), "postact_mean.npy must be non-negative"),
    "postact_mean_above_relu6": (lite0_like(postact=6.5),
                                 r"holds 6.5, more than the 6 the layer can produce \(ReLU6\)"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_fingerprint_is_refused_naming_the_field(case):
    data, expected = HOSTILE[case]
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    # 4 GB beyond what the process has mapped already (earlier tests in the same process may have mapped a lot)
    mapped = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    limit = mapped + 4 * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (min(limit, hard) if hard > 0 else limit, hard))
    try:
        with pytest.raises(FingerprintFileError) as caught:
            Fingerprint.from_bytes(data, "shared.npz")
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    message = str(caught.value)
    assert message.startswith("shared.npz: ") and "\n" not in message
    assert __import__("re").search(expected, message), message


def test_every_meta_field_has_exactly_one_rule():
    fields = {f.name: f for f in dataclasses.fields(FingerprintMeta)}
    rules = {rule.name: rule for rule in META_RULES}
    assert set(rules) == set(fields) and len(rules) == len(META_RULES)
    for name, field in fields.items():  # a field with a default may be absent from older files
        if name in ("format_version", "probe"):  # defaults for new fingerprints, but every file must state them
            assert rules[name].required
            continue
        has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
        assert rules[name].required == (not has_default), name


def test_limits_and_depth_count():
    assert MAX_FEATURE_DIM == 8192
    assert json_depth('{"a": [1, {"b": "[[[["}]}') == 3


def test_control_characters_in_names_are_removed_on_load():
    data = with_meta(name="mine\n  1  fake_task  0.000000  CT\x1b[2J\x1b]0;title\x07",
                     class_counts={"benign\x1b[31m": 3, "malignant\n": 2})
    loaded = Fingerprint.from_bytes(data, "shared.npz")
    assert "\x1b" not in loaded.name and "\n" not in loaded.name and "\x07" not in loaded.name
    assert all(key.isprintable() for key in loaded.meta.class_counts)


def test_compare_prints_no_forged_line_and_no_escape_codes(tmp_path, capsys):
    catalogue = make_catalogue(tmp_path / "cat")
    path = tmp_path / "shared.npz"
    path.write_bytes(with_meta(name="mine'\n  1  task_0  0.000000  forged\x1b[2J\x1b[H"))
    code, out, err = run_main(capsys, "compare", str(path), "--catalogue", str(catalogue))
    assert code == EXIT_OK, err
    lines = out.splitlines()  # the verdict first, then the header that names the task
    assert "\x1b" not in out and "forged" in lines[1] and lines[1].startswith("sources for")
    assert len([line for line in lines if line.lstrip().startswith("1 ")]) == 1
    assert "inf %" not in lines[0] and "identical" in lines[0]  # the nearest source is the same fingerprint


@pytest.mark.parametrize("case", ["protocol_null", "json_nested_200000_deep", "counts_header_declares_1280_by_1e12",
                                  "class_counts_negative"])
def test_cli_exits_4_with_one_line(case, tmp_path, capsys):
    catalogue = make_catalogue(tmp_path / "cat")
    path = tmp_path / "shared.npz"
    path.write_bytes(HOSTILE[case][0])
    for args in (("compare", str(path), "--catalogue", str(catalogue)),
                 ("catalogue", "add", str(path), "--local", str(tmp_path / "local"), "--catalogue", str(catalogue))):
        code, out, err = run_main(capsys, *args)
        assert code == EXIT_FINGERPRINT and err.count("\n") == 1 and "shared.npz" in err, err
    assert not (tmp_path / "local").exists()  # negative class counts never reach a catalogue


def test_fifo_is_never_opened_as_a_fingerprint(tmp_path):
    import os
    fifo = tmp_path / "shared.npz"
    os.mkfifo(fifo)
    with pytest.raises(FingerprintFileError, match="not a regular file"):
        Fingerprint.load(fifo)


def test_a_real_backbone_fingerprint_within_its_ranges_is_accepted():
    loaded = Fingerprint.from_bytes(lite0_like(postact=5.9), "shared.npz")
    assert loaded.meta.postact_dim == 1280 and loaded.postact_mean.max() == 5.9


def test_fingerprints_with_other_post_activation_widths_are_not_comparable():
    from core.errors import IncompatibleFingerprintsError
    from core.fingerprint.fingerprint import check_comparable

    mine = make_fingerprint(seed=1, probe="blocks", postact_dim=32)
    mine = dataclasses.replace(mine, postact_mean=np.full(32, 0.5))
    with pytest.raises(IncompatibleFingerprintsError, match="post-activation dimension: 32 vs 16"):
        check_comparable(mine, make_fingerprint(seed=2, probe="blocks"))


@pytest.mark.parametrize("case", ["postact_dim_differs_from_the_postact_probe", "postact_mean_all_zero",
                                  "mean_1e308"])
def test_implausible_fingerprints_never_reach_a_catalogue_and_p2l_keeps_working(case, tmp_path, capsys):
    catalogue = make_catalogue(tmp_path / "cat", n_tasks=3)
    path = tmp_path / "shared.npz"
    path.write_bytes(HOSTILE[case][0])
    code, _, err = run_main(capsys, "catalogue", "add", str(path), "--local", str(tmp_path / "local"),
                            "--catalogue", str(catalogue))
    assert code == EXIT_FINGERPRINT and "shared.npz" in err, err
    assert not (tmp_path / "local").exists()
    good = make_fingerprint(seed=7, name="good").save(tmp_path / "good.npz")
    for distance in ("p2l", "bkld-small"):
        code, out, err = run_main(capsys, "compare", str(good), "--catalogue", str(catalogue), "--distance", distance)
        assert code == EXIT_OK, err
        assert "task_0" in out and "task_2" in out
