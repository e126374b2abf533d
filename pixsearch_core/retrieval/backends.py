"""One way to choose a retrieval backend: a `RetrieverConfig` and the factory `make_retriever(cfg, store)`.

    make_retriever(RetrieverConfig(kind="index", uri="s3://b/indices/wiki"), store)      # ShardedSearcher
    make_retriever(RetrieverConfig(kind="http", uri="http://127.0.0.1:8080"), store)     # `pixsearch search serve`
    make_retriever(RetrieverConfig(kind="cragmm", cragmm={"url": "http://gpu:8090/search"}), store)  # CRAG-MM API
    make_retriever(RetrieverConfig(kind="replay", uri="out/replay",
                                   backend={"kind": "index", "uri": "out/indices/demo"}), store)      # recorded answers
    make_retriever(RetrieverConfig(kind="none"), store)                                   # every search finds nothing

Each kind's builder is registered under the registry's `retriever` kind (pixsearch_core/registry.py), so an unknown
kind is refused with the known ones and a "did you mean". `eval run`, `search serve/query`, the demo and the DAG
helpers all build their searcher here; `crop` (a `RegionCrop`) says how region queries are cropped by the backends
that crop (index, cragmm; the HTTP service crops with its own settings). `k` is the number of passages per search.
`--index URI|none` on the command line is a shorthand (`shorthand()`): `none`, an `http(s)://` URL, or an index URI.
Remote kinds (http, cragmm) get a deadline (`timeout` seconds) and `retries` (pixsearch_core/retrieval/client.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Literal

from pydantic import Field, model_validator

from pixsearch_core.config import Config
from pixsearch_core.registry import get, register
from pixsearch_core.retrieval.cragmm import DEFAULT_IMAGE_INDEX, DEFAULT_IMAGE_MODEL
from pixsearch_core.retrieval.crop import RegionCrop
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)

KINDS = ("index", "http", "cragmm", "replay", "none")
_URL = ("http://", "https://")


class CragMMSettings(Config):
    """The CRAG-MM search API (pixsearch_core/retrieval/cragmm.py): over HTTP (`url`) or the in-process package."""

    url: str | None = Field(
        None,
        description="a CRAG-MM search API over HTTP (wire format: retrieval/cragmm.py); "
        "null = run the cragmm-search-pipeline package in this process",
    )
    image_model: str = DEFAULT_IMAGE_MODEL
    image_index: str = DEFAULT_IMAGE_INDEX
    text_model: str | None = Field(None, description="package only: the web index's text encoder")
    web_index: str | None = Field(None, description="package only: the web index (text queries need it)")


class RetrieverConfig(Config):
    """Which backend answers `search(query, k)`, and how (the `retriever:` section of eval configs)."""

    kind: Literal[KINDS] | None = Field(  # type: ignore[valid-type]  (the names of KINDS)
        None, description="null = not chosen here (eval run: --index URI|none or --retriever KIND)"
    )
    uri: str | None = Field(None, description="index: the index URI; http: the service URL; replay: the cache root")
    k: int = Field(3, ge=1, le=1000, description="evidence passages per search")
    timeout: float = Field(30.0, gt=0, description="http, cragmm: seconds per call before it is retried")
    retries: int = Field(2, ge=0, description="http, cragmm: further attempts after a timeout or a 5xx")
    cache_dir: str = Field("~/.cache/pixsearch", description="index: local copies of the shards")
    crop: RegionCrop = Field(default_factory=RegionCrop, description="how region queries are cropped")
    cragmm: CragMMSettings = Field(default_factory=CragMMSettings)
    backend: RetrieverConfig | None = Field(None, description="replay: the retriever that answers cache misses")

    @model_validator(mode="after")
    def _fits_kind(self) -> RetrieverConfig:
        problems = _problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _problems(cfg: RetrieverConfig) -> list[str]:
    kind, out = cfg.kind, []
    if kind in ("index", "http", "replay") and not cfg.uri:
        out.append(f"retriever kind {kind!r} needs uri ({RetrieverConfig.model_fields['uri'].description})")
    if kind in ("cragmm", "none") and cfg.uri:
        where = "retriever.cragmm.url" if kind == "cragmm" else "nothing"
        out.append(f"retriever kind {kind!r} takes no uri (got {cfg.uri!r}); it reads {where}")
    if kind == "http" and cfg.uri and not cfg.uri.startswith(_URL):
        out.append(f"retriever kind 'http' needs an http:// or https:// uri, got {cfg.uri!r}")
    if kind == "http" and cfg.crop != RegionCrop():
        out.append(
            "retriever kind 'http': the service crops region queries with its own settings; start it with "
            f"`pixsearch search serve {_region_flags(cfg.crop)}` and reset retriever.crop here "
            f"({_crop_resets(cfg.crop)})"
        )
    if kind == "replay" and cfg.crop != RegionCrop():
        out.append("retriever kind 'replay': the backend crops; set retriever.backend.crop, not retriever.crop")
    if kind == "replay" and (cfg.backend is None or cfg.backend.kind in (None, "replay")):
        out.append("retriever kind 'replay' needs backend.kind (index, http, cragmm or none) for cache misses")
    return out


def _changed(crop: RegionCrop) -> dict[str, Any]:
    return {k: v for k, v in crop.model_dump().items() if v != RegionCrop.model_fields[k].default}


def _region_flags(crop: RegionCrop) -> str:
    """The `search serve --region-*` flags that give a service this crop."""
    text = {k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for k, v in _changed(crop).items()}
    return " ".join(f"--region-{k} {v}" for k, v in text.items())


def _crop_resets(crop: RegionCrop) -> str:
    """The overrides that put this crop back to the defaults."""
    return " ".join(f"retriever.crop.{k}={json.dumps(RegionCrop.model_fields[k].default)}" for k in _changed(crop))


def shorthand(text: str) -> dict[str, Any]:
    """The retriever fields of `--index TEXT`: `none` (or empty), an http(s):// service URL, or an index URI."""
    if text in ("", "none"):
        return {"kind": "none"}
    return {"kind": "http" if text.startswith(_URL) else "index", "uri": text}


def make_retriever(cfg: RetrieverConfig, store: ObjectStore | None = None):
    """The `Searcher` (search / search_many / index_version) that `cfg` describes."""
    if cfg.kind is None:
        raise ValueError(
            f"no retriever chosen; set retriever.kind (one of {', '.join(KINDS)}) or pass "
            "--index URI|none / --retriever KIND"
        )
    return get("retriever", cfg.kind)(cfg, store or ObjectStore())


def retriever_version(cfg: RetrieverConfig, store: ObjectStore) -> str:
    """What a run records as its index version, without building the backend: an index's live version
    (`<uri>/CURRENT`, else a hash of its manifest), `none`, or the kind and address of a remote backend."""
    if cfg.kind == "index":
        if store.exists(join(cfg.uri, "CURRENT")):
            return store.get_bytes(join(cfg.uri, "CURRENT")).decode().strip()
        manifest = join(cfg.uri, "manifest.json")
        if store.exists(manifest):
            return "manifest-" + hashlib.sha256(store.get_bytes(manifest)).hexdigest()[:12]
        return cfg.uri
    if cfg.kind == "cragmm":
        return f"cragmm:{cfg.cragmm.url or cfg.cragmm.image_index + '|' + str(cfg.cragmm.web_index)}"
    if cfg.kind == "replay":
        return f"replay:{retriever_version(cfg.backend, store)}"
    return cfg.uri if cfg.kind == "http" else str(cfg.kind)


class NullSearcher:
    """No retrieval (`--index none`): every search returns nothing. For no-search runs."""

    index_version = "none"

    def search(self, query, k: int = 5):
        return []

    def search_many(self, queries, k: int = 5):
        return [[] for _ in queries]


# ---------------------------------------------------------------- builders (registry kind "retriever")
@register("retriever", "index")
def _index(cfg: RetrieverConfig, store: ObjectStore):
    from indexing.searcher import ShardedSearcher

    return ShardedSearcher(cfg.uri, storage=store.config, cache_dir=cfg.cache_dir, crop=cfg.crop)


@register("retriever", "http")
def _http(cfg: RetrieverConfig, store: ObjectStore):
    from pixsearch_core.retrieval.client import SearchClient

    return SearchClient.connect(cfg.uri, timeout=cfg.timeout, retries=cfg.retries)


@register("retriever", "cragmm")
def _cragmm(cfg: RetrieverConfig, store: ObjectStore):
    from pixsearch_core.retrieval.client import SearchClient
    from pixsearch_core.retrieval.cragmm import CragMMHTTPPipeline, CragMMSearcher

    c = cfg.cragmm
    if c.url:
        searcher = CragMMSearcher(
            CragMMHTTPPipeline(c.url, cfg.timeout), web=True, crop=cfg.crop, index_version=retriever_version(cfg, store)
        )
    else:
        searcher = CragMMSearcher.from_package(c.image_model, c.image_index, c.text_model, c.web_index, crop=cfg.crop)
    return SearchClient.connect(searcher, timeout=cfg.timeout, retries=cfg.retries)


@register("retriever", "replay")
def _replay(cfg: RetrieverConfig, store: ObjectStore):
    from pixsearch_core.retrieval.replay import ReplaySearcher

    backend = make_retriever(cfg.backend, store)
    version = str(backend.index_version)
    if cfg.backend.kind in ("index", "cragmm"):  # the crop decides what a region query finds: part of the key
        version += f"|crop-{cfg.backend.crop.config_hash()[:8]}"
    return ReplaySearcher(backend, cfg.uri, storage=store.config, index_version=version)


@register("retriever", "none")
def _none(cfg: RetrieverConfig, store: ObjectStore):
    return NullSearcher()
