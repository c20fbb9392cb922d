"""Task Fingerprint Explorer: ``streamlit run app.py``. The router; each page lives in ``pages/`` and stays thin."""
from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Task Fingerprint Explorer", layout="wide")
st.navigation([
    st.Page("pages/0_Your_task.py", title="Your task", icon=":material/upload_file:", default=True),
    st.Page("pages/1_Recommendations.py", title="Recommendations", icon=":material/leaderboard:"),
    st.Page("pages/2_Map.py", title="Map", icon=":material/scatter_plot:"),
    st.Page("pages/3_Heatmap.py", title="Heatmap", icon=":material/grid_on:"),
    st.Page("pages/4_Why_similar.py", title="Why similar?", icon=":material/query_stats:"),
    st.Page("pages/5_Catalogue_explorer.py", title="Catalogue explorer", icon=":material/menu_book:"),
    st.Page("pages/6_Co-training_plan.py", title="Co-training plan", icon=":material/group_work:"),
]).run()
