"""Published index versions: list them, publish one, prune old ones (README, "Building indices").

    versions = list_versions(store, "s3://b/indices/wiki")   # oldest first, each with its manifest's created_at
    deleted = prune_versions(store, "s3://b/indices/wiki", keep=3)

Only directories holding a manifest.json count as versions (a build in progress has none and is left alone);
the live version (CURRENT) is never deleted, whatever `keep` says.
"""

from __future__ import annotations

import json
import logging
import shutil

from indexing.manifest import publish, read_current, read_manifest, verify_manifest
from pixsearch_core.storage import ObjectStore, is_s3, join, local_path

log = logging.getLogger(__name__)


def list_versions(store: ObjectStore, index_uri: str) -> list[dict]:
    """Every published-or-publishable version under an index: [{version, uri, created_at}], oldest first."""
    index_uri = index_uri.rstrip("/")
    out = []
    for uri in store.list(index_uri):
        rel = uri[len(index_uri) + 1 :]
        parts = rel.split("/")
        if len(parts) == 2 and parts[1] == "manifest.json":
            meta = json.loads(store.get_bytes(uri))
            out.append(
                {"version": parts[0], "uri": join(index_uri, parts[0]), "created_at": meta.get("created_at", "")}
            )
    return sorted(out, key=lambda v: (v["created_at"], v["version"]))


def publish_version(store: ObjectStore, index_uri: str, version: str) -> str:
    """Verify `version` against its manifest, then flip CURRENT to it; returns the version URI."""
    known = [v["version"] for v in list_versions(store, index_uri)]
    if version not in known:
        raise ValueError(f"version {version!r} has no manifest under {index_uri}; published versions: {known}")
    root = join(index_uri, version)
    n = verify_manifest(store, root, read_manifest(store, root))
    publish(store, index_uri, version)
    log.info("verified %d objects and published %s", n, root)
    return root


def _delete_version(store: ObjectStore, uri: str) -> None:
    if is_s3(uri):
        store.delete_prefix(uri)
    else:
        shutil.rmtree(local_path(uri), ignore_errors=False)


def prune_versions(store: ObjectStore, index_uri: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` versions (by manifest created_at), never CURRENT; returns the deleted."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1 (got {keep})")
    live = read_current(store, index_uri)
    versions = list_versions(store, index_uri)
    doomed = [v for v in versions[:-keep] if v["version"] != live]
    for v in doomed:
        # the manifest goes first, so a half-deleted version no longer counts as one
        store.delete(join(v["uri"], "manifest.json"))
        _delete_version(store, v["uri"])
        log.info("pruned %s", v["uri"])
    return [v["version"] for v in doomed]
