"""Samples packed into webdataset tar shards in the object store, with a manifest, and read back for streaming.

    manifest = pack_shards(read_source("ade20k", store, path), "s3://b/shards/ade20k", store, per_shard=1000)
    ds = ShardedDataset.open("s3://b/shards/ade20k", store)     # len(ds), ds.shard_sizes, ds.shard(i)

Layout under the prefix: `shard-000000.tar` ..., `quarantine.jsonl` (rejected records with reasons) and
`manifest.json` (written LAST: shard URIs, sample counts, sha256; readers trust only it). A shard is read whole
(one GET) and decoded lazily; the last shard read is kept. Every sample is checked before it is packed
(`sample.check`: the image decodes, contents are strings, masks fit the image); a bad one is quarantined with its
reason, so a resumed run never replays a sample that crashes the collator.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from pixsearch_core.prompts.sample import Sample, check, decode, encode
from pixsearch_core.storage import ObjectStore, join
from pixsearch_core.training.readers import Rejected

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def pack_shards(
    items: Iterable[Sample | Rejected],
    prefix: str,
    store: ObjectStore | None = None,
    per_shard: int = 1000,
    name: str = "",
) -> dict:
    """Write samples as shards under `prefix`; returns the manifest."""
    import webdataset as wds

    store = store or ObjectStore()
    shards, rejected, buf = [], [], []

    def flush(tmp: Path) -> None:
        path = tmp / f"shard-{len(shards):06d}.tar"
        with wds.TarWriter(str(path), mtime=0) as w:  # no clock in the bytes: same samples, same shard
            for s in buf:
                w.write(encode(s))
        uri = join(prefix, path.name)
        shards.append({"uri": uri, "count": len(buf), "sha256": store.put_file(uri, path)})
        path.unlink()
        buf.clear()

    with tempfile.TemporaryDirectory() as tmp:
        for item in tqdm(items, desc=f"packing {name or prefix}", unit="sample"):
            if isinstance(item, Sample) and (reason := check(item)):
                item = Rejected(item.id, reason)
            if isinstance(item, Rejected):
                rejected.append({"id": item.id, "reason": item.reason})
                continue
            buf.append(item)
            if len(buf) == per_shard:
                flush(Path(tmp))
        if buf:
            flush(Path(tmp))
    if rejected:
        store.put_bytes(join(prefix, "quarantine.jsonl"), "".join(json.dumps(r) + "\n" for r in rejected).encode())
        log.warning(
            "%s: %d records quarantined (%s), e.g. %s",
            name or prefix,
            len(rejected),
            join(prefix, "quarantine.jsonl"),
            rejected[0],
        )
    if not shards:
        raise ValueError(f"{name or prefix}: no usable samples ({len(rejected)} rejected)")
    manifest = {"name": name, "shards": shards, "samples": sum(s["count"] for s in shards), "rejected": len(rejected)}
    store.put_bytes(join(prefix, MANIFEST), json.dumps(manifest, indent=2).encode())
    log.info("packed %d samples of %s into %d shards under %s", manifest["samples"], name, len(shards), prefix)
    return manifest


def read_tar(data: bytes) -> list[dict[str, bytes]]:
    """A webdataset tar -> its records ({"__key__", ext: bytes}) in file order."""
    records: dict[str, dict[str, bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, _, ext = member.name.partition(".")
            records.setdefault(key, {"__key__": key})[ext] = tar.extractfile(member).read()
    return list(records.values())


class ShardedDataset:
    """Random access by (shard, index) over a packed source; `shard(i)` loads one shard (cached)."""

    def __init__(self, manifest: dict, store: ObjectStore):
        self.manifest, self.store = manifest, store
        self.shard_sizes = [s["count"] for s in manifest["shards"]]
        self._cached: tuple[int, list] | None = None

    @classmethod
    def open(cls, prefix: str, store: ObjectStore | None = None) -> ShardedDataset:
        store = store or ObjectStore()
        uri = join(prefix, MANIFEST)
        if not store.exists(uri):
            raise FileNotFoundError(f"no shard manifest at {uri}; pack the source first")
        return cls(json.loads(store.get_bytes(uri)), store)

    def __len__(self) -> int:
        return sum(self.shard_sizes)

    def shard(self, i: int) -> list[dict[str, bytes]]:
        if self._cached is None or self._cached[0] != i:
            self._cached = (i, read_tar(self.store.get_bytes(self.manifest["shards"][i]["uri"])))
        return self._cached[1]

    def get(self, shard: int, index: int) -> Sample:
        return decode(self.shard(shard)[index])
