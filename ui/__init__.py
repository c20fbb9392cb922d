"""Streamlit front end helpers: cached resources, session state, figures. Pages import from here and from core."""
