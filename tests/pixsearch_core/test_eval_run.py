"""eval run: records, per-sample failure isolation, scoring, resume after an interrupt, Ray == sequential."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from pixsearch_core.decoding.options import mode_fields
from pixsearch_core.evaluation.config import EvalRunConfig, RayConfig
from pixsearch_core.evaluation.driver import RunRequest, run_eval
from pixsearch_core.records import read_records, read_run_meta
from pixsearch_core.storage import ObjectStore
from tests.eval_run_helpers import scripted, strip_volatile, write_crag_gold

# q1 wrong (hallucination), q2 abstains (missing), q3 fails, every other id answers its gold answer
ANSWERS = {"q1": "wrong", "q2": "I don't know"}
FAIL = ["q3"]
IDS = [f"q{i}" for i in range(12)]


def _cfg(tmp_path, **over) -> EvalRunConfig:
    return EvalRunConfig(
        output=str(tmp_path / "out"), ray=RayConfig(num_replicas=2, batch_size=3), flush_every=2, **over
    )


def _req(gold, run_id, spec, sequential=True, mode="full"):
    return RunRequest("crag_mm", str(gold), "scripted", "none", mode, run_id, sequential, spec)


def test_modes_map_to_decode_options():
    assert mode_fields("budget2") == {"mode": "full", "max_searches": 2}
    assert mode_fields("only_region") == {"mode": "full", "modalities": "only_region"}
    assert mode_fields("whole_image") == {"mode": "whole_image"}
    with pytest.raises(ValueError, match="allowed: full, no_search"):
        mode_fields("budget")


def test_sequential_run_scores_isolates_failures_and_writes_run_json(tmp_path):
    gold = write_crag_gold(tmp_path / "validation.jsonl")
    summary = run_eval(_cfg(tmp_path), _req(gold, "seq", scripted(answers=ANSWERS, fail_ids=FAIL)))
    run_uri = summary["run_uri"]
    records = read_records(ObjectStore(), run_uri)
    assert sorted(r["sample_id"] for r in records) == sorted(IDS)
    by_id = {r["sample_id"]: r for r in records}
    assert by_id["q3"]["status"] == "error" and "scripted failure on sample q3" in by_id["q3"]["error"]
    assert all(by_id[i]["status"] == "ok" for i in IDS if i != "q3")  # the failure took no neighbour down
    assert by_id["q1"]["scores"]["correct"] is False and by_id["q2"]["scores"]["missing"] is True
    assert by_id["q5"]["egocentric"] is True and by_id["q4"]["egocentric"] is False
    # by hand: 11 scored; correct = 11 - q1 - q2 = 9, missing 1, hallucination 1
    agg = summary["aggregate"]["all"]
    assert (agg["n"], agg["accuracy"], agg["missing"]) == (11, 9 / 11, 1 / 11)
    assert agg["truthfulness"] == pytest.approx((2 * 9 + 1) / 11 - 1)
    # egocentric = odd ids without q1, q3: q5 q7 q9 q11 correct, q1 wrong -> 4/5
    assert summary["aggregate"]["ego"]["accuracy"] == pytest.approx(4 / 5)
    meta = read_run_meta(ObjectStore(), run_uri)
    assert meta["benchmark"] == "crag_mm" and meta["mode"] == "full" and meta["index_version"] == "none"
    assert meta["decode"]["mode"] == "full" and len(meta["config_hash"]) == 16
    assert summary["errors"] == 1 and summary["written"] == 12


def test_interrupted_run_resumes_without_duplicates(tmp_path):
    gold = write_crag_gold(tmp_path / "validation.jsonl")
    cfg = _cfg(tmp_path)
    with pytest.raises(KeyboardInterrupt):  # batches of 3: the 3rd batch dies on its 2nd sample
        run_eval(cfg, _req(gold, "resume", scripted(answers=ANSWERS, interrupt_after=7)))
    store = ObjectStore()
    first = read_records(store, str(tmp_path / "out" / "runs" / "resume"))
    assert sorted(r["sample_id"] for r in first) == IDS[:6]  # two whole batches survived the kill
    wider = cfg.model_copy(update={"ray": RayConfig(num_replicas=4, batch_size=5)})  # layout is not identity
    again = run_eval(wider, _req(gold, "resume", scripted(answers=ANSWERS)))
    assert (again["skipped"], again["written"]) == (6, 6)
    ids = [r["sample_id"] for r in read_records(store, again["run_uri"])]
    assert Counter(ids) == Counter(IDS)  # every id exactly once
    with pytest.raises(ValueError, match="different settings"):  # same run id, other mode: refused
        run_eval(cfg, _req(gold, "resume", scripted(), mode="no_search"))


@pytest.mark.ray
def test_ray_run_equals_sequential_and_resumes(tmp_path, ray_session):
    gold = write_crag_gold(tmp_path / "validation.jsonl")
    cfg = _cfg(tmp_path)
    spec = scripted(answers=ANSWERS, fail_ids=FAIL)
    seq = run_eval(cfg, _req(gold, "seq", spec))
    # a Ray run that picks up a half-done run: 4 samples done in process, the rest on the actor pool
    with pytest.raises(KeyboardInterrupt):
        run_eval(cfg, _req(gold, "ray", scripted(answers=ANSWERS, fail_ids=FAIL, interrupt_after=4)))
    ray_run = run_eval(cfg, _req(gold, "ray", spec, sequential=False))
    assert ray_run["skipped"] > 0 and ray_run["skipped"] + ray_run["written"] == 12
    store = ObjectStore()
    seq_records = read_records(store, seq["run_uri"])
    ray_records = read_records(store, ray_run["run_uri"])
    assert Counter(r["sample_id"] for r in ray_records) == Counter(IDS)
    assert strip_volatile(ray_records) == strip_volatile(seq_records)
    replicas = {r["replica"] for r in ray_records if r["replica"] != "local"}
    assert 1 <= len(replicas) <= cfg.ray.num_replicas
    assert json.dumps(ray_run["aggregate"], sort_keys=True) == json.dumps(seq["aggregate"], sort_keys=True)


def test_bad_runner_target_fails_before_any_record(tmp_path):
    gold = write_crag_gold(tmp_path / "validation.jsonl")
    with pytest.raises(ValueError, match="has no 'Nope'"):
        run_eval(
            _cfg(tmp_path),
            _req(
                gold,
                "bad",
                scripted().__class__("pixsearch_core.evaluation.scripted_runner:Nope", {}),
                sequential=False,
            ),
        )
    assert not (tmp_path / "out" / "runs" / "bad").exists()
