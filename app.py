"""Task Fingerprint Explorer: ``streamlit run app.py``. The router; each page lives in ``pages/`` and stays thin."""
from __future__ import annotations

import streamlit as st

from ui.pages import navigation

st.set_page_config(page_title="Task Fingerprint Explorer", layout="wide")
navigation().run()
