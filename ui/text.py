"""The one way the pages show text that came from files and fingerprints (names, modalities, class and file names,
messages that quote them): through :func:`md` wherever Streamlit reads Markdown (st.markdown, captions, alerts,
headings, expander labels), so a name is always shown as the characters it is, never as a link, an image, a
``:red[...]`` directive or a formula; and CSV downloads through :func:`csv_bytes` (formula prefixes neutralised).
Table cells (st.dataframe) are plain text already. The rules themselves live in :mod:`core.text`."""
from __future__ import annotations

from core.text import csv_safe_frame, markdown_literal

#: longest message (an error quoting a file name) shown in one alert
MAX_MESSAGE_CHARS = 2_000


def md(value: object, max_chars: int = MAX_MESSAGE_CHARS) -> str:
    """``value`` escaped for a Markdown context: shown literally, on one line."""
    return markdown_literal(value, max_chars)


def csv_bytes(frame) -> bytes:
    """A DataFrame as UTF-8 CSV whose cells spreadsheet software shows as text (core.text.csv_cell)."""
    return csv_safe_frame(frame).to_csv(index=False).encode()
