"""Wikitext -> plain passage text with mwparserfromhell (the maintained MediaWiki parser).

    plain_text(raw_wikitext) -> str

What is kept: prose, link texts, headings' text, list items, and the text of table cells (one table row per line,
cells joined by " | "), so a cast list or an infobox-like table stays searchable. What is dropped: templates,
<ref>s, <gallery> / <math> and other non-prose tags, File/Image/Category links, comments, table and cell
attributes (`class=`, `colspan="5"`, `bgcolor=...`) and bold / italic quote runs. The parser nests tables inside
other tags (`<onlyinclude>`, `<div>`, `<center>`), so tables are found recursively. Two leftovers are the
parser's limits, not its bugs, and are handled on its output: a cell whose attributes are completed by a template
(`| colspan="5" {{CMain}}`: the `|` separator comes from the template, which is never expanded, so the parser
sees the attributes as cell text), whose leading attribute tokens are dropped; and unbalanced bold / italic
quote runs and malformed table attributes, which make the parser give up on a whole construct (`_prepare`).
"""

from __future__ import annotations

import re

DROP_TAGS = (
    "ref",
    "gallery",
    "math",
    "timeline",
    "score",
    "graph",
    "mapframe",
    "templatedata",
    "syntaxhighlight",
    "references",
    "imagemap",
    "chem",
    "ce",
    "hiero",
)
DROP_LINKS = ("file:", "image:", "category:", "media:")
CELL_TAGS = ("td", "th")
_TABLE_PARTS = ("tr", "caption", "td", "th")
# attribute tokens at the start of a cell's text: name="value", name='value' or name=value
_ATTRS = re.compile(r"""^(?:\s*[a-zA-Z-]+\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'|]+))+\s*(?:\|(?!\|))?""")
_QUOTES = re.compile(r"'{2,}")
_MARK = "\ue000"
_STRAY_TABLE_TAG = re.compile(r"^([ \t]*[|!][^\n]*?)</(?:tr|td|th)\s*>", re.IGNORECASE | re.MULTILINE)
_TABLE_LINE = re.compile(r"^([ \t]*)(\{\||\|-+)[^\n]*$", re.MULTILINE)


def _cell_text(cell) -> str:
    text = cell.contents.strip_code(normalize=True, collapse=True, keep_template_params=False)
    return _ATTRS.sub("", text.replace(_MARK, "")).strip()


def _table_text(table) -> str:
    """One line per row, its cells' texts joined by " | "; a cell outside any row (the parser reads a `|+`
    caption that way) is a line of its own."""
    lines = []
    for node in table.contents.filter_tags(recursive=False, matches=lambda n: str(n.tag).lower() in _TABLE_PARTS):
        if str(node.tag).lower() == "tr":
            cells = [
                _cell_text(c)
                for c in node.contents.filter_tags(recursive=False, matches=lambda n: str(n.tag).lower() in CELL_TAGS)
            ]
            line = " | ".join(c for c in cells if c)
        else:
            line = _cell_text(node)
        if line:
            lines.append(line)
    if not lines:  # no rows the parser recognises: the table's text as it is
        return "\n" + table.contents.strip_code(normalize=True, collapse=True, keep_template_params=False) + "\n"
    return "\n" + "\n".join(lines) + "\n"


def _replace(code, node, text: str | None) -> None:
    try:
        if text is None:
            code.remove(node)
        else:
            code.replace(node, text)
    except ValueError:  # gone already, with a parent that was replaced first
        pass


def _prepare(wikitext: str) -> str:
    """Two rewrites before parsing, both of syntax that never carries text. Bold / italic quote runs: MediaWiki
    balances them per line when rendering, the parser does not, and one unbalanced run (common in real articles,
    e.g. in a table cell or a <ref>) makes it give up and keep the rest of that construct as raw markup; four
    apostrophes are an apostrophe plus bold. Table-start and row lines carry only attributes: a malformed one (a
    stray quote) makes the parser give up on the whole table, so only their bare syntax is kept. A closing HTML
    table tag on a wiki-table line (a stray `</tr>`) goes too. Removed runs leave a private-use mark, dropped after
    parsing, so that `[''[[x]]'']` does not become `[[[x]]]`."""
    wikitext = _QUOTES.sub(lambda m: "'" + _MARK if len(m.group(0)) == 4 else _MARK, wikitext)
    while _STRAY_TABLE_TAG.search(wikitext):
        wikitext = _STRAY_TABLE_TAG.sub(lambda m: m.group(1) + _MARK, wikitext)
    return _TABLE_LINE.sub(lambda m: m.group(1) + m.group(2), wikitext)


def plain_text(wikitext: str) -> str:
    import mwparserfromhell

    code = mwparserfromhell.parse(_prepare(wikitext))
    for tag in code.filter_tags(recursive=True, matches=lambda n: str(n.tag).lower() in DROP_TAGS):
        _replace(code, tag, None)
    for link in code.filter_wikilinks(recursive=True):
        if str(link.title).strip().lower().startswith(DROP_LINKS):
            _replace(code, link, None)
    tables = code.filter_tags(recursive=True, matches=lambda n: str(n.tag).lower() == "table")
    for table in reversed(tables):  # innermost first: a nested table's text goes into its parent's cell
        _replace(code, table, _table_text(table))
    text = code.strip_code(normalize=True, collapse=True, keep_template_params=False).replace(_MARK, "")
    text = re.sub(r"[ \t]+", " ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()
