"""The demo pipeline: config presets, step selection, the retrieval check's arithmetic, and (slow) the real thing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.demo.config import DemoConfig, StepConfig
from pipelines.demo.pipeline import Demo
from pipelines.demo.retrieval_check import retrieval_check, to_markdown
from pixsearch_core.config import load_config
from pixsearch_core.retrieval.types import Evidence, ImageQuery, RegionQuery, TextQuery
from pixsearch_core.synthcrag import WorldConfig, generate_world
from pixsearch_core.synthcrag.paths import resolve
from pixsearch_core.synthcrag.write import write_synthcrag

ROOT = Path(__file__).resolve().parents[2]
SMALL = WorldConfig(seed=5, n_entities=24, n_makers=4, n_places=4)


class _Oracle:
    """Region queries find the right document; whole images the right one at rank 2; text never."""

    def __init__(self, gold_by_image):
        self.gold_by_image = gold_by_image
        self.calls = 0

    def search_many(self, queries, k):
        self.calls += 1
        out = []
        for q in queries:
            ev = lambda d: Evidence(doc_id=d, title=d, text="", score=1.0, index="image")
            if isinstance(q, RegionQuery):
                out.append([ev(self.gold_by_image[id(q.image)])])
            elif isinstance(q, ImageQuery):
                out.append([ev("wrong"), ev(self.gold_by_image[id(q.image)])])
            else:
                assert isinstance(q, TextQuery)
                out.append([ev("wrong")])
        return out


def test_retrieval_check_counts_hits_per_modality(tmp_path, monkeypatch):
    write_synthcrag(generate_world(SMALL), str(tmp_path))
    import pipelines.demo.retrieval_check as rc

    gold: dict[int, str] = {}
    real_scenes = rc._scenes
    opened = {}

    def scenes(store, world, split):
        rows = real_scenes(store, world, split)
        for r in rows:
            opened[resolve(world, r["image"])] = r["entity_id"]  # world records hold root-relative references
        return rows

    real_open = rc._open

    def _open(store, uri, mode):
        img = real_open(store, uri, mode)
        if uri in opened:
            gold[id(img)] = opened[uri]
        return img

    monkeypatch.setattr(rc, "_scenes", scenes)
    monkeypatch.setattr(rc, "_open", _open)
    searcher = _Oracle(gold)
    res = retrieval_check(searcher, str(tmp_path), k=5)
    assert searcher.calls == 1, "all queries go in one batched call"
    for group in ("ego", "non_ego"):
        assert res[group]["region"]["hit@1"] == 1.0 and res[group]["region"]["hit@k"] == 1.0
        assert res[group]["image"]["hit@1"] == 0.0 and res[group]["image"]["hit@k"] == 1.0
        assert res[group]["text"]["hit@k"] == 0.0
    assert "| egocentric | region | 100.0% | 100.0% |" in to_markdown(res)


def test_presets_load_and_unknown_steps_are_refused(tmp_path):
    for preset in ("cpu", "gpu", "mini", "mini-dinov2", "dinov2", "scratch"):
        cfg = load_config(DemoConfig, ROOT / "conf" / "demo" / f"{preset}.yaml")
        assert cfg.modes[:2] == ["full", "whole_image"]
    with pytest.raises(ValueError, match="unknown demo steps"):
        Demo(DemoConfig(output=str(tmp_path))).run(("world", "indx"))


def test_the_mini_preset_shares_the_frozen_sam_embeddings_between_its_jobs(tmp_path, monkeypatch):
    """conf/demo/mini.yaml: both training stages and every eval mode get the same sam-cache folder, and the train
    and eval configs accept the override as they load it."""
    import pipelines.demo.pipeline as pipeline
    from pixsearch_core.evaluation.config import EvalRunConfig
    from pixsearch_core.training.config import TrainConfig

    cfg = load_config(DemoConfig, ROOT / "conf" / "demo" / "mini.yaml", [f"output={tmp_path}"])
    calls = []
    monkeypatch.setattr(pipeline, "_pixsearch", lambda step, *args: calls.append(args) or '{"run_uri": "r"}')
    (tmp_path / "eval").mkdir()
    demo = Demo(cfg)
    demo.step_train()
    demo.step_eval()
    want = f"model.sam_embedding_cache={tmp_path.resolve() / 'sam-cache'}"
    assert len(calls) == 2 + len(cfg.modes) and all(want in args for args in calls)
    train = load_config(TrainConfig, ROOT / cfg.train.config, [want, *cfg.train.overrides])
    assert f"sam_embedding_cache={json.dumps(str(tmp_path.resolve() / 'sam-cache'))}" in train.model.build_overrides()
    ev = load_config(EvalRunConfig, ROOT / cfg.eval.config, [want, *cfg.eval.overrides])
    assert any(o.startswith("sam_embedding_cache=") for o in ev.model.build_overrides())
    plain = load_config(DemoConfig, ROOT / "conf" / "demo" / "scratch.yaml", [f"output={tmp_path}"])
    assert Demo(plain)._sam_cache() == []  # the from-scratch demo trains its SAM encoder: nothing to share


def test_the_mini_dinov2_preset_is_mini_with_make_demos_sam(tmp_path):
    """conf/demo/mini-dinov2.yaml: the pretrained mini LM (its own recipe, one process) with the frozen DINOv2 SAM
    of cpu.yaml, box pre-training first, and the from-scratch SAM parts, mask head and span tagger at 10 x the LR;
    every other key of the training config is conf/train/synthcrag-mini.yaml's."""
    from pixsearch_core.training.config import TrainConfig

    cfg = load_config(DemoConfig, ROOT / "conf" / "demo" / "mini-dinov2.yaml", [f"output={tmp_path}"])
    mini = load_config(DemoConfig, ROOT / "conf" / "demo" / "mini.yaml", [f"output={tmp_path}"])
    assert cfg.train.config == mini.train.config and cfg.train_nproc == 1
    # presets are whole files: the world, index, eval and modes are mini.yaml's but for the crop mini's masks needed
    assert cfg.model_dump(exclude={"output", "train", "eval"}) == mini.model_dump(exclude={"output", "train", "eval"})
    assert cfg.eval.config == mini.eval.config
    assert mini.eval.overrides == [*cfg.eval.overrides, "retriever.crop.background=null", "retriever.crop.snap=null"]
    cache = Demo(cfg)._sam_cache()
    assert cache == [f"model.sam_embedding_cache={tmp_path.resolve() / 'sam-cache'}"]
    train = load_config(TrainConfig, ROOT / cfg.train.config, [*cache, *cfg.train.overrides])
    base = load_config(TrainConfig, ROOT / cfg.train.config, cache)
    assert train.model.size == "mini"
    built = set(train.model.build_overrides())
    assert {'sam.kind="dinov2"', "sam.prompt_dim=64", "sam.colour_cells=4", "sam.neck_blocks=1"} <= built
    assert train.sam_pretrain.steps == 600 and base.sam_pretrain.steps == 0
    assert train.optim.part_lr_scale == dict.fromkeys(
        ("prompt_encoder", "mask_decoder", "mask_head", "span_tagger"), 10
    )
    assert (train.stage1, train.stage2, train.data) == (base.stage1, base.stage2, base.data)


@pytest.mark.parametrize(
    "preset, pretrain, stage1, stage2", [("dinov2.yaml", 600, 1500, 900), ("cpu.yaml", 0, 700, 700)]
)
def test_the_dinov2_presets_build_the_frozen_dinov2_sam_with_colour_cells_and_share_its_cache(
    tmp_path, preset, pretrain, stage1, stage2
):
    """conf/demo/dinov2.yaml: the demo's recipe with sam.kind=dinov2 (+ colour cells, a neck block, box
    pre-training, a longer stage 1); cpu.yaml (make demo's): the same encoder, no pre-training, 700 + 700 steps. Their
    overrides load into the training config, and the frozen encoder's cache is shared."""
    from pixsearch_core.training.config import TrainConfig

    cfg = load_config(DemoConfig, ROOT / "conf" / "demo" / preset, [f"output={tmp_path}"])
    cache = Demo(cfg)._sam_cache()
    assert cache == [f"model.sam_embedding_cache={tmp_path.resolve() / 'sam-cache'}"]
    train = load_config(TrainConfig, ROOT / cfg.train.config, [*cache, *cfg.train.overrides])
    built = train.model.build_overrides()
    assert {'sam.kind="dinov2"', "sam.colour_cells=4", "sam.neck_blocks=1"} <= set(built)
    assert (train.sam_pretrain.steps, train.stage1.max_steps, train.stage2.max_steps) == (pretrain, stage1, stage2)
    assert train.data.image_max_side == 256


def test_make_demos_preset_differs_from_the_dinov2_preset_only_in_its_steps_and_the_restated_question():
    """cpu.yaml (make demo's) is a copy of dinov2.yaml (presets are whole files): only its output, the box pre-training,
    the step counts and the restated question (train and eval) may differ, so a change to the DINOv2 model in one
    preset cannot silently miss the other."""
    full, fast = (load_config(DemoConfig, ROOT / "conf" / "demo" / f) for f in ("dinov2.yaml", "cpu.yaml"))
    steps = ("sam_pretrain.", "stage1.max_steps=", "stage2.max_steps=", "data.restate_question=")
    keep = [o for o in full.train.overrides if not o.startswith(steps)]
    assert [o for o in fast.train.overrides if not o.startswith(steps)] == keep
    assert "data.restate_question=true" in fast.train.overrides
    assert [o for o in fast.eval.overrides if o != "decode.restate_question=true"] == full.eval.overrides
    same = {"train", "eval", "output"}
    assert full.model_dump(exclude=same) == fast.model_dump(exclude=same)
    assert full.train.model_dump(exclude={"overrides"}) == fast.train.model_dump(exclude={"overrides"})
    assert full.eval.model_dump(exclude={"overrides"}) == fast.eval.model_dump(exclude={"overrides"})


@pytest.mark.parametrize("preset", ["cpu", "scratch", "dinov2", "mini", "mini-dinov2", "gpu"])
def test_every_preset_trains_and_evaluates_with_the_same_restate_question(preset):
    Demo(load_config(DemoConfig, ROOT / "conf" / "demo" / f"{preset}.yaml")).check_restate_question()


def test_a_model_trained_with_the_question_restated_is_not_evaluated_without_it(tmp_path):
    """data.restate_question for training and decode.restate_question for eval must agree: refused before any
    step runs, naming both keys."""
    train = StepConfig(config=str(ROOT / "conf/train/synthcrag-demo.yaml"), overrides=["data.restate_question=true"])
    cfg = DemoConfig(output=str(tmp_path), world=SMALL, train=train)
    with pytest.raises(ValueError, match=r"data.restate_question=True but eval decode.restate_question=False"):
        Demo(cfg).run(("world", "eval"))
    assert not (tmp_path / "world").exists()
    agreed = cfg.model_copy(
        update={
            "eval": StepConfig(config=str(ROOT / "conf/eval/demo.yaml"), overrides=["decode.restate_question=true"])
        }
    )
    Demo(agreed).check_restate_question()


def test_a_partial_rerun_keeps_the_other_steps_in_the_summary(tmp_path, monkeypatch):
    cfg = DemoConfig(output=str(tmp_path), world=SMALL)
    world = Demo(cfg).run(("world",))["world"]
    monkeypatch.setattr(Demo, "step_report", lambda self: "report-ran")
    Demo(cfg).run(("report",))
    summary = json.loads((tmp_path / "demo-summary.json").read_text())
    assert summary["world"] == world and summary["report"] == "report-ran" and "report_seconds" in summary


def test_a_failing_step_keeps_the_finished_steps_in_the_summary(tmp_path, monkeypatch):
    """The report step failed after an hour of eval once: the summary of the finished steps must survive."""

    def boom(self):
        raise RuntimeError("report failed")

    cfg = DemoConfig(output=str(tmp_path), world=SMALL)
    monkeypatch.setattr(Demo, "step_report", boom)
    with pytest.raises(RuntimeError, match="report failed"):
        Demo(cfg).run(("world", "report"))
    summary = json.loads((tmp_path / "demo-summary.json").read_text())
    assert summary["world"]["sha256"] and "report" not in summary


def test_world_step_is_reused_when_unchanged(tmp_path):
    cfg = DemoConfig(output=str(tmp_path), world=SMALL)
    first = Demo(cfg).run(("world",))["world"]
    stamp = (tmp_path / "world" / "world.json").stat().st_mtime_ns
    assert Demo(cfg).run(("world",))["world"] == first
    assert (tmp_path / "world" / "world.json").stat().st_mtime_ns == stamp
    shutil.rmtree(tmp_path / "world")  # from scratch, same seed: same digest (at any path: test_synthcrag_paths)
    assert Demo(cfg).run(("world",))["world"]["sha256"] == first["sha256"]
    assert json.loads((tmp_path / "demo-summary.json").read_text())["world"]["sha256"] == first["sha256"]
    shutil.rmtree(tmp_path / "world")
    reseeded = Demo(DemoConfig(output=str(tmp_path), world=SMALL.model_copy(update={"seed": 1})))
    assert reseeded.run(("world",))["world"]["sha256"] != first["sha256"]


def test_a_new_evidence_first_share_rewrites_the_world_with_that_share(tmp_path):
    def evidence_first(share: float) -> tuple[int, dict]:
        cfg = DemoConfig(output=str(tmp_path), world=SMALL, evidence_first_share=share)
        Demo(cfg).run(("world",))
        rows = [json.loads(line) for line in (tmp_path / "world" / "stage2" / "train.jsonl").read_text().splitlines()]
        meta = json.loads((tmp_path / "world" / "world.json").read_text())
        return sum(r["id"].endswith("-ef") for r in rows), meta

    low, low_meta = evidence_first(0.0)
    high, high_meta = evidence_first(1.0)
    assert (low_meta["evidence_first_share"], high_meta["evidence_first_share"]) == (0.0, 1.0)
    trajectories = high_meta["counts"]["stage2"] - high  # every trajectory once, plus its evidence-first copy
    assert 0 < low < high == trajectories  # at 1.0 every trajectory has its copy; at 0.0 only the no-search ones


def test_fact_tails_rewrite_the_world_and_an_unchanged_config_reuses_it(tmp_path):
    def world(tails: bool) -> tuple[dict, str]:
        Demo(DemoConfig(output=str(tmp_path), world=SMALL, fact_tails=tails)).run(("world",))
        stage2 = (tmp_path / "world" / "stage2" / "train.jsonl").read_text()
        return json.loads((tmp_path / "world" / "world.json").read_text()), stage2

    plain, before = world(False)
    tails, after = world(True)
    assert "fact_tails" not in plain and tails["fact_tails"] is True
    assert "the evidence does not give" in after and "the evidence does not give" not in before
    stamp = (tmp_path / "world" / "world.json").stat().st_mtime_ns
    world(True)
    assert (tmp_path / "world" / "world.json").stat().st_mtime_ns == stamp  # up to date: not rewritten


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    """The whole `pixsearch demo` on a small world (minutes): every step runs and the report exists."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "jobs.cli",
        "demo",
        f"output={tmp_path}",
        "world.n_entities=24",
        "world.n_makers=4",
        "world.n_places=4",
        "train.overrides=[stage1.max_steps=4, stage2.max_steps=4]",
        "modes=[full, no_search]",
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-4000:]
    summary = json.loads((tmp_path / "demo-summary.json").read_text())
    assert summary["retrieval"]["ego"]["region"]["n"] > 0
    assert (tmp_path / "report" / "report.md").read_text().count("synthcrag") >= 2


def test_retrieval_step_searches_through_the_factory_as_eval_does(tmp_path, monkeypatch):
    """The step's searcher is the one `eval run --index <the demo index>` builds: the eval config's k and crop."""
    import pipelines.demo.retrieval_check as rc
    import pixsearch_core.retrieval.backends as backends

    built = []
    monkeypatch.setattr(backends, "make_retriever", lambda cfg, store=None: built.append(cfg) or "searcher")
    monkeypatch.setattr(rc, "retrieval_check", lambda searcher, world, k, store: {"searcher": searcher, "k": k})
    monkeypatch.setattr(rc, "to_markdown", lambda result: "")
    cfg = DemoConfig(
        output=str(tmp_path),
        world=SMALL,
        eval={"config": str(ROOT / "conf/eval/demo.yaml"), "overrides": ["retriever.crop.padding=0.3"]},
    )
    assert Demo(cfg).run(("retrieval",))["retrieval"] == {"searcher": "searcher", "k": 5}
    (r,) = built
    assert (r.kind, r.uri, r.crop.padding, r.k) == ("index", str(tmp_path / "store/indices/synthcrag"), 0.3, 1)
    assert r.cache_dir == str(tmp_path / "cache")
