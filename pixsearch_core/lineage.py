"""Lineage: what produced an artifact, recorded next to it, and the chain from a report down to the corpus.

Every artifact writes a `lineage.json` (an index version keeps it inside its manifest under "lineage"):

    eval run      <run>/lineage.json           code, model + checkpoint digest, index + pinned version, benchmark
                                               data digest, decode options, judge; resumes append to `resumed`
    training      <stage>/final/lineage.json   code, config, data digests per source, base weights, init
                                               checkpoint (+ its digest), step
    index         manifest.json "code" and "lineage"   code, config hash, corpus fingerprint, encoders
    report        <report>/lineage.json        the runs it tabulates

`chain(store, uri)` follows the links (report -> runs -> checkpoint -> training data / init checkpoint; run ->
index -> corpus) and `pixsearch lineage URI` prints it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from importlib import metadata
from typing import Any

from pixsearch_core.storage import ObjectStore, is_s3, join, local_path

log = logging.getLogger(__name__)

LINEAGE_FILE = "lineage.json"
WEIGHTS_FILE = "trainable.safetensors"  # what modeling.weights.save_trainable writes (TRAINABLE_FILE)


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """{"package", "commit", "dirty"} of the code that is running (`engines.code.code_version`: the commit and
    dirty flag come from the checkout the code was imported from; an installed wheel has only the package)."""
    from pixsearch_core.engines.code import code_version as version

    return version()


def encoder_versions(specs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """kind -> {model, package_version}: the installed version when the encoder's model names a pip package
    (the embedded defaults ship their weights that way), else None (a path: its bytes are its version)."""
    out = {}
    for kind, spec in specs.items():
        model = str((spec or {}).get("model", ""))
        name = model.split(":", 1)[0]
        try:
            version = metadata.version(name) if name and "/" not in name else None
        except metadata.PackageNotFoundError:
            version = None
        out[kind] = {"model": model, "package_version": version}
    return out


def _file_digest(store: ObjectStore, uri: str) -> str:
    h = hashlib.sha256()
    if is_s3(uri):
        h.update(store.get_bytes(uri))
    else:
        with open(local_path(uri), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def digest(store: ObjectStore, uri: str) -> str | None:
    """sha256 of a file, or of a folder/prefix as the sorted (relative path, file sha256) list; None if absent."""
    if not uri:
        return None
    if not is_s3(uri) and local_path(uri).is_file():
        return _file_digest(store, uri)
    files = sorted(store.list(uri))
    if not files:
        if store.exists(uri):
            return _file_digest(store, uri)
        return None
    h = hashlib.sha256()
    base = uri.rstrip("/") + "/"
    for f in files:
        h.update(f"{f[len(base) :] if f.startswith(base) else f}\0{_file_digest(store, f)}\n".encode())
    return h.hexdigest()


def write(store: ObjectStore, artifact_uri: str, record: dict[str, Any]) -> str:
    uri = join(artifact_uri, LINEAGE_FILE)
    store.put_bytes(uri, json.dumps(record, indent=2, sort_keys=True, default=str).encode())
    return uri


def read(store: ObjectStore, artifact_uri: str) -> dict[str, Any] | None:
    uri = join(artifact_uri, LINEAGE_FILE)
    return json.loads(store.get_bytes(uri)) if store.exists(uri) else None


def run_lineage(
    store: ObjectStore,
    *,
    model: str,
    index: str,
    index_version: str,
    data: str,
    decode: dict[str, Any],
    judge: dict[str, Any],
) -> dict[str, Any]:
    """What an eval run records: code, model (+ the checkpoint's digest and lineage link), index, data, judge."""
    return {
        "kind": "eval_run",
        "code": code_version(),
        "model": model,
        "checkpoint_digest": digest(store, join(model, WEIGHTS_FILE)),  # None for a builder name (tiny, 13b, ...)
        "index": index,
        "index_version": index_version,
        "data": data,
        "data_digest": digest(store, data),
        "decode": decode,
        "judge": judge,
    }


def training_lineage(
    store: ObjectStore,
    *,
    stage: int,
    step: int,
    config: dict[str, Any],
    data: list[tuple[str, str]],
    base_weights: dict[str, str],
    init_checkpoint: str | None,
) -> dict[str, Any]:
    """What a training export records. `data`: (name, shard prefix) per dataset, digested by its shard manifest
    (which holds every shard's sha256); `base_weights`: name -> URI of pretrained weights the builder loaded."""
    return {
        "kind": "training",
        "code": code_version(),
        "stage": stage,
        "step": step,
        "config": config,
        "data": [{"name": n, "uri": u, "digest": digest(store, join(u, "manifest.json"))} for n, u in data],
        "base_weights": {k: digest(store, u) for k, u in base_weights.items()},
        "init_checkpoint": init_checkpoint,
        "init_digest": digest(store, join(init_checkpoint, WEIGHTS_FILE)) if init_checkpoint else None,
    }


def record_run(store: ObjectStore, run_uri: str, record: dict[str, Any]) -> None:
    """Write a run's lineage once; a resume with other code appends {code} to `resumed` (the first stays)."""
    old = read(store, run_uri)
    if old is None:
        write(store, run_uri, record)
        return
    if old.get("data_digest") != record["data_digest"]:
        raise ValueError(
            f"run {run_uri}: the benchmark data changed since it started (digest "
            f"{old.get('data_digest')} -> {record['data_digest']}); use a new run id"
        )
    if old.get("code") != record["code"] and record["code"] not in old.get("resumed", []):
        old.setdefault("resumed", []).append(record["code"])
        write(store, run_uri, old)


def _index_node(store: ObjectStore, index: str, version: str | None) -> dict[str, Any]:
    from_manifest: dict[str, Any] = {"kind": "index", "uri": index, "version": version}
    uri = join(index, version, "manifest.json") if version else join(index, "manifest.json")
    if not index or index == "none" or not store.exists(uri):
        return {**from_manifest, "missing": uri if index and index != "none" else None}
    m = json.loads(store.get_bytes(uri))
    return {
        **from_manifest,
        "manifest": uri,
        "config_hash": m.get("config_hash"),
        "code": m.get("code"),
        "encoders": {k: v.get("encoder") for k, v in (m.get("indices") or {}).items()},
        "corpus": {"fingerprint": m["corpus"]["fingerprint"], "sources": m["corpus"]["sources"]},
    }


def chain(store: ObjectStore, uri: str, _depth: int = 0) -> dict[str, Any]:
    """The lineage tree of any artifact: a report, run, checkpoint export, index, or index version."""
    if _depth > 8:
        return {"kind": "cycle-or-too-deep", "uri": uri}
    node = read(store, uri)
    if node and node.get("kind") == "report":
        return {**node, "uri": uri, "runs": [chain(store, r, _depth + 1) for r in node["runs"]]}
    if node and node.get("kind") == "eval_run":
        model = node.get("model")
        ckpt = chain(store, model, _depth + 1) if node.get("checkpoint_digest") else {"kind": "builder", "name": model}
        return {
            **node,
            "uri": uri,
            "checkpoint": ckpt,
            "index_node": _index_node(store, node.get("index"), node.get("index_version")),
        }
    if node and node.get("kind") == "training":
        init = node.get("init_checkpoint")
        return {**node, "uri": uri, "init": chain(store, init, _depth + 1) if init else None}
    if store.exists(join(uri, "manifest.json")):
        return _index_node(store, uri, None)
    if store.exists(join(uri, "CURRENT")):
        return _index_node(store, uri, store.get_bytes(join(uri, "CURRENT")).decode().strip())
    raise ValueError(f"{uri}: no lineage found (expected {LINEAGE_FILE}, an index manifest.json or CURRENT)")


def render(node: dict[str, Any], indent: int = 0) -> list[str]:
    """The chain as indented text lines, one artifact a line plus its key facts."""
    pad = "  " * indent
    kind = node.get("kind")
    if kind == "report":
        lines = [f"{pad}report {node['uri']} ({len(node['runs'])} runs)"]
        for r in node["runs"]:
            lines += render(r, indent + 1)
        return lines
    if kind == "eval_run":
        code = node.get("code") or {}
        lines = [
            f"{pad}eval run {node['uri']}: code {code.get('commit') or code.get('package')}"
            f"{' (dirty)' if code.get('dirty') else ''}; data {node.get('data')} sha256 "
            f"{(node.get('data_digest') or '?')[:12]}; judge {(node.get('judge') or {}).get('kind')}"
        ]
        lines += render(node["checkpoint"], indent + 1) + render(node["index_node"], indent + 1)
        return lines
    if kind == "training":
        code = node.get("code") or {}
        lines = [
            f"{pad}checkpoint {node['uri']}: stage {node.get('stage')} step {node.get('step')}, code "
            f"{code.get('commit') or code.get('package')}; data "
            + ", ".join(
                f"{d['uri']} " + (f"sha256 {d['digest'][:12]}" if d.get("digest") else "(not packed: unused)")
                for d in node.get("data", [])
            )
        ]
        lines += [
            f"{pad}  base weights: {k} sha256 {(v or '?')[:12]}" for k, v in (node.get("base_weights") or {}).items()
        ]
        return lines + (render(node["init"], indent + 1) if node.get("init") else [])
    if kind == "index":
        if node.get("missing") or not node.get("corpus"):
            return [
                f"{pad}index {node.get('uri')} version {node.get('version')}: no manifest"
                f"{' at ' + node['missing'] if node.get('missing') else ''}"
            ]
        enc = ", ".join(f"{k}={(v or {}).get('model')}" for k, v in node["encoders"].items())
        return [
            f"{pad}index {node['uri']} version {node.get('version')}: config "
            f"{(node.get('config_hash') or '')[:12]}, encoders {enc}",
            f"{pad}  corpus fingerprint {node['corpus']['fingerprint']}",
        ]
    return [f"{pad}{kind} {node.get('name') or node.get('uri')}"]
