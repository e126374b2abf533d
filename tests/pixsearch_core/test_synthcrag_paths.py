"""Same seed, same results, any path: a SynthCRAG world written at two paths is the same tree byte for byte, every
reader resolves its root-relative references to the world it reads, and what is built from the two worlds (training
shards, a tiny index) is identical too."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pixsearch_core.storage import ObjectStore
from pixsearch_core.synthcrag import WorldConfig, generate_world
from pixsearch_core.synthcrag.write import write_synthcrag

TINY = WorldConfig(seed=5, n_entities=8, n_makers=2, n_places=2)


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    a = tmp_path_factory.mktemp("first") / "world"
    b = tmp_path_factory.mktemp("second") / "deeper" / "other-name"
    for out in (a, b):
        write_synthcrag(generate_world(TINY), str(out), scenes_per_entity=2, questions_per_scene=2)
    return a, b


def test_world_trees_are_byte_identical(worlds):
    a, b = worlds
    ta, tb = _tree(a), _tree(b)
    assert ta == tb and len(ta) > 20
    for name in ("corpus/docs.jsonl", "stage1/train.jsonl", "stage2/train.jsonl", "benchmark/test.jsonl"):
        text = (a / name).read_text()
        assert str(a) not in text and '"/' not in text, f"{name} names an absolute path"


def test_index_reader_resolves_images_in_each_world(worlds):
    from indexing.readers import read_jsonl

    store = ObjectStore()
    for root in worlds:
        docs = [d for d in read_jsonl(str(root / "corpus" / "docs.jsonl"), store) if d["image"]]
        assert docs
        for d in docs:
            assert d["image"] == str(root / "corpus" / "images" / f"{d['id']}.png") and Path(d["image"]).is_file()


def test_training_readers_resolve_images_and_masks_in_each_world(worlds):
    from pixsearch_core.training.readers import Rejected, read_source

    store = ObjectStore()
    samples = {}
    for root in worlds:
        for reader, path in (("refer_jsonl", "stage1/train.jsonl"), ("trajectories", "stage2/train.jsonl")):
            got = list(read_source(reader, store, str(root / path)))
            assert got and not [r for r in got if isinstance(r, Rejected)], [r for r in got if isinstance(r, Rejected)]
            samples.setdefault(reader, []).append(got)
    a, b = samples["refer_jsonl"]
    assert [(s.id, s.image, s.masks.tobytes()) for s in a] == [(s.id, s.image, s.masks.tobytes()) for s in b]
    scene = (worlds[0] / "scenes" / "train" / f"{a[0].id.removeprefix('refer-')}.png").read_bytes()
    assert a[0].image == scene
    a, b = samples["trajectories"]
    assert [(s.id, s.image, s.conversation) for s in a] == [(s.id, s.image, s.conversation) for s in b]


def test_training_shards_are_identical(worlds, tmp_path):
    from pixsearch_core.training.readers import read_source
    from pixsearch_core.training.shards import pack_shards

    store = ObjectStore()
    shas = []
    for i, root in enumerate(worlds):
        m = pack_shards(
            read_source("trajectories", store, str(root / "stage2" / "train.jsonl")),
            str(tmp_path / f"shards{i}"),
            store,
            per_shard=16,
        )
        shas.append([s["sha256"] for s in m["shards"]])
    assert shas[0] == shas[1] and len(shas[0]) > 1


def test_benchmark_reader_resolves_against_the_world_root(worlds):
    from pixsearch_core import registry

    bench = registry.get("benchmark", "synthcrag")()
    for root in worlds:
        for source in (str(root), str(root / "benchmark" / "test.jsonl")):  # the world or its file
            examples = list(bench.load(source))
            assert examples
            for ex in examples:
                assert ex.image.startswith(str(root) + "/scenes/test/") and Path(ex.image).is_file()
                assert ex.mask.startswith(str(root) + "/masks/test/") and Path(ex.mask).is_file()


def test_references_outside_a_world_resolve_against_their_file(tmp_path):
    """Record files of other origins keep the generic rule (relative to the file's own directory)."""
    from pixsearch_core.synthcrag.paths import reference_base, world_root

    store = ObjectStore()
    (tmp_path / "corpus").mkdir()
    f = tmp_path / "corpus" / "docs.jsonl"
    f.write_text("")
    assert world_root(store, str(f)) is None and reference_base(store, str(f)) == str(tmp_path / "corpus")
    (tmp_path / "world.json").write_text("{}")
    assert reference_base(store, str(f)) == str(tmp_path)
    assert reference_base(store, "docs.jsonl") == "."


def test_tiny_indices_from_both_worlds_are_identical(worlds, tmp_path):
    """The index built from each world (sequential runner, the embedded encoders): same shard checksums and the
    same content digest as the demo records it."""
    from indexing.build import build_index
    from indexing.config import IndexBuildConfig
    from pipelines.demo.pipeline import index_digest
    from pixsearch_core.config import validate_config

    manifests = []
    for i, root in enumerate(worlds):
        cfg = validate_config(
            IndexBuildConfig,
            {
                "name": "synthcrag",
                "output": str(tmp_path / f"store{i}"),
                "runner": "sequential",
                "cache_dir": str(tmp_path / "cache"),
                "sources": [{"kind": "jsonl", "path": str(root / "corpus" / "docs.jsonl")}],
                "shards": {"passages_per_shard": 8, "images_per_shard": 4},
            },
        )
        manifests.append(build_index(cfg)["manifest"])
    a, b = manifests
    assert a["corpus"]["counts"]["images"] == TINY.n_entities and a["rejects"]["total"] == 0

    def shards(m):
        return [
            (k, s["name"], s["faiss"]["sha256"], s["embeddings"]["sha256"], s["docstore"]["sha256"])
            for k, idx in sorted(m["indices"].items())
            for s in idx["shards"]
        ]

    assert shards(a) == shards(b) and len(shards(a)) >= 3
    assert index_digest(a) == index_digest(b)
