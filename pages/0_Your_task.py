"""Landing page "Your task": add images (folder, .zip or local path) or a shared
fingerprint, compute the fingerprint on this machine, see what was read and skipped."""
from __future__ import annotations

import streamlit as st

from core.report.recommend import recommendations
from ui import pages, session
from ui.common import footer, page_setup
from ui.task_input import BACKEND_LABELS, download_name, read_and_skipped, task_input
from ui.text import md

catalogue = page_setup("Your task")
st.markdown("Which public tasks resemble yours, and what could you borrow from them? Your images never leave this "
            "machine: only a **fingerprint** (per-feature histograms of a pretrained CNN's features, no pixels, no "
            "file names) is computed and compared with the catalogue's "
            f"{len(catalogue.tasks)} public tasks.")
for warning in catalogue.version_warnings():
    st.warning(warning)
catalogue = task_input(catalogue)

fingerprint = session.fingerprint()
if fingerprint is not None:
    backend = BACKEND_LABELS.get(fingerprint.meta.backend, fingerprint.meta.backend)
    st.success(f"Fingerprint of **{md(fingerprint.name)}** ready: {fingerprint.meta.n_samples:,} samples, "
               f"{fingerprint.n_features} features, backbone {fingerprint.meta.backbone}, probe "
               f"{fingerprint.meta.probe}, computed with {backend}.")
    read_and_skipped(fingerprint)
    st.download_button("Download your fingerprint (.npz, no pixels, no file names)", fingerprint.to_bytes(),
                       file_name=download_name(fingerprint), mime="application/octet-stream", key="download_fp")
    ranked = recommendations(catalogue, fingerprint)
    top = ranked[ranked["kind"] != "control"].head(5)
    st.subheader(f"Top sources for {md(fingerprint.name)}")
    st.dataframe(top[["rank", "task", "distance", "modality", "anatomy", "licence"]], hide_index=True,
                 key="top_table", column_config={"distance": st.column_config.NumberColumn(format="%.4f")})
    st.page_link(pages.RECOMMENDATIONS, label="See recommendations with uncertainty and the paper's evidence",
                 icon=":material/arrow_forward:")
footer()
