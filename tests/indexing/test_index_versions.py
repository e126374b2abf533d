"""Index versions: list, publish (verifies first), prune (keeps the newest N and never the live one); the CLI
actions `pixsearch index publish|prune` and `build --result`. Hand-made manifests keep these fast."""

from __future__ import annotations

import hashlib
import json

import pytest

from indexing.manifest import read_current
from indexing.versions import list_versions, prune_versions, publish_version
from jobs.cli import main
from pixsearch_core.storage import ObjectStore


def _version(index, name: str, created: str, blob: bytes = b"vectors") -> None:
    """A version directory with one shard object (faiss) and a manifest naming it with its sha256."""
    root = index / name
    (root / "shards").mkdir(parents=True)
    (root / "shards" / "a.faiss").write_bytes(blob)
    entry = {"uri": "shards/a.faiss", "sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
    manifest = {
        "schema_version": 1,
        "name": "t",
        "version": name,
        "created_at": created,
        "indices": {"text": {"shards": [{"faiss": entry, "embeddings": entry, "docstore": entry}]}},
        "rejects": {"file": None},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def index(tmp_path):
    idx = tmp_path / "indices" / "t"
    for i, name in enumerate(["v-c", "v-a", "v-d", "v-b"]):  # names not in time order on purpose
        _version(idx, name, f"2026-01-0{i + 1}T00:00:00Z")
    (idx / "v-building" / "staging").mkdir(parents=True)  # a build in progress: no manifest
    return idx


def test_list_orders_by_created_at_and_skips_unfinished(index):
    assert [v["version"] for v in list_versions(ObjectStore(), str(index))] == ["v-c", "v-a", "v-d", "v-b"]


def test_prune_keeps_newest_and_the_live_version(index):
    store = ObjectStore()
    (index / "CURRENT").write_text("v-c\n")  # the oldest is live (e.g. a rollback)
    assert prune_versions(store, str(index), keep=2) == ["v-a"]
    assert sorted(p.name for p in index.iterdir()) == ["CURRENT", "v-b", "v-building", "v-c", "v-d"]
    assert read_current(store, str(index)) == "v-c"
    with pytest.raises(ValueError, match="keep must be >= 1"):
        prune_versions(store, str(index), keep=0)


def test_publish_verifies_before_flipping(index):
    store = ObjectStore()
    (index / "CURRENT").write_text("v-c\n")
    (index / "v-b" / "shards" / "a.faiss").write_bytes(b"corrupted")
    with pytest.raises(Exception, match="sha256"):
        publish_version(store, str(index), "v-b")
    assert read_current(store, str(index)) == "v-c"
    with pytest.raises(ValueError, match="v-nope.*published versions"):
        publish_version(store, str(index), "v-nope")
    publish_version(store, str(index), "v-d")
    assert read_current(store, str(index)) == "v-d"


def test_cli_publish_and_prune(index, capsys):
    assert main(["index", "publish", str(index), "v-a"]) == 0
    assert (index / "CURRENT").read_text().strip() == "v-a"
    capsys.readouterr()
    assert main(["index", "prune", str(index), "--keep", "1"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"pruned": ["v-c", "v-d"]}
    assert sorted(p.name for p in index.iterdir()) == ["CURRENT", "v-a", "v-b", "v-building"]
