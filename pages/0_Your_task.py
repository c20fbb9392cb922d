"""Landing page "Your task": add images (folder, .zip or local path) or a shared
fingerprint, compute the fingerprint on this machine, see what was read and skipped."""
from __future__ import annotations

import streamlit as st

from core.report.verdict import ranked_with_references
from ui import pages, session
from ui.common import footer, page_setup
from ui.resources import get_catalogue, get_catalogues, preload
from ui.task_input import BACKEND_LABELS, download_name, read_and_skipped, task_input
from ui.text import md
from ui.verdict import show_verdict_when_ready

catalogue = page_setup("Your task")
get_catalogues()  # every probe's catalogue loaded before a fingerprint needs them (once per server process)
preload(get_catalogue().probe)  # the backbone fingerprints are made with, loaded while the user chooses images
st.markdown("Which public tasks resemble yours, and what could you borrow from them? Your images never leave this "
            "machine: only a **fingerprint** (per-feature histograms of a pretrained CNN's features, no pixels, no "
            "file names) is computed and compared with the catalogue's "
            f"{catalogue.neighbourhood_of.get('total', len(catalogue.tasks)):,} public tasks.")
for warning in catalogue.version_warnings():
    st.warning(md(warning))
catalogue = task_input(catalogue)
if catalogue.neighbourhood_of:  # a large catalogue: the neighbourhood of the fingerprint just made
    catalogue = get_catalogue(catalogue.probe)

fingerprint = session.fingerprint()
if fingerprint is not None:
    backend = BACKEND_LABELS.get(fingerprint.meta.backend, fingerprint.meta.backend)
    st.success(f"Fingerprint of **{md(fingerprint.name)}** ready: {fingerprint.meta.n_samples:,} samples, "
               f"{fingerprint.n_features} features, computed with {backend}.")
    st.caption(f"Network: {fingerprint.meta.backbone}, probe layer {fingerprint.meta.probe}. "
               "Probe layer: the layer of the pretrained network whose values describe each image.")
    read_and_skipped(fingerprint)
    st.download_button("Download your fingerprint (.npz, no pixels, no file names)", fingerprint.to_bytes,
                       file_name=download_name(fingerprint), mime="application/octet-stream", key="download_fp")
    distance = session.distance()  # the table at once; the verdict as soon as the bootstrap behind it is ready
    ranked = session.points(catalogue, fingerprint, distance).table
    st.subheader(f"Closest public tasks to {md(fingerprint.name)}")
    finish = show_verdict_when_ready(catalogue, fingerprint, distance)
    top = ranked_with_references(ranked).head(6)
    top = top.assign(place=["reference" if ref else str(r) for ref, r in zip(top["reference_control"], top["rank"])])
    st.dataframe(top[["place", "task", "note", "modality", "anatomy", "licence", "distance"]], hide_index=True,
                 key="top_table", column_config={
                     "place": st.column_config.TextColumn("rank", help="'reference' = everyday non-medical images "
                                                          "shown at their place for scale"),
                     "task": st.column_config.TextColumn("public task"),
                     "note": st.column_config.TextColumn("caution"),
                     "licence": st.column_config.TextColumn("licence as stated"),
                     "distance": st.column_config.NumberColumn("raw distance", format="%.4f",
                                                               help="bKLD, public task → yours; lower = closer")})
    st.page_link(pages.RECOMMENDATIONS, label="See recommendations with uncertainty and the paper's evidence",
                 icon=":material/arrow_forward:")
    footer()
    finish()  # the verdict, once its bootstrap is ready (the page runs again)
else:
    footer()
