"""Incremental rebuild cost: embedding time of a rebuild after changing ~1% of the documents vs the full build,
measured in the same run, and whether its index answers like a from-scratch build of the changed corpus.

    python benchmarks/index_incremental.py [--docs 400] [--change 0.01] [--out /tmp/pixsearch-incremental]

Corpus: the demo's Wikipedia articles (gensim's test dump) cut into documents of ~120 words (paragraph groups), the
first `--docs` of them. Change: a share of the documents, split between edits, additions and deletions. All three
builds use the embedded MiniLM encoder on the CPU with `engine=sequential`; the encoder is loaded before the first
timed build, so no build pays the model load. Prints a human-readable block and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexing.build import build_index  # noqa: E402
from indexing.config import IndexBuildConfig  # noqa: E402
from indexing.demo_corpus import wiki_dump_path  # noqa: E402
from indexing.embedders import cached_text_encoder  # noqa: E402
from indexing.readers import read_mediawiki  # noqa: E402
from indexing.searcher import ShardedSearcher  # noqa: E402
from pixsearch_core.config import validate_config  # noqa: E402
from pixsearch_core.retrieval.types import TextQuery  # noqa: E402
from pixsearch_core.storage import ObjectStore  # noqa: E402

QUERIES = [
    "who founded the American National Standards Institute",
    "the capital of Alabama",
    "anarchism and the state",
    "Aristotle's logic",
    "the Academy Awards ceremony",
    "an autistic child",
    "the alphabet's first letter",
    "Abraham Lincoln's presidency",
    "Apollo mission to the moon",
    "the Amazon river basin",
]


def documents(n: int) -> list[dict]:
    out = []
    for art in read_mediawiki(str(wiki_dump_path()), ObjectStore(), "https://en.wikipedia.org/wiki/"):
        words = art["text"].split()
        for k, start in enumerate(range(0, len(words), 120)):
            out.append(
                {
                    "id": f"{art['id']}-{k}",
                    "title": art["title"],
                    "text": " ".join(words[start : start + 120]),
                    "url": art["url"],
                }
            )
            if len(out) >= n:
                return out
    return out


def change(docs: list[dict], share: float) -> tuple[list[dict], int]:
    k = max(3, round(len(docs) * share))
    rng = np.random.default_rng(0)
    picks = rng.choice(len(docs), size=k, replace=False)
    out = [dict(d) for d in docs]
    edits, deletes = picks[: k - 2 * (k // 3)], set(picks[k - 2 * (k // 3) : k - k // 3].tolist())
    for i in edits:
        out[i]["text"] += " (revised in this week's dump)"
    out = [d for i, d in enumerate(out) if i not in deletes]
    out += [
        {
            "id": f"new-{j}",
            "title": "Added article",
            "text": f"A new article number {j} about " + docs[j]["text"],
            "url": "",
        }
        for j in range(k // 3)
    ]
    return out, k


def cfg_for(corpus: Path, out: Path) -> IndexBuildConfig:
    return validate_config(
        IndexBuildConfig,
        {
            "name": "inc",
            "output": str(out),
            "engine": "sequential",
            "sources": [{"kind": "jsonl", "path": str(corpus)}],
            "passages": {"words": 100},
            "image_encoder": {"kind": "none"},
            "shards": {"passages_per_shard": 200},
            "text_encoder": {"device": "cpu"},
        },
    )


def answers(uri: str, cache: str):
    hits = ShardedSearcher(uri, cache_dir=cache).search_many([TextQuery(q) for q in QUERIES], k=10)
    return [[h.meta["id"] for h in row] for row in hits], np.array([[h.score for h in row] for row in hits])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=400)
    ap.add_argument("--change", type=float, default=0.01)
    ap.add_argument("--out", default="/tmp/pixsearch-incremental")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    root = Path(args.out)
    shutil.rmtree(root, ignore_errors=True)
    (root / "corpus").mkdir(parents=True)
    docs = documents(args.docs)
    corpus = root / "corpus" / "docs.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    cached_text_encoder(cfg_for(corpus, root).text_encoder, "~/.cache/pixsearch")  # load once, outside the timings
    full = build_index(cfg_for(corpus, root / "store"))["manifest"]
    changed, k = change(docs, args.change)
    corpus.write_text("".join(json.dumps(d) + "\n" for d in changed))
    inc = build_index(cfg_for(corpus, root / "store"))["manifest"]
    fresh = build_index(cfg_for(corpus, root / "fresh"))["manifest"]
    ids_i, sc_i = answers(str(root / "store/indices/inc"), str(root / "cache1"))
    ids_f, sc_f = answers(str(root / "fresh/indices/inc"), str(root / "cache2"))
    res = {
        "documents": len(docs),
        "changed_documents": k,
        "passages": inc["indices"]["text"]["count"],
        "full_embed_s": full["stats"]["embed_seconds"],
        "incremental_embed_s": inc["stats"]["embed_seconds"],
        "fresh_embed_s": fresh["stats"]["embed_seconds"],
        "embedded": inc["indices"]["text"]["embeddings"]["embedded"],
        "reused": inc["indices"]["text"]["embeddings"]["reused"],
        "same_ids": ids_i == ids_f,
        "max_score_diff": float(np.abs(sc_i - sc_f).max()),
    }
    res["ratio_incremental_vs_full"] = round(res["incremental_embed_s"] / res["full_embed_s"], 4)
    print(
        f"{res['documents']} documents ({res['passages']} passages), {k} changed (edit/add/delete)\n"
        f"full build embed: {res['full_embed_s']:.1f}s; rebuild embed: {res['incremental_embed_s']:.2f}s "
        f"({res['embedded']} embedded, {res['reused']} reused); ratio {res['ratio_incremental_vs_full']:.3f}\n"
        f"rebuild vs from-scratch build of the changed corpus, {len(QUERIES)} queries x top-10: same ids "
        f"{res['same_ids']}, max score difference {res['max_score_diff']:.2e}"
    )
    print(json.dumps(res))
    return 0 if res["same_ids"] else 1


if __name__ == "__main__":
    sys.exit(main())
