"""Resuming from a tampered checkpoint: a pickled payload is refused without running, a changed file fails its
sha256 check, a key that climbs out of the download directory is refused; honest resumes are covered by
test_training_deepspeed.py::test_resumed_run_matches_uninterrupted (which now goes through the same checks)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from pixsearch_core.storage import ObjectStore, UnsafePathError
from pixsearch_core.training.train_state import UnsafeCheckpointError
from tests._train_fixtures import clear_dist_env, fast_config


class Payload:
    """What an attacker pickles: unpickling it calls os.mkdir(marker)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


pytestmark = pytest.mark.usefixtures("train_env")


def _train(cfg, stop_after=None):
    from pixsearch_core.training.trainer import train

    clear_dist_env()
    return train(cfg, 1, stop_after=stop_after)


def _one_step_run(world, tmp_path):
    cfg = fast_config(world, tmp_path, "stage1.max_steps=2", "save_every=1")
    assert _train(cfg, stop_after=1)["step"] == 1
    tag_dir = tmp_path / "store" / "stage1" / "checkpoints" / "step-00000001"
    return cfg, tag_dir


def _relist(tag_dir, name):
    """The attacker also rewrites the sha256 list (they can write the store): only weights-only loading is left."""
    sums = tag_dir / "sha256-rank00000.json"
    listing = json.loads(sums.read_text())
    from pixsearch_core.storage import sha256_file

    listing["files"][name] = sha256_file(tag_dir / name)
    sums.write_text(json.dumps(listing))


@pytest.mark.parametrize("name", ["mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt"])
def test_pickled_payload_is_refused_and_never_runs(world, tmp_path, name):
    cfg, tag_dir = _one_step_run(world, tmp_path)
    state = torch.load(tag_dir / name, weights_only=False)  # our own honest file
    marker = tmp_path / "payload-ran"
    state["extra"] = Payload(str(marker))
    torch.save(state, tag_dir / name)
    _relist(tag_dir, name)
    with pytest.raises(UnsafeCheckpointError, match="refused to unpickle"):
        _train(cfg)
    assert not marker.exists()
    torch.load(tag_dir / name, weights_only=False)  # what DeepSpeed's own loader would have done: it runs
    assert marker.is_dir()


def test_changed_file_fails_sha256_before_loading(world, tmp_path):
    cfg, tag_dir = _one_step_run(world, tmp_path)
    path = tag_dir / "mp_rank_00_model_states.pt"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(UnsafeCheckpointError, match="sha256 .* recorded at save time"):
        _train(cfg)
    (tag_dir / "sha256-rank00000.json").unlink()  # a checkpoint without its list is refused too
    with pytest.raises(UnsafeCheckpointError, match="no sha256-rank00000.json"):
        _train(cfg)


def test_extra_file_in_a_checkpoint_is_refused(world, tmp_path):
    cfg, tag_dir = _one_step_run(world, tmp_path)
    (tag_dir / "injected.pt").write_bytes(b"x")
    with pytest.raises(UnsafeCheckpointError, match="injected.pt"):
        _train(cfg)


def test_download_key_with_dotdot_is_refused(tmp_path):
    from pixsearch_core.training.train_state import load

    prefix = tmp_path / "ckpt"
    (prefix / "step-1" / "sub").mkdir(parents=True)
    (prefix / "step-1" / "sub" / "x").write_bytes(b"x")

    class Store(ObjectStore):  # an object store that lists a key with `..` (S3 keys may hold any characters)
        def list(self, p):
            yield f"{prefix}/step-1/../../../escaped"

        def get_file(self, uri, path):
            raise AssertionError(f"downloaded {uri} to {path}")

    with pytest.raises(UnsafePathError, match="leaves"):
        load(None, str(prefix), "step-1", tmp_path / "dl", Store())
    assert not (tmp_path / "escaped").exists()
