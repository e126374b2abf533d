"""The CRAG-MM benchmark's own search API (PyPI `cragmm-search-pipeline`, docs/cragmm-search.md) as a Searcher.

    searcher = CragMMSearcher.from_package(web_hf_dataset_id="crag-mm-2025/web-search-index-public-test")
    searcher = CragMMSearcher(CragMMHTTPPipeline("http://gpu-box:8090/search"))   # the same API over HTTP
    searcher = CragMMSearcher(pipeline)          # any callable `pipeline(query, k=k) -> list[dict]` (tests)

Commands reach it through the retriever factory (pixsearch_core/retrieval/backends.py), e.g.
`pixsearch eval run --retriever cragmm retriever.cragmm.url=http://gpu-box:8090/search ...`.

Image and region queries go to the pipeline as PIL images (regions cropped by the mask's box first); a text query
needs the web index. Results in the package's documented formats are mapped to `Evidence`:
  image  {"index", "score", "url", "entities": [{"entity_name", "entity_attributes": {...}}]}
         -> doc_id = first entity name (else the url), title = entity names, text = "name: key: value; ...",
            index "image", meta {url, result_index, entities}
  web    {"index": "<url>_chunk_<i>", "score", "page_name", "page_snippet", "page_url"[, "page_result", ...]}
         -> doc_id = page_url, title = page_name, text = page_snippet (else page_result), index "web"
The package (and its model downloads) is imported only by `from_package`.

Over HTTP (`CragMMHTTPPipeline`) one call of the package's pipeline is one request, so a GPU machine holding the
package can serve many eval workers. The package itself is in-process only; this thin wire form is ours:
  POST <url>  {"k": 5, "text": "who built this bridge"}        a text query (web index)
  POST <url>  {"k": 5, "image": "<base64 PNG>"}                an image (a region arrives already cropped)
  200 -> a JSON list of result dicts, exactly as the package's `pipeline(query, k=k)` returns them (formats above);
  4xx -> BadSearchRequest (not retried), 5xx or no connection -> SearchUnavailable, no answer -> SearchTimeout.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from pixsearch_core.retrieval.crop import RegionCrop
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
    text = "\n".join(
        f"{e.get('entity_name', '')}: {_attributes(e.get('entity_attributes', {}))}"
        for e in entities
        if isinstance(e, dict)
    )
    return Evidence(
        doc_id=names[0] if names and names[0] else str(r.get("url", r.get("index"))),
        title="; ".join(n for n in names if n),
        text=text,
        score=float(r["score"]),
        index="image",
        meta={"url": r.get("url", ""), "result_index": r.get("index"), "entities": entities},
    )


def web_result_to_evidence(r: dict) -> Evidence:
    extra = {k: r[k] for k in ("page_last_modified", "search_result_type") if k in r}
    return Evidence(
        doc_id=str(r.get("page_url") or str(r["index"]).split("_chunk")[0]),
        title=str(r.get("page_name", "")),
        text=str(r.get("page_snippet") or r.get("page_result") or ""),
        score=float(r["score"]),
        index="web",
        meta={"url": r.get("page_url", ""), "chunk": r.get("index"), **extra},
    )


class CragMMHTTPPipeline:
    """The CRAG-MM search pipeline behind a URL (wire format in the module docstring), as a pipeline callable."""

    def __init__(self, url: str, timeout: float = 30.0):
        import httpx

        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the CRAG-MM search API URL must start with http:// or https://, got {url!r}")
        self.url, self.timeout = url, timeout
        self.http = httpx.Client()

    def __call__(self, query, k: int = 5) -> list[dict]:
        import httpx

        from pixsearch_core.retrieval.client import BadSearchRequest, SearchTimeout, SearchUnavailable

        if isinstance(query, str):
            body = {"k": k, "text": query}
        else:
            buf = io.BytesIO()
            query.save(buf, format="PNG")
            body = {"k": k, "image": base64.b64encode(buf.getvalue()).decode("ascii")}
        try:
            resp = self.http.post(self.url, json=body, timeout=self.timeout)
        except httpx.TimeoutException:
            raise SearchTimeout(f"POST {self.url}: no answer within {self.timeout}s") from None
        except httpx.TransportError as e:
            raise SearchUnavailable(f"POST {self.url}: {type(e).__name__}: {e}") from None
        if resp.status_code >= 400:
            error = BadSearchRequest if resp.status_code < 500 else SearchUnavailable
            raise error(f"POST {self.url}: HTTP {resp.status_code}: {resp.text[:500]}")
        results = resp.json()
        if not isinstance(results, list):
            raise SearchUnavailable(f"POST {self.url}: expected a JSON list of results, got {type(results).__name__}")
        return results

    def close(self) -> None:
        self.http.close()


class CragMMSearcher:
    def __init__(
        self,
        pipeline: Callable[..., list[dict]],
        web: bool = True,
        crop: RegionCrop | None = None,
        index_version: str = "cragmm",
    ):
        self.pipeline, self.web, self.crop = pipeline, web, crop or RegionCrop()
        self.index_version = index_version

    @classmethod
    def from_package(
        cls,
        image_model_name: str = DEFAULT_IMAGE_MODEL,
        image_hf_dataset_id: str = DEFAULT_IMAGE_INDEX,
        text_model_name: str | None = None,
        web_hf_dataset_id: str | None = None,
        **kw,
    ):
        """Build the official pipeline (downloads CLIP/BGE and the chromadb indices: needs network)."""
        try:
            from cragmm_search.search import UnifiedSearchPipeline
        except ImportError as e:
            raise ImportError("the CRAG-MM search API needs `pip install cragmm-search-pipeline==0.5.1`") from e
        pipe = UnifiedSearchPipeline(
            image_model_name=image_model_name,
            image_hf_dataset_id=image_hf_dataset_id,
            text_model_name=text_model_name,
            web_hf_dataset_id=web_hf_dataset_id,
        )
        version = f"cragmm:{image_hf_dataset_id}|{web_hf_dataset_id}"
        return cls(pipe, web=web_hf_dataset_id is not None, index_version=version, **kw)

    def _one(self, query: Query, k: int) -> list[Evidence]:
        from PIL import Image

        if isinstance(query, TextQuery):
            if not self.web:
                raise ValueError(
                    "text queries need the CRAG-MM web index (web_hf_dataset_id); this searcher has "
                    "only the image index"
                )
            return [web_result_to_evidence(r) for r in self.pipeline(query.text, k=k)]
        if isinstance(query, (ImageQuery, RegionQuery)):
            image = query.image
            if isinstance(query, RegionQuery):
                image = self.crop.apply(image, query.mask)
            if not hasattr(image, "convert"):
                image = Image.fromarray(np.asarray(image, dtype=np.uint8))
            return [image_result_to_evidence(r) for r in self.pipeline(image, k=k)]
        raise TypeError(f"CragMMSearcher handles TextQuery, ImageQuery and RegionQuery, got {type(query).__name__}")

    def search_many(self, queries: list[Query], k: int = 5) -> list[list[Evidence]]:
        return [self._one(q, k)[:k] for q in queries]

    def search(self, query: Query, k: int = 5) -> list[Evidence]:
        return self._one(query, k)[:k]
