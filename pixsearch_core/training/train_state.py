"""DeepSpeed checkpoints in the object store, resumable.

    <output>/stage<N>/checkpoints/step-00000010/...   DeepSpeed's files: model states (trainable parameters
                                                      only), per-rank ZeRO optimizer states, scheduler, and
                                                      client state {step, micro_batches, samples}: the data position
    <output>/stage<N>/checkpoints/LATEST              the tag of the newest complete checkpoint (written last)

Each rank saves locally under the run directory, uploads the files it wrote (rank 0: all but other ranks'
`zero_pp_rank_*`), then, after a barrier, rank 0 flips LATEST and prunes old checkpoints. A resumed rank
downloads the whole tag into a directory of its own and loads it.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)

LATEST = "LATEST"
_RANK_FILE = re.compile(r"zero_pp_rank_(\d+)_")


def tag_for(step: int) -> str:
    return f"step-{step:08d}"


def _mine(name: str, rank: int) -> bool:
    m = _RANK_FILE.search(name)
    return int(m.group(1)) == rank if m else rank == 0


def save(engine, prefix: str, local_dir: Path, step: int, client_state: dict, store: ObjectStore,
         keep: int = 2) -> str:
    """Save on every rank, upload, flip LATEST; returns the tag."""
    import torch.distributed as dist

    tag = tag_for(step)
    engine.save_checkpoint(str(local_dir), tag=tag, client_state=client_state, exclude_frozen_parameters=True)
    rank = dist.get_rank()
    for path in sorted((local_dir / tag).rglob("*")):
        if path.is_file() and _mine(path.name, rank):
            store.put_file(join(prefix, tag, str(path.relative_to(local_dir / tag))), path)
    dist.barrier()
    if rank == 0:
        store.put_bytes(join(prefix, LATEST), tag.encode())
        _prune(prefix, store, keep)
        log.info("checkpoint %s saved to %s", tag, join(prefix, tag))
    dist.barrier()
    shutil.rmtree(local_dir / tag, ignore_errors=True)
    return tag


def _prune(prefix: str, store: ObjectStore, keep: int) -> None:
    tags = sorted({u[len(prefix.rstrip("/")) + 1:].split("/", 1)[0] for u in store.list(prefix)} - {LATEST})
    for old in tags[:-keep]:
        store.delete_prefix(join(prefix, old))


def latest(prefix: str, store: ObjectStore) -> str | None:
    uri = join(prefix, LATEST)
    return store.get_bytes(uri).decode().strip() if store.exists(uri) else None


def load(engine, prefix: str, tag: str, local_dir: Path, store: ObjectStore) -> dict:
    """Download `tag` and load it into the engine; returns the client state."""
    target = local_dir / tag
    shutil.rmtree(target, ignore_errors=True)
    base = join(prefix, tag) + "/"
    for uri in store.list(join(prefix, tag)):
        store.get_file(uri, target / uri[len(base):])
    path, client = engine.load_checkpoint(str(local_dir), tag=tag, load_module_strict=False)
    if path is None:
        raise FileNotFoundError(f"DeepSpeed could not load checkpoint {tag} from {join(prefix, tag)}")
    shutil.rmtree(target, ignore_errors=True)
    log.info("resumed from %s at step %d", join(prefix, tag), client["step"])
    return client
