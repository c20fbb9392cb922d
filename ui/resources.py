"""Heavy shared objects, created once per server process (``st.cache_resource``)."""
from __future__ import annotations

import streamlit as st

from core.backbones import LoadedBackbone, load_backbone
from core.catalogue import DEFAULT_CATALOGUE, Catalogue, load_catalogue


@st.cache_resource(show_spinner="Loading the catalogue…")
def get_catalogue(root: str = str(DEFAULT_CATALOGUE), probe: str | None = None) -> Catalogue:
    """The catalogue made with ``probe`` (None: the shipped default), prepared once per server process."""
    catalogue = load_catalogue(root).for_probe(probe)
    catalogue.bank("bkld-small")  # prepare the default distance's source terms once per server process
    return catalogue


@st.cache_resource(show_spinner="Loading the backbone (real ImageNet weights, verified by sha256)…")
def get_backbone(probe: str | None = None) -> LoadedBackbone:
    """The default backbone with the fastest backend available (ONNX Runtime on the CPU when installed: exported
    and checked against PyTorch on first use)."""
    return load_backbone(probe=probe)
