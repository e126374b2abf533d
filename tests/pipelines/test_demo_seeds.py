"""`pixsearch demo seeds=[...]`: per-seed configs, and the mean +/- spread table from hand-made runs."""

from __future__ import annotations

import statistics

import pytest

from pipelines.demo.config import DemoConfig
from pipelines.demo.seeds import seed_config, seed_summary, to_markdown
from pixsearch_core.config import load_config
from tests.pixsearch_core.test_eval_report import rec, verdict, write_run


def test_seed_config_sets_world_and_training_seed_and_its_own_output():
    cfg = load_config(DemoConfig, "conf/demo/cpu.yaml", ["output=/tmp/d", "seeds=[0,3]"])
    one = seed_config(cfg, 3)
    assert one.output == "/tmp/d/seed-3" and one.world.seed == 3 and one.seeds is None
    assert one.train.overrides[-1] == "seed=3" and one.train.overrides[:-1] == cfg.train.overrides
    assert one.world.n_entities == cfg.world.n_entities and cfg.world.seed == 0  # the original is untouched


def test_seeds_must_not_be_empty():
    with pytest.raises(Exception, match="seeds"):
        load_config(DemoConfig, "conf/demo/cpu.yaml", ["seeds=[]"])


def test_seed_summary_mean_spread_and_ordering_per_seed(tmp_path):
    """4 egocentric questions; per seed and mode, the number answered right is given; seed 1 breaks the order."""
    right = {0: {"full": 3, "whole_image": 2, "no_search": 1}, 1: {"full": 2, "whole_image": 2, "no_search": 0}}
    per_seed = {}
    for seed, modes in right.items():
        per_seed[seed] = [
            write_run(
                str(tmp_path / f"s{seed}"),
                f"r-{mode}",
                mode,
                [
                    {**rec(f"e{i}", verdict(correct=i < k, ego=True), ego=True), "question_type": "qa" if i else "look"}
                    for i in range(4)
                ],
            )
            for mode, k in modes.items()
        ]
    s = seed_summary(per_seed)
    full = s["accuracy"]["full"]["ego"]
    assert full["per_seed"] == {0: 0.75, 1: 0.5}
    assert full["mean"] == pytest.approx(0.625) and full["spread"] == pytest.approx(statistics.stdev([0.75, 0.5]))
    assert s["ordering"]["ego"] == {0: True, 1: False}
    assert s["margins_questions"]["ego"] == {0: [1, 1], 1: [0, 2]}
    assert s["mean_margins_questions"]["ego"] == [0.5, 1.5]
    assert s["n"]["ego"] == 4 and s["region"][0]["n_region_gold"] == 0
    # question e0 is of type "look", e1-e3 of type "qa": right answers are the first k questions
    assert s["ego_by_question_type"]["no_search"] == {"look": {0: [1, 1], 1: [0, 1]}, "qa": {0: [0, 3], 1: [0, 3]}}
    assert s["ego_by_question_type"]["full"]["qa"] == {0: [2, 3], 1: [1, 3]}
    md = to_markdown(s)
    # paired: seed 0 full wins e2 over whole image, which wins e1 over no search; seed 1 ties full and whole image,
    # and whole image wins e0 and e1 over no search
    assert s["paired"]["ego"] == {0: [[1, 0], [1, 0]], 1: [[0, 0], [2, 0]]}
    assert s["paired_pooled"]["ego"] == [[1, 0], [3, 0]]
    assert "62.5 +/- 17.7 (75.0, 50.0)" in md
    assert "| yes: +1 (1/0, p=1), +1 (1/0, p=1) | no: +0 (0/0, p=1), +2 (2/0, p=0.5) | +0.5, +1.5 |" in md
    assert "| 1/0, p=1; 3/0, p=0.25 |" in md  # pooled: 3 wins of 3 is still p = 2 / 2^3
    assert "| no_search | 1/1, 0/1 | 0/3, 0/3 |" in md


def test_run_seeds_runs_each_seed_in_its_own_directory_and_writes_the_table(tmp_path, monkeypatch):
    """The per-seed loop with the pipeline replaced by one that writes two hand-made modes' runs per seed."""
    import json
    from pathlib import Path

    from pipelines.demo import pipeline, seeds

    calls = []

    def fake_run(self, steps):
        calls.append((self.cfg.output, self.cfg.world.seed, self.cfg.train.overrides[-1], steps))
        runs = [
            write_run(
                str(Path(self.cfg.output) / "eval"),
                f"r-{mode}",
                mode,
                [rec(f"e{i}", verdict(correct=i < k + self.cfg.world.seed, ego=True), ego=True) for i in range(4)],
            )
            for mode, k in (("full", 2), ("no_search", 0))
        ]
        (Path(self.cfg.output) / "eval" / "runs.json").write_text(json.dumps(runs))
        return {"eval": runs}

    monkeypatch.setattr(pipeline.Demo, "run", fake_run)
    cfg = load_config(DemoConfig, "conf/demo/cpu.yaml", [f"output={tmp_path}", "seeds=[0,1]"])
    out = seeds.run_seeds(cfg, ("eval",))
    assert [c[:3] for c in calls] == [(f"{tmp_path}/seed-0", 0, "seed=0"), (f"{tmp_path}/seed-1", 1, "seed=1")]
    assert out["seeds"]["accuracy"]["full"]["ego"]["per_seed"] == {0: 0.5, 1: 0.75}
    assert "seed 0" in (tmp_path / "seeds.md").read_text()
    assert json.loads((tmp_path / "seeds.json").read_text())["seeds"] == [0, 1]
