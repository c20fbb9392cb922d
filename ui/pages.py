"""The app's pages, defined once: their paths (for ``st.page_link`` / ``st.switch_page``) and the navigation."""
from __future__ import annotations

YOUR_TASK = "pages/0_Your_task.py"
RECOMMENDATIONS = "pages/1_Recommendations.py"
MAP = "pages/2_Map.py"
HEATMAP = "pages/3_Heatmap.py"
WHY_SIMILAR = "pages/4_Why_similar.py"
CATALOGUE_EXPLORER = "pages/5_Catalogue_explorer.py"
COTRAIN_PLAN = "pages/6_Co-training_plan.py"
KNOWLEDGE_CLOUD = "pages/7_Knowledge_cloud.py"

#: (path, title, icon) in menu order; the first is the landing page
PAGES = (
    (YOUR_TASK, "Your task", ":material/upload_file:"),
    (RECOMMENDATIONS, "Recommendations", ":material/leaderboard:"),
    (MAP, "Map", ":material/scatter_plot:"),
    (HEATMAP, "Heatmap", ":material/grid_on:"),
    (WHY_SIMILAR, "Why this task?", ":material/query_stats:"),
    (CATALOGUE_EXPLORER, "Catalogue explorer", ":material/menu_book:"),
    (COTRAIN_PLAN, "Co-training plan", ":material/group_work:"),
    (KNOWLEDGE_CLOUD, "Knowledge cloud", ":material/cloud:"),
)


def navigation():
    """The app's ``st.navigation`` over :data:`PAGES` (call ``.run()`` on it)."""
    import streamlit as st

    return st.navigation([st.Page(path, title=title, icon=icon, default=path == YOUR_TASK)
                          for path, title, icon in PAGES])
