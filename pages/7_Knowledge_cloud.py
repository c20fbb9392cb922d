"""The knowledge cloud: connect with a URL and a token (kept in this session only), browse published tasks, publish
yours after seeing exactly what leaves this machine, attach what you measured, rank the cloud's tasks."""
from __future__ import annotations

import streamlit as st

from core.cloud.client import CloudClient, CloudClientError
from core.cloud.records import SCENARIOS
from ui import cloud, pages, session
from ui.common import footer, page_setup

page_setup("Knowledge cloud")
st.markdown("Institutions publish task fingerprints (no images) with a card and what worked for them; everyone "
            "ranks the published tasks against their own. **Rank on the server** sends your fingerprint to the "
            "cloud's server. **`python -m core cloud pull`** downloads the published tasks instead, so that "
            "`compare --catalogue` ranks them on this machine and your fingerprint never leaves it.")

with st.form("cloud_connect"):
    left, right = st.columns(2)
    url = left.text_input("Cloud URL", value=st.session_state.get(cloud.URL, ""), placeholder="https://cloud.example")
    token = right.text_input("Token", value=st.session_state.get(cloud.TOKEN, ""), type="password",
                             help="kept in this browser session only, never written to disk")
    if st.form_submit_button("Connect"):
        st.session_state[cloud.URL], st.session_state[cloud.TOKEN] = url.strip(), token.strip()
if not st.session_state.get(cloud.URL):
    st.info("Connect to a cloud to browse, publish and rank. Its operator gives you the URL and a token.")
    footer()
    st.stop()

client = CloudClient(st.session_state[cloud.URL], st.session_state.get(cloud.TOKEN) or None, timeout_s=60)
try:
    tasks = client.tasks()
except CloudClientError as err:
    st.error(cloud.plain(err))
    st.stop()
st.success(f"Connected: {len(tasks)} published task(s).")
fingerprint = session.fingerprint()
browse, publish, experience, rank = st.tabs(["Browse", "Publish your task", "Attach an experience",
                                             "Rank on the server"])

with browse:
    st.dataframe(cloud.tasks_table(tasks), hide_index=True, key="cloud_tasks")
    if tasks:
        chosen = st.selectbox("Experiences of", [t["id"] for t in tasks], key="cloud_browse_task",
                              format_func=lambda i: next(t["card"]["name"] for t in tasks if t["id"] == i))
        experiences = cloud.experiences_table(next(t for t in tasks if t["id"] == chosen))
        if len(experiences):
            st.dataframe(experiences, hide_index=True, key="cloud_experiences")
        else:
            st.caption("No experience attached yet.")

with publish:
    if fingerprint is None:
        st.info("Make or load your task's fingerprint on **Your task** first.")
        st.page_link(pages.YOUR_TASK, label="Go to Your task", icon=":material/arrow_forward:")
    else:
        a, b = st.columns(2)
        card = {"name": a.text_input("Task name", value=fingerprint.name, key="cloud_name"),
                "modality": b.text_input("Modality", key="cloud_modality"),
                "anatomy": a.text_input("Anatomy", key="cloud_anatomy"),
                "classes": dict(fingerprint.meta.class_counts),
                "terms_of_reuse": b.text_input("Terms of reuse", key="cloud_terms"),
                "contact": a.text_input("Contact", key="cloud_contact")}
        st.markdown("**This is exactly what leaves this machine** when you publish:")
        st.json(cloud.outgoing(fingerprint, card), expanded=2)
        agreed = st.checkbox("I have checked what is sent and may publish it", key="cloud_agree")
        if st.button("Publish", disabled=not agreed, key="cloud_publish"):
            try:
                task = client.publish(fingerprint.to_bytes(), card)
                st.success(cloud.plain(f"Published as {task['id']}."))
            except CloudClientError as err:
                st.error(cloud.plain(err))

with experience:
    if not tasks:
        st.caption("No published task to attach to.")
    else:
        with st.form("cloud_experience"):
            task_id = st.selectbox("Task", [t["id"] for t in tasks],
                                   format_func=lambda i: next(t["card"]["name"] for t in tasks if t["id"] == i))
            scenario = st.selectbox("What was borrowed", SCENARIOS)
            a, b, c = st.columns(3)
            source_task = a.text_input("Source task")
            architecture = b.text_input("Architecture")
            policy = c.text_input("Augmentation policy")
            metric = a.text_input("Metric", value="AUROC")
            without = b.number_input("Without the transfer", value=0.0, format="%.4f")
            with_transfer = c.number_input("With the transfer", value=0.0, format="%.4f")
            repetitions = a.number_input("Repetitions", min_value=1, value=1, step=1)
            note = st.text_area("Note")
            if st.form_submit_button("Attach"):
                try:
                    client.add_experience(task_id, {
                        "scenario": scenario, "transferred": {"source_task": source_task, "architecture": architecture,
                                                              "policy": policy},
                        "metric": metric, "value_without": float(without), "value_with": float(with_transfer),
                        "repetitions": int(repetitions), "note": note})
                    st.success("Attached.")
                except CloudClientError as err:
                    st.error(cloud.plain(err))

with rank:
    if fingerprint is None:
        st.info("Make or load your task's fingerprint on **Your task** first.")
    else:
        st.warning("Ranking on the server sends your fingerprint to it. To keep it on this machine, run "
                   "`python -m core cloud pull FOLDER` and `python -m core compare mine.npz --catalogue FOLDER`.")
        if st.button("Send my fingerprint and rank", key="cloud_rank"):
            try:
                result = client.query(fingerprint.to_bytes())
                st.dataframe(cloud.ranking_table(result), hide_index=True, key="cloud_ranking")
                st.text(result["verdict"])
            except CloudClientError as err:
                st.error(cloud.plain(err))
client.close()
footer()
