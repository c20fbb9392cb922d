"""NIfTI volume vs the same slices as PNG files: fingerprinting time with n = 300 (issue 15, case 5).

Makes a synthetic 512 x 512 x 300 int16 CT-like volume (.nii.gz) and its 300 axial slices as 8-bit PNG files in a
temporary folder, fingerprints both with the default backbone on the CPU (best of ``--repeats`` runs each, interleaved)
and prints seconds, the ratio NIfTI / PNG (target <= 1.5) and the peak resident memory of the process.

    .venv/bin/python bench/nifti_vs_png.py [--slices 300] [--n 300] [--repeats 2]
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_inputs(root: Path, slices: int) -> tuple[Path, Path]:
    """(folder holding volume.nii.gz, folder of PNG slices); the PNGs are the volume's slices, windowed to 8 bits
    and rotated as the NIfTI reader shows them."""
    import nibabel
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:512, :512]
    body = ((yy - 256) ** 2 + (xx - 256) ** 2 < 200**2).astype(np.float32)
    volume = np.empty((512, 512, slices), np.int16)
    for k in range(slices):
        organ = ((yy - 256 - 60 * np.sin(k / 40)) ** 2 + (xx - 230) ** 2 < (40 + k % 30) ** 2)
        volume[:, :, k] = (-1000 + 1040 * body + 300 * organ + rng.normal(0, 20, (512, 512))).astype(np.int16)
    nifti, png = root / "nifti", root / "png"
    nifti.mkdir()
    png.mkdir()
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), nifti / "volume.nii.gz")
    lo, hi = np.percentile(volume[::4, ::4, ::4], [0.5, 99.5])
    for k in range(slices):
        plane = np.clip((np.rot90(volume[:, :, k]).astype(np.float32) - lo) * 255 / (hi - lo), 0, 255)
        Image.fromarray(plane.astype(np.uint8)).save(png / f"slice_{k:04d}.png")
    return nifti, png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from core.catalogue.store import load_catalogue
    from core.features.backbones import load_backbone
    from core.features.sampling import SamplingProtocol
    from core.fingerprint.pipeline import fingerprint_folder

    backbone = load_backbone(device="cpu")
    edges = load_catalogue().edges
    protocol = SamplingProtocol(n=args.n)
    with tempfile.TemporaryDirectory(prefix="bench-nifti-") as scratch:
        started = time.perf_counter()
        nifti, png = make_inputs(Path(scratch), args.slices)
        print(f"inputs: {args.slices} slices of 512 x 512 ({time.perf_counter() - started:.0f} s to write); "
              f"n = {args.n}", flush=True)
        times: dict[str, list[float]] = {"PNG": [], "NIfTI": []}
        for repeat in range(args.repeats):
            for label, folder in (("PNG", png), ("NIfTI", nifti)):
                started = time.perf_counter()
                run = fingerprint_folder(folder, backbone, edges, protocol)
                times[label].append(time.perf_counter() - started)
                print(f"  run {repeat + 1} {label:<5} {times[label][-1]:6.1f} s  "
                      f"({run.fingerprint.meta.n_samples} samples)", flush=True)
    best = {label: min(values) for label, values in times.items()}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"best PNG {best['PNG']:.1f} s, best NIfTI {best['NIfTI']:.1f} s, ratio NIfTI / PNG "
          f"{best['NIfTI'] / best['PNG']:.2f} (target <= 1.5); peak resident memory {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
