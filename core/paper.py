"""Where the paper's published results are found (``../shared/paper`` beside the checkout, see its README) and the
file of them that the catalogue compares its bKLD with."""
from __future__ import annotations

from pathlib import Path

DEFAULT_PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper"
#: the paper's published bKLD small matrix (its name for it: KLD-PP:NS-W:TS-100-BINS), relative to the paper folder
PAPER_BKLD_SMALL = "distances/KLD-PP_NS-W_TS-100-BINS.csv"
