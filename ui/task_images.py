"""What a public task's images look like: the shipped thumbnails where the licence allows them (with the credit it
asks for), else the place to see and obtain the data."""
from __future__ import annotations

import streamlit as st

from core.catalogue.thumbnails import source_link, thumbnails_of
from core.report.cotrain import licence_short


def example_strip(catalogue, task_id: str, container=st) -> None:
    """Up to 6 thumbnails (96 px) of ``task_id`` with their credit, or the source link when none may be shipped."""
    info = catalogue.task(task_id)
    paths, record = thumbnails_of(catalogue.root, task_id)
    link = source_link(info.source)
    where = f"[where to obtain the data]({link})" if link else "source: " + info.source
    if paths:
        container.image([str(p) for p in paths], width=96)
        container.caption(f"Examples from {info.name} — {record.get('attribution', '')}; "
                          f"{record.get('changes', '')}. {where}")
    else:
        container.caption(f"No example images of {info.name} are shipped: its licence "
                          f"({licence_short(info.licence)}) does not clearly allow copying them. See them at the "
                          f"source: {where}.")
