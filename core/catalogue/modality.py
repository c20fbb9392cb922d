"""Modality families: the fact that the validity report and the task families share."""
from __future__ import annotations


def modality_family(modality: str) -> str:
    """'X-ray (knee, AP)' -> 'x-ray': the modality without its qualifier, lower case."""
    return modality.split("(")[0].strip().lower()
