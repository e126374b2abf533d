"""Eval records that never double-count (issue 19, item 9): one driver per run (lease, on every storage backend),
records read deduplicated by sample_id, search failures recorded as errors and retried on resume (bounded), a
damaged records part skipped and reported, the index version pinned once per run."""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections import Counter

import pytest

from pixsearch_core.evaluation.config import EvalRunConfig, RayConfig
from pixsearch_core.evaluation.driver import RunRequest, pinned_retriever, run_eval, runner_spec
from pixsearch_core.evaluation.lease import LeaseHeld, LeaseLost, RunLease
from pixsearch_core.records import RecordWriter, done_ids, read_records, run_dir, scan_records
from pixsearch_core.retrieval.backends import RetrieverConfig
from pixsearch_core.storage import ObjectStore, join
from tests.eval_run_helpers import scripted, write_crag_gold

IDS = [f"q{i}" for i in range(12)]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_one_lease_per_run_expiry_takeover_and_release(store):
    run = run_dir(store.root, "leased")
    clock = Clock()
    with cf.ThreadPoolExecutor(6) as pool:  # six drivers race for a fresh run: exactly one gets it
        tries = list(pool.map(lambda _: _try_acquire(store, run, clock), range(6)))
    winners = [lease for lease in tries if lease is not None]
    assert len(winners) == 1
    first = winners[0]
    with pytest.raises(LeaseHeld, match=r"is being run by .* \(lease valid 60 s more\)"):
        RunLease(store, run, ttl_s=60, clock=clock).acquire()
    first._stop.set()  # the first driver "dies": no more heartbeats
    clock.now += 61
    second = RunLease(store, run, ttl_s=60, clock=clock).acquire()  # the dead driver's run is taken over
    assert second.generation == first.generation + 1
    with pytest.raises(LeaseLost):  # the zombie wakes up: it may not write any more
        first.check()
    second.check()
    second.release()
    third = RunLease(store, run, ttl_s=60, clock=clock).acquire()  # a released lease is free at once
    assert (first.generation, third.generation) == (0, 2)
    third.release()
    store.put_bytes(join(run, "lease", f"{3:010d}.json"), b"{damaged")  # an unreadable lease counts as expired
    assert RunLease(store, run, ttl_s=60, clock=clock).acquire().generation == 4


def _try_acquire(store, run, clock):
    try:
        return RunLease(store, run, ttl_s=60, clock=clock).acquire()
    except LeaseHeld:
        return None


def test_lease_renews_by_heartbeat(local_store):
    run = run_dir(local_store.root, "hb")
    with RunLease(local_store, run, ttl_s=1.5) as lease:
        time.sleep(4)  # several ttls: the heartbeat (every ttl/3) keeps it alive
        lease.check()
        with pytest.raises(LeaseHeld):
            RunLease(local_store, run, ttl_s=1.5).acquire()


def test_records_are_deduplicated_and_a_damaged_part_is_skipped(store):
    run = run_dir(store.root, "raced")
    racers = [RecordWriter(store, run, flush_every=2) for _ in range(2)]  # two writers without a lease,
    for w, answer in zip(racers, ("first", "second")):  # both opened before either wrote: each writes all
        w.write_many({"sample_id": i, "status": "ok", "answer": f"{answer}{i}"} for i in range(5))
        w.close()
    w = RecordWriter(store, run, flush_every=10)
    w.write_many([{"sample_id": 7, "status": "error", "error": "boom"}, {"sample_id": 8, "status": "ok"}])
    w.close()
    scan = scan_records(store, run)
    assert sorted(r["sample_id"] for r in scan.records) == ["0", "1", "2", "3", "4", "7", "8"]
    assert scan.duplicates == 5 and len(list(store.list(join(run, "records")))) == 7
    assert all(r["answer"] in (f"first{r['sample_id']}", f"second{r['sample_id']}") for r in scan.records[:5])
    assert done_ids(store, run, max_attempts=3) == {"0", "1", "2", "3", "4", "8"}  # 7 is to be retried
    assert "7" in done_ids(store, run, max_attempts=1)
    part = sorted(u for u in store.list(join(run, "records")))[0]
    store.put_bytes(part, store.get_bytes(part)[:40])  # a truncated part
    scan = scan_records(store, run)
    assert scan.damaged == [part] and len(scan.records) == 7  # its samples still have their other copies
    assert len(read_records(store, run)) == 7


def _cfg(tmp_path, **over) -> EvalRunConfig:
    return EvalRunConfig(output=str(tmp_path / "out"), ray=RayConfig(batch_size=3), flush_every=2, **over)


def _req(gold, run_id, spec, index="none"):
    return RunRequest("crag_mm", str(gold), "scripted", index, "full", run_id, True, spec)


def test_search_failures_are_errors_and_are_retried_on_resume_up_to_max_attempts(tmp_path):
    gold = write_crag_gold(tmp_path / "validation.jsonl")
    outage = {"q4": [{"modality": "text", "text": "x", "evidence_ids": [], "error": "search_failed"}]}
    cfg = _cfg(tmp_path, max_attempts=3)
    first = run_eval(cfg, _req(gold, "retry", scripted(searches=outage, fail_ids=["q3"])))
    by_id = {r["sample_id"]: r for r in read_records(ObjectStore(), first["run_uri"])}
    assert by_id["q4"]["status"] == "error" and "search backend failed on 1 of 1 searches" in by_id["q4"]["error"]
    assert first["errors"] == 2 and first["aggregate"]["all"]["n"] == 10  # the outage is not scored as wrong
    second = run_eval(cfg, _req(gold, "retry", scripted(fail_ids=["q3"])))  # backend is back; q3 still fails
    assert (second["skipped"], second["written"], second["retried"]) == (10, 2, 2)
    by_id = {r["sample_id"]: r for r in read_records(ObjectStore(), second["run_uri"])}
    assert by_id["q4"]["status"] == "ok" and by_id["q3"]["status"] == "error"
    third = run_eval(cfg, _req(gold, "retry", scripted(fail_ids=["q3"])))
    assert third["written"] == 1  # q3's third and last attempt
    fourth = run_eval(cfg, _req(gold, "retry", scripted(fail_ids=["q3"])))
    assert fourth["written"] == 0 and fourth["skipped"] == 12  # bounded: q3 failed max_attempts times
    assert len(read_records(ObjectStore(), first["run_uri"])) == 12


def test_a_damaged_part_is_reported_and_its_samples_run_again(tmp_path):
    gold = write_crag_gold(tmp_path / "validation.jsonl")
    cfg = _cfg(tmp_path)
    first = run_eval(cfg, _req(gold, "dmg", scripted()))
    store = ObjectStore()
    part = sorted(store.list(join(first["run_uri"], "records")))[1]
    lost = {r["sample_id"] for r in store.read_parquet(part).to_pylist()}
    store.put_bytes(part, b"PAR1 not really")
    again = run_eval(cfg, _req(gold, "dmg", scripted()))
    assert again["damaged_parts"] == [part] and again["written"] == len(lost) == 2
    ids = [r["sample_id"] for r in read_records(store, again["run_uri"])]
    assert Counter(ids) == Counter(IDS)


def test_index_version_is_pinned_once_per_run(tmp_path):
    store = ObjectStore()
    index = str(tmp_path / "indices" / "wiki")
    store.put_bytes(join(index, "CURRENT"), b"v1\n")
    gold = write_crag_gold(tmp_path / "validation.jsonl")
    cfg = _cfg(tmp_path)
    first = run_eval(cfg.model_copy(update={"limit": 6}), _req(gold, "pin", scripted(), index=index))
    assert first["index_version"] == "v1"
    store.put_bytes(join(index, "CURRENT"), b"v2\n")  # a publish while the run is unfinished
    resumed = run_eval(cfg, _req(gold, "pin", scripted(), index=index))  # not refused: it stays on v1
    assert resumed["index_version"] == "v1" and resumed["written"] == 6
    r = RetrieverConfig(kind="index", uri=index)
    version, pinned = pinned_retriever(store, r, resumed["run_uri"])
    assert (version, pinned.uri) == ("v1", join(index, "v1"))
    version, pinned = pinned_retriever(store, r, str(tmp_path / "out" / "runs" / "new"))
    assert (version, pinned.uri) == ("v2", join(index, "v2"))
    model_req = RunRequest("crag_mm", str(gold), "tiny", index, "full", "pin", True)
    spec = runner_spec(model_req, cfg, r.model_copy(update={"uri": join(index, "v1")}))
    assert spec.kwargs["retriever"]["uri"] == join(index, "v1")  # what the replicas open
