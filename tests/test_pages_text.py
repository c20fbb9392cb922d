"""Every page's text, read through AppTest after a comparison, holds no raw identifier, column name or file path
(tests/forbidden.py); table headers and the text cells of every table too."""
from __future__ import annotations

import pytest

from tests.forbidden import offending
from tests.helpers import app, no_exceptions

PAGES = ["pages/0_Your_task.py", "pages/1_Recommendations.py", "pages/2_Map.py", "pages/3_Heatmap.py",
         "pages/4_Why_similar.py", "pages/5_Catalogue_explorer.py", "pages/6_Co-training_plan.py"]
ELEMENTS = ["title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error", "text",
            "metric", "expander"]
#: widgets: their labels and the options as shown (their values are what the code gets, never shown)
WIDGETS = ["selectbox", "multiselect", "radio", "button", "toggle", "checkbox", "text_input", "number_input"]


def page_text(at) -> list[str]:
    """Every piece of text AppTest can see: elements' values, labels and options, tables' headers and text cells."""
    texts = []
    for kind in ELEMENTS:
        for element in getattr(at, kind, []):
            for attribute in ("value", "label", "body", "help"):
                value = getattr(element, attribute, None)
                if isinstance(value, str):
                    texts.append(value)
    for kind in WIDGETS:
        for element in getattr(at, kind, []):
            texts += [v for v in (getattr(element, "label", None), getattr(element, "help", None))
                      if isinstance(v, str)]
            texts += [str(o) for o in getattr(element, "options", None) or []]
    for frame in at.dataframe:
        value = frame.value
        texts += [str(c) for c in value.columns]
        for column in value.columns:
            if value[column].dtype == object:
                texts += [str(v) for v in value[column].head(50)]
    return texts


@pytest.mark.parametrize("page", PAGES)
def test_no_page_shows_raw_identifiers(page, catalogue):
    fingerprint = catalogue.halves()[("busi_3class", "b")]
    at = app(page, fingerprint=fingerprint).run()
    no_exceptions(at)
    found = {word: text[:120] for text in page_text(at) for word in offending(text)}
    assert not found, found
