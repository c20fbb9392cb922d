"""Task Fingerprint Explorer engine: fingerprints of image tasks and the bKLD distance between them.

Method: Godau et al., "Beyond Knowledge Silos: Task Fingerprinting for Democratization of Medical Imaging AI"
(arXiv 2412.08763). No Streamlit here: the engine is importable and scriptable on its own.
"""
__version__ = "0.1.0"
