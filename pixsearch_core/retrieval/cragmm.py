"""The CRAG-MM benchmark's own search API (PyPI `cragmm-search-pipeline`, docs/cragmm-search.md) as a Searcher.

    searcher = CragMMSearcher.from_package(web_hf_dataset_id="crag-mm-2025/web-search-index-public-test")
    searcher = CragMMSearcher(pipeline)          # any callable `pipeline(query, k=k) -> list[dict]` (tests)

Image and region queries go to the pipeline as PIL images (regions cropped by the mask's box first); a text query
needs the web index. Results in the package's documented formats are mapped to `Evidence`:
  image  {"index", "score", "url", "entities": [{"entity_name", "entity_attributes": {...}}]}
         -> doc_id = first entity name (else the url), title = entity names, text = "name: key: value; ...",
            index "image", meta {url, result_index, entities}
  web    {"index": "<url>_chunk_<i>", "score", "page_name", "page_snippet", "page_url"[, "page_result", ...]}
         -> doc_id = page_url, title = page_name, text = page_snippet (else page_result), index "web"
The package (and its model downloads) is imported only by `from_package`.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

import numpy as np

from pixsearch_core.retrieval.crop import crop_to_mask
from pixsearch_core.retrieval.types import Evidence, ImageQuery, Query, RegionQuery, TextQuery

log = logging.getLogger(__name__)

DEFAULT_IMAGE_MODEL = "openai/clip-vit-large-patch14-336"
DEFAULT_IMAGE_INDEX = "crag-mm-2025/image-search-index-public-test"


def _attributes(attrs: Any) -> str:
    if isinstance(attrs, str):
        return attrs
    if isinstance(attrs, dict):
        return "; ".join(f"{k}: {v}" for k, v in attrs.items())
    return json.dumps(attrs, default=str)


def image_result_to_evidence(r: dict) -> Evidence:
    entities = r.get("entities") or []
    if isinstance(entities, str):  # the index stores entities as a JSON string in some versions
        entities = json.loads(entities)
    names = [e.get("entity_name", "") for e in entities if isinstance(e, dict)]
    text = "\n".join(f"{e.get('entity_name', '')}: {_attributes(e.get('entity_attributes', {}))}"
                     for e in entities if isinstance(e, dict))
    return Evidence(doc_id=names[0] if names and names[0] else str(r.get("url", r.get("index"))),
                    title="; ".join(n for n in names if n), text=text, score=float(r["score"]), index="image",
                    meta={"url": r.get("url", ""), "result_index": r.get("index"), "entities": entities})


def web_result_to_evidence(r: dict) -> Evidence:
    extra = {k: r[k] for k in ("page_last_modified", "search_result_type") if k in r}
    return Evidence(doc_id=str(r.get("page_url") or str(r["index"]).split("_chunk")[0]),
                    title=str(r.get("page_name", "")), text=str(r.get("page_snippet") or r.get("page_result") or ""),
                    score=float(r["score"]), index="web",
                    meta={"url": r.get("page_url", ""), "chunk": r.get("index"), **extra})


class CragMMSearcher:
    def __init__(self, pipeline: Callable[..., list[dict]], web: bool = True, region_padding: float = 0.1,
                 index_version: str = "cragmm"):
        self.pipeline, self.web, self.region_padding = pipeline, web, region_padding
        self.index_version = index_version

    @classmethod
    def from_package(cls, image_model_name: str = DEFAULT_IMAGE_MODEL, image_hf_dataset_id: str = DEFAULT_IMAGE_INDEX,
                     text_model_name: str | None = None, web_hf_dataset_id: str | None = None, **kw):
        """Build the official pipeline (downloads CLIP/BGE and the chromadb indices: needs network)."""
        try:
            from cragmm_search.search import UnifiedSearchPipeline
        except ImportError as e:
            raise ImportError("the CRAG-MM search API needs `pip install cragmm-search-pipeline==0.5.1`") from e
        pipe = UnifiedSearchPipeline(image_model_name=image_model_name, image_hf_dataset_id=image_hf_dataset_id,
                                     text_model_name=text_model_name, web_hf_dataset_id=web_hf_dataset_id)
        version = f"cragmm:{image_hf_dataset_id}|{web_hf_dataset_id}"
        return cls(pipe, web=web_hf_dataset_id is not None, index_version=version, **kw)

    def _one(self, query: Query, k: int) -> list[Evidence]:
        from PIL import Image

        if isinstance(query, TextQuery):
            if not self.web:
                raise ValueError("text queries need the CRAG-MM web index (web_hf_dataset_id); this searcher has "
                                 "only the image index")
            return [web_result_to_evidence(r) for r in self.pipeline(query.text, k=k)]
        if isinstance(query, (ImageQuery, RegionQuery)):
            image = query.image
            if isinstance(query, RegionQuery):
                image = crop_to_mask(image, query.mask, self.region_padding)
            if not hasattr(image, "convert"):
                image = Image.fromarray(np.asarray(image, dtype=np.uint8))
            return [image_result_to_evidence(r) for r in self.pipeline(image, k=k)]
        raise TypeError(f"CragMMSearcher handles TextQuery, ImageQuery and RegionQuery, got {type(query).__name__}")

    def search_many(self, queries: list[Query], k: int = 5) -> list[list[Evidence]]:
        return [self._one(q, k)[:k] for q in queries]

    def search(self, query: Query, k: int = 5) -> list[Evidence]:
        return self._one(query, k)[:k]
