"""Text that came from outside (fingerprint files, folder names, zip members, catalogue entries) made safe for each
output, one rule per output:

- terminal and logs: :func:`printable` (names: control characters dropped) or :func:`escaped` (file names in a
  read report: control characters shown as ``\\n``, ``\\x1b`` ..., so the real name stays recognisable and nothing
  can forge a line or hide text);
- CSV: :func:`csv_cell` / :func:`csv_safe_frame` (a cell starting with ``= + - @``, tab or CR gets a leading ``'``,
  as OWASP's CSV-injection advice says, so spreadsheet software shows it as text instead of running a formula);
- Markdown (Streamlit's st.markdown, captions, alerts, headings, expander labels): :func:`markdown_literal`
  (every Markdown-significant character backslash-escaped: no link, image, ``:red[...]`` directive, emoji
  shortcode or ``$...$`` formula can render from a name);
- JSON: as data (json.dumps escapes what needs escaping; nothing to do).
"""
from __future__ import annotations

import html
import re
import unicodedata

#: longest text shown for one name; longer names are cut with an ellipsis
MAX_DISPLAY_CHARS = 200


def printable(value: object, max_chars: int = MAX_DISPLAY_CHARS) -> str:
    """``value`` as a single printable line: bytes a file system could not decode (surrogate escapes) become U+FFFD,
    control and format characters (Unicode categories Cc, Cf, Cs, Co, Cn, Zl, Zp) are dropped, runs of whitespace
    become one space, and the result is cut to ``max_chars`` characters."""
    text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if not (text.isascii() and text.isprintable()):  # printable ASCII (most names) has no character to drop
        kept = []
        for char in text:
            category = unicodedata.category(char)
            if char in "\t\n\r\v\f" or category in ("Zl", "Zp"):
                kept.append(" ")
            elif category[0] != "C":
                kept.append(char)
        text = "".join(kept)
    line = " ".join(text.split())
    return line if len(line) <= max_chars else line[: max_chars - 1] + "…"



def printable_counts(counts: dict[str, int]) -> dict[str, int]:
    """Counts keyed by :func:`printable` names (class or format names); names that become equal are added up."""
    cleaned: dict[str, int] = {}
    for key, count in counts.items():
        cleaned[printable(key)] = cleaned.get(printable(key), 0) + count
    return cleaned


def escaped(value: object, max_chars: int = MAX_DISPLAY_CHARS) -> str:
    """``value`` as one line with every control or format character written as an escape (``\\n``, ``\\t``,
    ``\\r``, ``\\x1b``, ``\\u202e`` ...) and undecodable bytes as U+FFFD; cut to ``max_chars`` characters."""
    text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    named = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}
    kept = []
    for char in text:
        if char in named:
            kept.append(named[char])
        elif unicodedata.category(char)[0] == "C" or unicodedata.category(char) in ("Zl", "Zp"):
            kept.append(f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
        else:
            kept.append(char)
    line = "".join(kept)
    return line if len(line) <= max_chars else line[: max_chars - 1] + "…"


#: first characters that make spreadsheet software read a cell as a formula (OWASP, "CSV Injection")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A CSV cell that spreadsheet software shows as text: text starting with ``= + - @``, tab or CR gets a leading
    ``'``; a bare CR inside text becomes a line feed (CSV writers quote cells with line feeds, not always cells with
    a lone CR, which then splits a row); numbers (negative ones too) and everything else are returned unchanged."""
    if not isinstance(value, str):
        return value
    text = ("'" + value if value.startswith(FORMULA_STARTS) else value)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def csv_safe_frame(frame):
    """A copy of a pandas DataFrame with :func:`csv_cell` applied to every cell and column name (for to_csv)."""
    safe = frame.map(csv_cell)
    safe.columns = [csv_cell(str(column)) for column in frame.columns]
    return safe


_MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+-.!|~:$=^&\"'@")


#: an invisible character (WORD JOINER) that keeps ``http://``, ``www.`` and ``a@b.c`` from being turned into links
_NO_LINK = "\u2060"


def markdown_literal(value: object, max_chars: int = MAX_DISPLAY_CHARS) -> str:
    """:func:`printable` text with every Markdown-significant ASCII character backslash-escaped, to be placed inside
    Markdown (Streamlit) and shown literally: ``[a](http://x)`` stays those characters, not a link. Escapes do not
    stop GitHub-flavoured Markdown from linking bare addresses (``http://…``, ``www.…``, ``name@host``), so an
    invisible WORD JOINER (U+2060) is put before every ``:`` and ``@`` and after ``www``: the text reads the same."""
    escaped_text = "".join("\\" + char if char in _MARKDOWN_SPECIAL else char for char in printable(value, max_chars))
    escaped_text = escaped_text.replace("\\:", _NO_LINK + "\\:").replace("\\@", _NO_LINK + "\\@")
    return re.sub(r"(?i)(www)(\\\.)", lambda m: m.group(1) + _NO_LINK + m.group(2), escaped_text)



def plotly_literal(value: object, max_chars: int = MAX_DISPLAY_CHARS) -> str:
    """:func:`printable` text for plotly labels, legends, axis ticks and hover text, which plotly reads as a small
    HTML subset (``<a href>``, ``<b>``, ``<img>`` is not drawn but ``<a>`` is a live link): ``&``, ``<`` and ``>``
    become the entities plotly decodes back into those characters, so a name is drawn as the characters it is."""
    return html.escape(printable(value, max_chars), quote=False)
