"""Index manifests and the CURRENT pointer (the layout: README, "Building indices").

    <root>/indices/<name>/<version>/manifest.json   written last, after every shard is verified
    <root>/indices/<name>/CURRENT                   the live version's name; flipped after the manifest

Object paths inside a manifest are relative to its version directory (so a copied index stays valid); every
object carries its sha256 and size. A reader trusts only the manifest, never a directory listing.
"""

from __future__ import annotations

import hashlib
import json
import logging

from pixsearch_core.storage import STALE_AFTER_S, ObjectStore, join

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class VerifyError(RuntimeError):
    """An object is missing or its checksum does not match the manifest."""


def index_root(output: str, name: str) -> str:
    return join(output, "indices", name)


def version_root(output: str, name: str, version: str) -> str:
    return join(index_root(output, name), version)


def object_entry(path: str, sha256: str, size: int) -> dict:
    return {"uri": path, "sha256": sha256, "size": int(size)}


def sha256_of(store: ObjectStore, uri: str) -> str:
    return hashlib.sha256(store.get_bytes(uri)).hexdigest()


def verify_object(store: ObjectStore, root: str, entry: dict) -> None:
    """Raise VerifyError unless `root/entry.uri` exists with the recorded sha256."""
    uri = join(root, entry["uri"])
    try:
        got = sha256_of(store, uri)
    except FileNotFoundError:
        raise VerifyError(f"{uri}: missing") from None
    if got != entry["sha256"]:
        raise VerifyError(f"{uri}: sha256 {got} != manifest {entry['sha256']}")


def manifest_objects(manifest: dict) -> list[dict]:
    """Every object entry a manifest names (shards' index, embeddings and document store; rejects)."""
    out = []
    for index in manifest["indices"].values():
        for shard in index["shards"]:
            out += [shard["faiss"], shard["embeddings"], shard["docstore"]]
    if manifest["rejects"].get("file"):
        out.append(manifest["rejects"]["file"])
    return out


def verify_manifest(store: ObjectStore, version_uri: str, manifest: dict | None = None) -> int:
    """Check every object of a published version by checksum; returns how many were checked."""
    manifest = manifest or read_manifest(store, version_uri)
    entries = manifest_objects(manifest)
    for entry in entries:
        verify_object(store, version_uri, entry)
    return len(entries)


def write_manifest(store: ObjectStore, version_uri: str, manifest: dict) -> str:
    manifest = {"schema_version": SCHEMA_VERSION, **manifest}
    return store.put_bytes(join(version_uri, "manifest.json"), json.dumps(manifest, indent=2, sort_keys=True).encode())


def read_manifest(store: ObjectStore, version_uri: str) -> dict:
    data = json.loads(store.get_bytes(join(version_uri, "manifest.json")))
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{version_uri}: manifest schema_version {data.get('schema_version')!r}; this code reads {SCHEMA_VERSION}"
        )
    return data


def read_current(store: ObjectStore, index_uri: str) -> str | None:
    uri = join(index_uri, "CURRENT")
    return store.get_bytes(uri).decode().strip() if store.exists(uri) else None


def publish(store: ObjectStore, index_uri: str, version: str) -> None:
    """Flip CURRENT to `version` (an atomic single-object write)."""
    store.put_bytes(join(index_uri, "CURRENT"), (version + "\n").encode())
    log.info("published %s/CURRENT -> %s", index_uri, version)


def clean_interrupted(store: ObjectStore, index_uri: str, older_than_s: float = STALE_AFTER_S) -> dict[str, int]:
    """Remove what killed writes left under an index (a `.tmp-*` file of a manifest / CURRENT / shard write
    killed before its rename; an S3 multipart upload never completed), older than `older_than_s` so that a
    concurrent writer's is left alone. Run at the start of every build; a failure to clean is a warning."""
    counts = store.clean_incomplete(index_uri, older_than_s, best_effort=True)
    if any(counts.values()):
        log.warning("%s: removed what interrupted writes left: %s", index_uri, counts)
    return counts


def resolve(store: ObjectStore, uri: str) -> str:
    """An index URI (`.../indices/<name>`, follows CURRENT), a version directory or a manifest.json -> version URI."""
    uri = uri.rstrip("/")
    if uri.endswith("manifest.json"):
        return uri.rpartition("/")[0]
    if store.exists(join(uri, "manifest.json")):
        return uri
    current = read_current(store, uri)
    if current is None:
        raise FileNotFoundError(f"{uri} is neither a published version (no manifest.json) nor an index (no CURRENT)")
    return join(uri, current)


def describe(manifest: dict) -> str:
    """A human-readable summary: counts, rejects, per index its encoder, factory and shards, build speed."""
    c = manifest["corpus"]["counts"]
    lines = [
        f"index {manifest['name']} version {manifest['version']} (created {manifest['created_at']})",
        f"corpus: {c['documents']} documents, {c['passages']} passages, {c['images']} images "
        f"from {c['inputs']} input records",
        f"rejects: {manifest['rejects']['total']} ({manifest['rejects']['share']:.2%}) "
        f"{manifest['rejects']['by_reason']}",
    ]
    for kind, idx in manifest["indices"].items():
        enc = idx["encoder"]
        lines.append(
            f"{kind} index: {idx['count']} vectors, factory {idx['factory']!r}, metric {idx['metric']}, "
            f"nprobe {idx['nprobe']}, {idx['bytes_per_vector']} bytes/vector; "
            f"encoder {enc['kind']} {enc['model']} dim {enc['dim']}"
        )
        if idx.get("embeddings") or idx.get("quantizer"):
            emb, q = idx.get("embeddings", {}), idx.get("quantizer", {})
            drift = f", drift {q['drift']:+.1%} (tolerance {q['tolerance']:.0%})" if "drift" in q else ""
            lines.append(
                f"  embeddings: {emb.get('embedded')} embedded, {emb.get('reused')} reused; "
                f"quantizer: {q.get('quantizer')}{drift}"
            )
        for s in idx["shards"]:
            lines.append(
                f"  {s['name']}: {s['count']} vectors, ids [{s['id_start']}, {s['id_end']}), "
                f"{s['faiss']['size']} bytes, sha256 {s['faiss']['sha256'][:12]}"
            )
    stats = manifest["stats"]
    engine = stats.get("engine", stats.get("runner"))  # `runner` in manifests written before `engine`
    lines.append(
        f"build: {stats['total_seconds']}s ({engine}); documents/s {stats['documents_per_s']}, "
        f"passages/s {stats['passages_per_s']}, images/s {stats['images_per_s']}; per task-second: "
        f"passages {stats.get('passages_per_task_s')}, images {stats.get('images_per_task_s')}"
    )
    code = manifest.get("code")
    if code:
        state = {True: " (uncommitted changes)", False: "", None: ""}[code.get("dirty")]
        lines.append(f"code: pixsearch {code['package']}, commit {code.get('commit') or 'unknown'}{state}")
    return "\n".join(lines)
