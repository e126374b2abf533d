"""Run records: append, resume without duplicates, JSON columns, metadata guard; on every backend."""

from __future__ import annotations

import pytest

from pixsearch_core.records import RecordWriter, done_ids, read_records, read_run_meta, run_dir


def test_write_resume_no_duplicates(store):
    run = run_dir(store.root, "r1")
    meta = {"model": "tiny", "index_version": "v1", "config_hash": "abc"}
    w = RecordWriter(store, run, meta=meta, flush_every=3)
    for i in range(7):
        assert w.write({"sample_id": i, "answer": f"a{i}", "trajectory": {"searches": [i, i + 1]}})
    w.flush()
    # a "crash" now: a new writer must see the 7 done ids and refuse to write them again
    w2 = RecordWriter(store, run, meta=meta, flush_every=100)
    assert w2.done == {str(i) for i in range(7)}
    assert not w2.write({"sample_id": 3, "answer": "dup"})
    assert w2.write({"sample_id": 7, "answer": "a7", "trajectory": None})
    w2.close()
    rows = read_records(store, run)
    assert sorted(r["sample_id"] for r in rows) == [str(i) for i in range(8)]
    by_id = {r["sample_id"]: r for r in rows}
    assert by_id["2"]["trajectory"] == {"searches": [2, 3]} and by_id["7"]["trajectory"] is None
    assert by_id["3"]["answer"] == "a3"
    assert done_ids(store, run) == {str(i) for i in range(8)}
    assert read_run_meta(store, run) == meta


def test_unflushed_buffer_is_not_visible(store):
    run = run_dir(store.root, "r2")
    w = RecordWriter(store, run, flush_every=10)
    w.write({"sample_id": "a"})
    assert done_ids(store, run) == set()
    w.close()
    assert done_ids(store, run) == {"a"}


def test_meta_mismatch_is_refused(store):
    run = run_dir(store.root, "r3")
    RecordWriter(store, run, meta={"model": "tiny"})
    with pytest.raises(ValueError, match="different settings"):
        RecordWriter(store, run, meta={"model": "mini"})


def test_bad_inputs(local_store):
    with pytest.raises(ValueError, match="bad run id"):
        run_dir(local_store.root, "a/b")
    w = RecordWriter(local_store, run_dir(local_store.root, "r4"))
    with pytest.raises(KeyError, match="sample_id"):
        w.write({"id": 1})
