"""DeepSpeed training of the tiny model on a SynthCRAG world: both stages (single process here; 2 processes in
the slow test), resume equality, the export. The first DeepSpeed run on a machine compiles a shared-memory op
(30-55 s, cached under ~/.cache/torch_extensions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from pixsearch_core.training.loss_log import read_metrics
from tests._train_fixtures import DEMO_CONF, clear_dist_env, fast_config

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


pytestmark = pytest.mark.usefixtures("train_env")


def _train(cfg, stage, stop_after=None):
    from pixsearch_core.training.trainer import train

    return train(cfg, stage, stop_after=stop_after)


def _falls(rows, k=3):
    losses = [r["loss"] for r in rows]
    return sum(losses[-k:]) / k < sum(losses[:k]) / k, losses


def test_two_stages_single_process_loss_falls_and_exports(world, tmp_path):
    """The demo's recipe (conf/train/synthcrag-demo.yaml: the whole small LM trains) through both stages."""
    cfg = fast_config(
        world,
        tmp_path,
        "stage1.max_steps=10",
        "stage2.max_steps=12",
        "save_every=5",
        "data.max_length=400",
        "optim.micro_batch_size=4",
        conf=DEMO_CONF,
    )
    s1 = _train(cfg, 1)
    rows1 = read_metrics(tmp_path / "run" / "stage1" / "metrics.jsonl")
    assert [r["step"] for r in rows1] == list(range(1, 11)) and s1["export"]
    ok, losses = _falls(rows1)
    assert ok, losses
    assert all(r["samples_per_s"] > 0 and r["tokens_per_s"] > 0 for r in rows1)
    assert (tmp_path / "run" / "stage1" / "loss.png").stat().st_size > 1000
    clear_dist_env()
    s2 = _train(cfg, 2)
    rows2 = read_metrics(tmp_path / "run" / "stage2" / "metrics.jsonl")
    # the text terms (LM and the recipe's weighted search decisions; the other terms depend on each batch's spans):
    # in 12 steps the choice term falls fast (6.5 -> 3.2 here) while the LM term alone may rise a little
    assert all("choice" in r for r in rows2)
    ok, text = _falls([{"loss": r["lm"] + r["choice"]} for r in rows2])
    assert ok, text
    ok, choice = _falls([{"loss": r["choice"]} for r in rows2])
    assert ok, choice
    from safetensors.torch import load_file

    from pixsearch_core.modeling.build import build_from_checkpoint

    exported = load_file(os.path.join(s2["export"], "trainable.safetensors"))
    model = build_from_checkpoint(s2["export"], "tiny")  # what eval does: the stored config, then the weights
    key = next(n for n in exported if n.startswith("language_model.") and n.endswith("q_proj.weight"))
    assert not any("lora_" in n for n in exported)
    assert torch.equal(dict(model.named_parameters())[key].detach(), exported[key])
    stored = json.loads(open(os.path.join(s2["export"], "config.json")).read())
    assert stored["size"] == "tiny" and stored["language_model"]["hidden_size"] == 128


def test_resumed_run_matches_uninterrupted(world, tmp_path):
    base = ("stage1.max_steps=6", "save_every=3")
    full = fast_config(world, tmp_path / "a", *base)
    _train(full, 1)
    clear_dist_env()
    cut = fast_config(world, tmp_path / "b", *base)
    first = _train(cut, 1, stop_after=3)  # stops right after the step-3 checkpoint, like a killed job
    assert first["step"] == 3 and first["export"] is None
    clear_dist_env()
    second = _train(cut, 1)  # resumes from LATEST
    assert second["step"] == 6
    a = read_metrics(tmp_path / "a" / "run" / "stage1" / "metrics.jsonl")
    b = read_metrics(tmp_path / "b" / "run" / "stage1" / "metrics.jsonl")
    assert [r["step"] for r in b] == list(range(1, 7))
    for ra, rb in zip(a, b):
        assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-5, abs=1e-6), (ra["step"], ra["loss"], rb["loss"])
        assert ra["lr"] == pytest.approx(rb["lr"])
    from safetensors.torch import load_file

    wa = load_file(str(tmp_path / "a" / "store" / "stage1" / "final" / "trainable.safetensors"))
    wb = load_file(str(tmp_path / "b" / "store" / "stage1" / "final" / "trainable.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


@pytest.mark.slow
def test_two_process_cpu_run_via_cli(world, tmp_path):
    """`pixsearch train engine=torchrun`: torchrun, 2 CPU processes, gloo; both stages; the loss falls."""
    common = [
        "--config",
        DEMO_CONF,
        "engine=torchrun",
        "torchrun.nproc_per_node=2",  # the demo recipe
        f"data.root={world}",
        f"output={tmp_path}/store",
        f"run_dir={tmp_path}/run",
        "data.template=plain",
        "data.image_max_side=48",
        "data.max_length=400",
        "optim.micro_batch_size=4",
        "stage1.max_steps=10",
        "stage2.max_steps=12",
        "sam_pretrain.steps=3",  # stage 1 starts with SAM pre-training: its gradients are all-reduced over 2 ranks
        "sam_pretrain.batch_size=4",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    for stage in ("1", "2"):
        proc = subprocess.run(
            [sys.executable, "-m", "jobs.cli", "train", "--stage", stage, *common],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        rows = read_metrics(tmp_path / "run" / f"stage{stage}" / "metrics.jsonl")
        key = "loss" if stage == "1" else "lm"  # stage 2: the LM term (the others depend on each batch's spans)
        ok, losses = _falls([{"loss": r[key]} for r in rows])
        assert ok, losses
        assert rows[-1]["samples_per_s"] > 0
    assert (tmp_path / "store" / "stage2" / "final" / "trainable.safetensors").exists()
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "stage1" / "sam_pretrain.jsonl")] == [1, 2, 3]


def test_checkpoints_and_export_in_s3(world, tmp_path, s3_store):
    """Shards, checkpoints and the export under s3:// (a local moto server); a stopped run resumes from there."""
    bucket = s3_store.root
    cfg = fast_config(
        world,
        tmp_path,
        f"output={bucket}/run",
        "stage1.max_steps=2",
        "save_every=1",
        f"storage.endpoint_url={s3_store.config.endpoint_url}",
        "storage.region=us-east-1",
        "storage.addressing_style=path",
    )
    assert _train(cfg, 1, stop_after=1)["step"] == 1
    assert s3_store.get_bytes(f"{bucket}/run/stage1/checkpoints/LATEST") == b"step-00000001"
    clear_dist_env()
    assert _train(cfg, 1)["step"] == 2
    objects = list(s3_store.list(f"{bucket}/run"))
    assert f"{bucket}/run/stage1/final/trainable.safetensors" in objects
    assert any("shards/synth_refer/shard-000000.tar" in o for o in objects)
    tags = {o.split("/checkpoints/")[1].split("/")[0] for o in objects if "/checkpoints/step-" in o}
    assert tags == {"step-00000001", "step-00000002"}  # keep_checkpoints: 2
    assert any("optim_states" in o for o in objects) and any("model_states" in o for o in objects)


def test_every_trainable_parameter_gets_a_gradient_even_without_spans():
    """Ranks must reduce the same gradient buckets: a span-free micro-batch still touches the mask parts (x 0)."""
    from pixsearch_core.registry import get
    from pixsearch_core.training.trainer import _touch_every_trainable

    model = get("model", "tiny")()
    term = _touch_every_trainable(model)
    assert float(term) == 0.0
    term.backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert any(n.startswith("mask_decoder.") for n, _ in trainable)
    assert all(p.grad is not None and not p.grad.any() for _, p in trainable)
