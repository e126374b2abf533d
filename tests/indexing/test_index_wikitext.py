"""MediaWiki text cleaning on gensim's real test dumps: no markup survives, table cells keep their text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from indexing.readers import read_mediawiki
from indexing.wikitext import plain_text
from pixsearch_core.storage import ObjectStore

gensim = pytest.importorskip("gensim")
DUMPS = Path(gensim.__file__).parent / "test" / "test_data"
TABLES = "enwiki-table-markup.xml.bz2"
ARTICLES = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"  # the demo's 106 articles
MARKUP = re.compile(
    r"colspan|rowspan|bgcolor|cellpadding|\b(?:style|class|align|width|border)\s*=|''|\{\||\|\}|"
    r"^\s*\|-|\{\{|\}\}|\[\[|\]\]|</?(?:ref|tr|td|th|table|div|span|small|br)\b[^>]*>",
    re.IGNORECASE | re.MULTILINE,
)


def _docs(name: str) -> list[dict]:
    return list(read_mediawiki(str(DUMPS / name), ObjectStore(), "https://en.wikipedia.org/wiki/"))


@pytest.mark.parametrize("name,count", [(TABLES, 5), (ARTICLES, 106)])
def test_no_markup_survives_in_real_dumps(name, count):
    docs = _docs(name)
    assert len(docs) == count
    leftovers = [
        (d["title"], m.group(0), d["text"][max(0, m.start() - 40) : m.end() + 40])
        for d in docs
        for m in MARKUP.finditer(d["text"])
    ]
    assert leftovers == []
    assert sum(len(d["text"].split()) for d in docs) > 1000 * count // 10  # text is kept, not dropped wholesale


def test_table_cells_keep_their_text():
    by_title = {d["title"]: d["text"] for d in _docs(TABLES)}
    cast = next(t for title, t in by_title.items() if "Prison Break" in title)
    assert "Wentworth Miller | Michael Scofield" in cast  # one row per line, cells joined
    alabama = next(d["text"] for d in _docs(ARTICLES) if d["title"] == "Alabama")
    assert "Evangelical Protestant" in alabama and "Religious affiliation in Alabama (2014)" in alabama


def test_plain_text_rules():
    raw = (
        "Intro '''bold''' and ''it'' and l''''s. [[File:x.png|thumb|cap]] [[Category:C]]\n"
        '{| class="wikitable" style="x;""\n|-  style="a"\n! A !! B\n|-\n'
        "| colspan=\"2\" bgcolor=white | one || [[Link|shown]] '''b\n"
        '| colspan="5" {{CMain}}\n|}\n'
        "After<ref>cite ''x</ref> [''[[Right]]'']"
    )
    assert plain_text(raw) == "Intro bold and it and l's.\n\nA | B\none | shown b\n\nAfter [Right]"
