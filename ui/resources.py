"""Heavy shared objects, created once per server process (``st.cache_resource``)."""
from __future__ import annotations

import threading

import numpy as np
import streamlit as st

from core.backbones import LoadedBackbone, load_backbone
from core.catalogue import DEFAULT_CATALOGUE, Catalogue, load_catalogue
from core.taskmap import TaskMap


@st.cache_resource(show_spinner="Loading the catalogue…")
def get_catalogue(root: str = str(DEFAULT_CATALOGUE)) -> Catalogue:
    return load_catalogue(root)


@st.cache_resource(show_spinner="Loading the backbone (real ImageNet weights, verified by sha256)…")
def get_backbone() -> LoadedBackbone:
    return load_backbone()


def _compile_umap() -> None:
    """Fit and transform a tiny UMAP so numba's one-off compilation (8-14 s) happens before anyone opens the map."""
    rng = np.random.default_rng(0)
    points = rng.random((12, 3))
    distances = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))
    task_map = TaskMap(distances)
    task_map.place(distances[0])


@st.cache_resource(show_spinner=False)
def start_map_warmup() -> threading.Thread:
    """Start compiling UMAP in the background when the server first runs a page; returns the thread."""
    thread = threading.Thread(target=_compile_umap, name="umap-warmup", daemon=True)
    thread.start()
    return thread


@st.cache_resource(show_spinner="Fitting the task map…")
def get_task_map(root: str = str(DEFAULT_CATALOGUE)) -> TaskMap:
    """The catalogue's map, refitted from the stored distances so it can place new tasks. UMAP with a fixed seed is
    deterministic, so the refit reproduces the shipped coordinates (tests/test_catalogue.py checks it)."""
    start_map_warmup().join()
    return TaskMap(get_catalogue(root).bkld_small)
