"""'Your task' input handling: the four kinds of input (folder upload, .zip, local path, shared fingerprint), the
fingerprinting run with its progress bar, and what was read and skipped."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import EngineError, IncompatibleFingerprintsError
from core.features.backbones import POSTACT
from core.features.extract import ExtractionProgress
from core.features.inference import engine_for
from core.features.sampling import CATALOGUE_N, PAPER_N, SamplingProtocol
from core.fingerprint.fingerprint import Fingerprint, check_comparable
from core.fingerprint.pipeline import fingerprint_folder, with_probe
from core.report.feature_meaning import read_sampled_images
from ui import session
from ui.common import probe_choice
from ui.resources import get_backbone, get_catalogue, get_catalogues
from ui.text import md

SAMPLE_SIZES = {"Quick preview (n = 500)": 500, f"Catalogue protocol (n = {CATALOGUE_N:,})": CATALOGUE_N,
                f"Paper protocol (n = {PAPER_N:,})": PAPER_N}
LOCAL_ADDRESSES = {"localhost", "127.0.0.1", "::1"}
#: how the success line names the backend that ran the forward pass (fingerprint meta "backend")
BACKEND_LABELS = {"onnxruntime": "ONNX Runtime (checked against PyTorch)", "torch": "PyTorch"}
SOURCE_KINDS = ["Upload a folder", "Upload a .zip", "Local folder path", "Load a shared fingerprint"]


def server_is_local() -> bool:
    return str(st.get_option("server.address") or "").strip() in LOCAL_ADDRESSES


def run_fingerprint(catalogue, folder: Path, name: str, n: int, workdir: Path | None = None) -> None:
    """Fingerprint the user's ``folder`` with a progress bar; on success the result goes into the session."""
    bar = st.progress(0.0, text="Starting…")

    def progress(update: ExtractionProgress) -> None:
        eta = f"{update.eta_s:.0f} s left" if update.eta_s is not None else "estimating time left"
        bar.progress(min(update.done / update.total, 1.0),
                     text=f"{update.done:,} / {update.total:,} samples · {update.images_per_s:.1f} images/s · {eta}")

    shipped = get_catalogue()  # its probe's forward pass also gives the post-activation features
    base = shipped if catalogue.probe in (shipped.probe, POSTACT) else catalogue
    try:
        backbone = get_backbone(base.probe)
        run = fingerprint_folder(folder, backbone, base.edges, SamplingProtocol(n=n), name=name,
                                 progress=progress, keep_samples=True,
                                 workdir=workdir or folder.parent)
    except EngineError as err:
        bar.empty()
        st.error(md(err))
        return
    except Exception as err:  # never a traceback in front of a user; the message still says what happened
        bar.empty()
        st.error(f"Fingerprinting failed unexpectedly ({type(err).__name__}: {md(err)}). Nothing was saved; please "
                 "report this with the message.")
        return
    bar.progress(1.0, text=f"Done: {run.fingerprint.meta.n_samples:,} samples. Keeping a few thumbnails for "
                           "'Why this task?' (this session only)…")
    found = {base.probe: run.fingerprint}
    for probe, other in get_catalogues().items():  # every other probe from the same pass: switching is instant
        if probe not in found and probe == POSTACT and run.fingerprint.sample_postact is not None:
            found[probe] = with_probe(run.fingerprint, probe, other.edges)
    session.set_result(found.get(catalogue.probe, run.fingerprint), run.report, found)
    try:  # thumbnails of a few images, in memory for this session only: which of your images drive a feature
        # (read now, while the folder exists; their features are computed after the first table)
        session.set_sampled_images(read_sampled_images(folder, engine_for(backbone).batch_size,
                                                       workdir=workdir or folder.parent), backbone)
    except Exception:  # optional; 'Why this task?' says when there are none
        pass


def task_input(catalogue):
    """The input widgets and their actions; returns the catalogue to compare with (a shared fingerprint made with
    another shipped probe switches to the catalogue made with that probe)."""
    source_kind = st.radio("Your images", SOURCE_KINDS, horizontal=True, key="source_kind")
    name = st.text_input("Name of your task", value="my task", max_chars=80, key="task_name")
    size_label = st.selectbox("Samples (drawn with replacement, as in the paper)", list(SAMPLE_SIZES),
                              key="n_choice")
    n = SAMPLE_SIZES[size_label]
    probe_choice(catalogue)

    if source_kind == "Upload a folder":
        files = st.file_uploader("Drop a folder of images (first-level subfolders are classes)",
                                 accept_multiple_files="directory", key="folder_upload")
        if files and st.button("Compute fingerprint", type="primary", key="go_folder"):
            with session.UploadFolder() as folder:
                refused = session.write_uploads(files, folder / "task")
                for upload_name, reason in refused:
                    st.warning(md(f"{upload_name}: {reason}"))
                run_fingerprint(catalogue, folder / "task", name, n)
    elif source_kind == "Upload a .zip":
        archive = st.file_uploader("A .zip of your images", type=["zip"], key="zip_upload")
        if archive is not None and st.button("Compute fingerprint", type="primary", key="go_zip"):
            with session.UploadFolder() as folder:
                target = folder / (Path(session.safe_relative(archive.name) or "upload.zip").name)
                target.write_bytes(archive.getvalue())
                run_fingerprint(catalogue, target, name, n)
    elif source_kind == "Local folder path":
        if not server_is_local():
            st.warning("Typing a folder path is offered only when the app runs on your own machine (server address "
                       "localhost). Upload the folder or a .zip instead.")
        else:
            path_text = st.text_input("Folder on this machine (for folders too large to upload)", key="local_path")
            if path_text and st.button("Compute fingerprint", type="primary", key="go_local"):
                local = Path(path_text).expanduser()
                if not local.is_dir() and local.suffix.lower() != ".zip":
                    st.error(md(f"{local}: not a folder (or .zip) on this machine"))
                else:
                    with session.UploadFolder() as folder:  # archives inside are extracted here, then removed
                        run_fingerprint(catalogue, local, name, n, workdir=folder)
    else:
        catalogue = load_shared(catalogue)
    return catalogue


def load_shared(catalogue):
    """Upload a shared fingerprint file; returns the catalogue to compare it with."""
    shared = st.file_uploader("A fingerprint file (.npz) someone shared", type=["npz"], key="fingerprint_upload")
    if shared is not None and st.button("Load fingerprint", type="primary", key="go_load"):
        try:
            loaded = Fingerprint.from_bytes(shared.getvalue(), source=shared.name)
            if loaded.meta.probe != catalogue.probe and loaded.meta.probe in get_catalogue().alternate_probes():
                st.session_state[session.PROBE] = loaded.meta.probe  # the catalogue made with that probe
                catalogue = get_catalogue(probe=loaded.meta.probe)
                st.info(md(f"{shared.name} was made with probe '{loaded.meta.probe}': compared with the catalogue "
                           "made with that probe."))
            warnings = check_comparable(loaded, catalogue.fingerprints[catalogue.ids[0]])
        except IncompatibleFingerprintsError as err:
            st.error(md(f"{shared.name} cannot be compared with the catalogue: {err}"))
        except EngineError as err:
            st.error(md(err))
        else:
            for warning in warnings:
                st.warning(md(warning))
            session.set_result(loaded, None)
    return catalogue


def read_and_skipped(fingerprint) -> None:
    """What was read (per class) and what was skipped with the reason; a loaded fingerprint shows its classes."""
    report = session.report()
    if report is not None:
        left, right = st.columns(2)
        with left:
            st.subheader("Read")
            for headline in report.headlines():  # no class labels; each image used several times
                st.info(md(headline))
            st.dataframe(pd.DataFrame(report.rows()), hide_index=True, key="read_table")
            for path, note in report.notes[:50]:
                st.caption(md(f"{path}: {note}"))
        with right:
            st.subheader(f"Skipped ({len(report.skipped)})")
            if report.skipped:
                st.dataframe(pd.DataFrame([{"file": s.path, "reason": s.reason} for s in report.skipped]),
                             hide_index=True, key="skipped_table")
            else:
                st.write("Nothing was skipped.")
    elif fingerprint.meta.class_counts:
        st.dataframe(pd.DataFrame({"class": list(fingerprint.meta.class_counts),
                                   "images": list(fingerprint.meta.class_counts.values())}), hide_index=True)


def download_name(fingerprint) -> str:
    """A safe file name for the fingerprint download."""
    safe_name = "".join(c if c.isalnum() or c in "-_" else "_" for c in fingerprint.name) or "fingerprint"
    return f"{safe_name}.fingerprint.npz"
