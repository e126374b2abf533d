"""DeepSpeed checkpoints in the object store, resumable.

    <output>/stage<N>/checkpoints/step-00000010/...   DeepSpeed's files: model states (trainable parameters
                                                      only), per-rank ZeRO optimizer states, scheduler, and
                                                      client state {step, micro_batches, samples}: the data position
    <output>/stage<N>/checkpoints/step-00000010/sha256-rank00000.json   per rank: {file: sha256} of what it
                                                      uploaded (rank 0's also holds the world size)
    <output>/stage<N>/checkpoints/LATEST              the tag of the newest complete checkpoint (written last)

Each rank saves locally under the run directory, uploads the files it wrote (rank 0: all but other ranks'
`zero_pp_rank_*`) and their sha256 list, then, after a barrier, rank 0 flips LATEST and prunes old checkpoints.
A resumed rank downloads the whole tag into a directory of its own (a key that would land outside it is refused),
checks every file against the sha256 lists (a file missing, extra or changed is refused before anything is
unpickled) and loads it with `torch.load(weights_only=True)` forced for everything DeepSpeed reads: tensors,
builtin containers and scalars, and only the few DeepSpeed classes its optimizer state holds (`SAFE_GLOBALS`).
A checkpoint that holds anything else (a pickled callable, a `__reduce__` payload) is refused without running it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import re
import shutil
from pathlib import Path

from pixsearch_core.storage import ObjectStore, child_path, join, sha256_file

log = logging.getLogger(__name__)

LATEST = "LATEST"
_RANK_FILE = re.compile(r"zero_pp_rank_(\d+)_")
_SUMS = re.compile(r"^sha256-rank(\d+)\.json$")


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint whose files do not match their sha256 lists, or that holds more than weights-only data."""


def _safe_globals() -> list:
    """The non-tensor classes DeepSpeed's ZeRO optimizer state pickles (loss scaler, stage enum, fragment
    addresses); each is rebuilt from its fields, none runs code on load."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


@contextlib.contextmanager
def weights_only_loads():
    """Every `torch.load` in the block runs with weights_only=True (torch's TORCH_FORCE_WEIGHTS_ONLY_LOAD, which
    overrides DeepSpeed's explicit weights_only=False) and the allow-list of `_safe_globals`."""
    import torch

    saved = {k: os.environ.pop(k, None) for k in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


def tag_for(step: int) -> str:
    return f"step-{step:08d}"


def _mine(name: str, rank: int) -> bool:
    m = _RANK_FILE.search(name)
    return int(m.group(1)) == rank if m else rank == 0


def save(engine, prefix: str, local_dir: Path, step: int, client_state: dict, store: ObjectStore, keep: int = 2) -> str:
    """Save on every rank, upload, flip LATEST; returns the tag."""
    import torch.distributed as dist

    tag = tag_for(step)
    engine.save_checkpoint(str(local_dir), tag=tag, client_state=client_state, exclude_frozen_parameters=True)
    rank = dist.get_rank()
    sums = {}
    for path in sorted((local_dir / tag).rglob("*")):
        if path.is_file() and _mine(path.name, rank):
            rel = path.relative_to(local_dir / tag).as_posix()
            sums[rel] = store.put_file(join(prefix, tag, rel), path)
    listing = {"files": sums, **({"world_size": dist.get_world_size()} if rank == 0 else {})}
    store.put_bytes(join(prefix, tag, f"sha256-rank{rank:05d}.json"), json.dumps(listing, indent=1).encode())
    dist.barrier()
    if rank == 0:
        store.put_bytes(join(prefix, LATEST), tag.encode())
        _prune(prefix, store, keep)
        log.info("checkpoint %s saved to %s", tag, join(prefix, tag))
    dist.barrier()
    shutil.rmtree(local_dir / tag, ignore_errors=True)
    return tag


def _prune(prefix: str, store: ObjectStore, keep: int) -> None:
    tags = sorted({u[len(prefix.rstrip("/")) + 1 :].split("/", 1)[0] for u in store.list(prefix)} - {LATEST})
    for old in tags[:-keep]:
        store.delete_prefix(join(prefix, old))


def latest(prefix: str, store: ObjectStore) -> str | None:
    uri = join(prefix, LATEST)
    return store.get_bytes(uri).decode().strip() if store.exists(uri) else None


def _expected_sums(target: Path, source: str) -> dict[str, str]:
    """{file: sha256} from every rank's list; refuses a tag without rank 0's list, with lists missing or
    malformed."""
    try:
        lists = {int(m.group(1)): json.loads(p.read_text()) for p in target.iterdir() if (m := _SUMS.match(p.name))}
        if 0 not in lists:
            raise UnsafeCheckpointError(
                f"{source}: no sha256-rank00000.json; refusing a checkpoint whose files "
                "cannot be verified (written by an older version, or tampered with)"
            )
        world = lists[0].get("world_size", 1)
        if sorted(lists) != list(range(world)):
            raise UnsafeCheckpointError(f"{source}: sha256 lists of ranks {sorted(lists)}; expected 0..{world - 1}")
        return {str(f): str(sha) for lst in lists.values() for f, sha in lst["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UnsafeCheckpointError(f"{source}: malformed sha256 list: {type(e).__name__}: {e}") from None


def verify(target: Path, source: str) -> int:
    """Check every downloaded file against the sha256 lists; returns how many files were checked."""
    expected = _expected_sums(target, source)
    found = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file() and not _SUMS.match(p.name)}
    if found != set(expected):
        raise UnsafeCheckpointError(
            f"{source}: files not in the sha256 lists {sorted(found - set(expected))}, "
            f"listed but missing {sorted(set(expected) - found)}"
        )
    for rel, sha in sorted(expected.items()):
        got = sha256_file(target / rel)
        if got != sha:
            raise UnsafeCheckpointError(
                f"{source}/{rel}: sha256 {got} != {sha} recorded at save time; the file changed after it was written"
            )
    return len(expected)


def load(engine, prefix: str, tag: str, local_dir: Path, store: ObjectStore) -> dict:
    """Download `tag`, verify it, and load it into the engine weights-only; returns the client state."""
    target = local_dir / tag
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    base, source = join(prefix, tag) + "/", join(prefix, tag)
    for uri in store.list(source):
        store.get_file(uri, child_path(target, uri[len(base) :]))
    n = verify(target, source)
    try:
        with weights_only_loads():
            path, client = engine.load_checkpoint(str(local_dir), tag=tag, load_module_strict=False)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(f"{source}: refused to unpickle more than weights: {str(e)[:600]}") from None
    if path is None:
        raise FileNotFoundError(f"DeepSpeed could not load checkpoint {tag} from {source}")
    shutil.rmtree(target, ignore_errors=True)
    log.info("resumed from %s at step %d (%d files verified by sha256)", source, client["step"], n)
    return client
