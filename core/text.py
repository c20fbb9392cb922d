"""Text that came from outside (fingerprint files, folder names, catalogue entries) made safe to show on a terminal
or a page: no control characters (newlines, ANSI escape sequences, bidi overrides), no undecodable bytes, bounded
length."""
from __future__ import annotations

import unicodedata

#: longest text shown for one name; longer names are cut with an ellipsis
MAX_DISPLAY_CHARS = 200


def printable(value: object, max_chars: int = MAX_DISPLAY_CHARS) -> str:
    """``value`` as a single printable line: bytes a file system could not decode (surrogate escapes) become U+FFFD,
    control and format characters (Unicode categories Cc, Cf, Cs, Co, Cn, Zl, Zp) are dropped, runs of whitespace
    become one space, and the result is cut to ``max_chars`` characters."""
    text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in "\t\n\r\v\f" or category in ("Zl", "Zp"):
            kept.append(" ")
        elif category[0] != "C":
            kept.append(char)
    line = " ".join("".join(kept).split())
    return line if len(line) <= max_chars else line[: max_chars - 1] + "…"



def printable_counts(counts: dict[str, int]) -> dict[str, int]:
    """Counts keyed by :func:`printable` names (class or format names); names that become equal are added up."""
    cleaned: dict[str, int] = {}
    for key, count in counts.items():
        cleaned[printable(key)] = cleaned.get(printable(key), 0) + count
    return cleaned
