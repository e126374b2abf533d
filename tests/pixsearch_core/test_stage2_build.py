"""Stage-2 data construction against a real local chat-completions server: retries and the cache, resume after a
kill, evidence equal to what the retriever returns, quarantine with reasons, the funnel; and the offline SynthCRAG
path (rule-based stand-in) whose verified trajectories equal the world's own gold trajectories."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from pixsearch_core.config import validate_config
from pixsearch_core.decoding.queries import format_information
from pixsearch_core.retrieval.types import TextQuery
from pixsearch_core.stage2.build import build_stage2
from pixsearch_core.stage2.config import Stage2Config
from pixsearch_core.stage2.llm import ChatClient, LLMConfig, LLMError
from pixsearch_core.storage import ObjectStore
from tests.search_fixtures import tiny_index
from tests.stage2_fakes import FakeLLM, write_okvqa

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROMPTS = os.path.join(ROOT, "conf", "data", "prompts", "stage2")


@pytest.fixture
def llm():
    server = FakeLLM()
    yield server
    server.close()


@pytest.fixture
def data(tmp_path):
    return {"okvqa": write_okvqa(tmp_path / "okvqa"), "index": tiny_index(tmp_path)}


def _cfg(tmp_path, data, llm_url, **over) -> Stage2Config:
    raw = {
        "output": str(tmp_path / "stage2"),
        "prompts": PROMPTS,
        "sources": [{"reader": "okvqa", "path": str(data["okvqa"]), "images": str(data["okvqa"] / "images")}],
        "llm": {
            "kind": "openai",
            "base_url": llm_url,
            "model": "fake",
            "backoff_s": 0.01,
            "timeout_s": 2,
            "price_in_per_mtok": 1.0,
            "price_out_per_mtok": 2.0,
        },
        "retrieval": {"retriever": {"kind": "index", "uri": data["index"], "k": 2}, "max_passage_tokens": 64},
        "n_candidates": 3,
        "batch_size": 2,
    }
    return validate_config(Stage2Config, raw, overrides=[f"{k}={v}" for k, v in over.items()])


def _records(path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def test_client_retries_then_caches(tmp_path, llm):
    store = ObjectStore()
    client = ChatClient(
        LLMConfig(base_url=llm.url, model="fake", backoff_s=0.01, timeout_s=1, max_retries=5),
        store,
        str(tmp_path / "cache"),
    )
    llm.faults = [("429", 0), ("500",), ("slow", 1.5), ("badjson",)]
    msg = [{"role": "user", "content": "Break the question\nQuestion: What is the tea item2 known for?"}]
    reply = client.chat(msg, temperature=0.0)
    assert reply.text.startswith("1) What is the tea item2") and not reply.cached
    assert llm.requests == 5 and client.usage.calls == 5 and client.usage.completion_tokens == 20
    again = client.chat(msg, temperature=0.0)  # the cache answers: no request
    assert again.cached and again.text == reply.text and llm.requests == 5
    llm.faults = [("400",)]
    with pytest.raises(LLMError, match="HTTP 400"):  # not retried
        client.chat([{"role": "user", "content": "Break the x\nQuestion: other"}])
    assert llm.requests == 6


def test_build_funnel_evidence_and_rerun_costs_nothing(tmp_path, llm, data):
    cfg = _cfg(tmp_path, data, llm.url)
    manifest = build_stage2(cfg)
    recs = _records(tmp_path / "stage2" / "train.jsonl")
    quarantine = _records(tmp_path / "stage2" / "quarantine.jsonl")
    total = manifest["funnel"]["total"]
    assert total["read"] == 6 and total["selected"] == 5 and total["verified"] == len(recs) == 4
    assert {q["id"]: q["reached"] for q in quarantine} == {"okvqa/1004": "searched", "okvqa/1005": "read"}
    reasons = {q["id"]: q["reason"] for q in quarantine}
    assert "does not name ['Zebra']" in reasons["okvqa/1004"] and "is not kept" in reasons["okvqa/1005"]
    assert manifest["llm_usage"]["calls"] > 0 and manifest["llm_usage"]["cost_usd"] > 0
    # every evidence block is exactly what the retriever returns for the query, formatted as the decoder does
    from indexing.searcher import ShardedSearcher
    from pixsearch_core.modeling.build import tiny_tokenizer

    searcher, tok = ShardedSearcher(data["index"]), tiny_tokenizer()
    for r in recs:
        blocks = re.findall(r"<search>(.*?)</search>(<information>.*?</information>)", r["response"], re.S)
        assert len(blocks) == len(r["queries"]) == 1 and r["query_types"] == ["TEXT"]
        for (payload, info), query in zip(blocks, r["queries"]):
            assert payload == query
            assert info == format_information(searcher.search(TextQuery(query), 2), tok, 2, 64)
        assert r["llm"] == "fake via " + llm.url and r["prompt_version"].startswith("sha256:")
    # a rerun of the finished build makes no request at all; deleting the parts re-asks only the cache
    before = llm.requests
    build_stage2(cfg)
    for p in (tmp_path / "stage2" / "parts").iterdir():
        p.unlink()
    again = build_stage2(cfg)
    assert llm.requests == before and again["llm_usage"]["calls"] == 0 and again["llm_usage"]["cache_hits"] > 0
    assert _records(tmp_path / "stage2" / "train.jsonl") == recs


def test_changed_config_cannot_reuse_the_output(tmp_path, llm, data):
    build_stage2(_cfg(tmp_path, data, llm.url))
    with pytest.raises(ValueError, match="another config"):
        build_stage2(_cfg(tmp_path, data, llm.url, n_candidates=4))


def test_resume_after_kill_has_no_duplicates_and_loses_nothing(tmp_path, data):
    slow = FakeLLM(delay_s=0.05)
    try:
        cfg = _cfg(tmp_path, data, slow.url, batch_size=1)
        conf = tmp_path / "stage2.json"
        conf.write_text(cfg.model_dump_json())
        env = {**os.environ, "PYTHONPATH": ROOT}
        cmd = [sys.executable, "-m", "jobs.cli", "data", "build-stage2", "--config", str(conf)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        parts = tmp_path / "stage2" / "parts"
        deadline = time.time() + 120
        while time.time() < deadline and len(list(parts.glob("part-*.jsonl")) if parts.exists() else []) < 2:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = len(list(parts.glob("part-*.jsonl")))
        assert 2 <= done < 6, done  # killed mid-run
        assert not (tmp_path / "stage2" / "manifest.json").exists()
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
    finally:
        slow.close()
    manifest = json.loads((tmp_path / "stage2" / "manifest.json").read_text())
    ids = [r["id"] for r in _records(tmp_path / "stage2" / "train.jsonl")]
    quarantined = [q["id"] for q in _records(tmp_path / "stage2" / "quarantine.jsonl")]
    assert len(ids) == len(set(ids)) == 4 and len(ids) + len(quarantined) == 6
    assert sorted(ids + quarantined) == sorted(f"okvqa/{1000 + i}" for i in range(6))
    assert manifest["funnel"]["total"]["read"] == 6


@pytest.mark.ray
def test_ray_engine_writes_the_same_records(tmp_path, llm, data):
    seq = build_stage2(_cfg(tmp_path / "a", data, llm.url))
    ray = build_stage2(_cfg(tmp_path / "b", data, llm.url, engine="ray", ray_workers=2))
    assert seq["files"]["train.jsonl"] == ray["files"]["train.jsonl"]
    assert seq["funnel"] == ray["funnel"]


def test_synthcrag_offline_matches_the_worlds_gold_trajectories(tmp_path):
    """The rule-based stand-in on a SynthCRAG world, searching the world's real index (MiniLM + DINOv2): every
    trajectory it keeps is byte-for-byte the world's own gold trajectory of that question (same searches, same
    evidence as the decoder formats it), and stage-2 training reads every one of them."""
    from indexing.build import build_index
    from indexing.config import IndexBuildConfig
    from pixsearch_core.config import load_config
    from pixsearch_core.training.readers.chat import read
    from pixsearch_core.training.readers.common import Rejected
    from tests._train_fixtures import write_world

    world = write_world(str(tmp_path / "world"))
    build_index(
        load_config(
            IndexBuildConfig,
            os.path.join(ROOT, "conf", "index", "synthcrag.yaml"),
            [
                f"output={tmp_path}/store",
                "engine=sequential",
                f"cache_dir={tmp_path}/cache",
                f"sources=[{{kind: jsonl, path: {world}/corpus/docs.jsonl}}]",
            ],
        )
    )
    cfg = load_config(
        Stage2Config,
        os.path.join(ROOT, "conf", "data", "stage2-synthcrag.yaml"),
        [
            f"output={tmp_path}/stage2",
            f"sources=[{{reader: synthcrag, path: {world}}}]",
            f"retrieval.retriever.uri={tmp_path}/store/indices/synthcrag",
            f"prompts={PROMPTS}",
        ],
    )
    manifest = build_stage2(cfg)
    gold = {f"synthcrag/{r['interaction_id']}": r for r in _records(os.path.join(world, "benchmark", "train.jsonl"))}
    recs = _records(tmp_path / "stage2" / "train.jsonl")
    funnel = manifest["funnel"]["total"]
    # the config keeps SynthCRAG's no-search questions too (colour: Attribute, count: Counting)
    assert funnel["read"] == len(gold) and funnel["selected"] == len(gold) and funnel["verified"] == len(recs) > 0
    plain = [r for r in recs if gold[r["id"]]["question_type"] == "no_search"]
    assert plain and all(not r["queries"] and "<search>" not in r["response"] for r in plain)
    assert {r["question_type"] for r in plain} == {"Visual Reasoning - Attribute", "Visual Reasoning - Counting"}
    for r in plain:
        assert (r["question_type"] == "Visual Reasoning - Counting") == r["question"].startswith("How many")
    assert any(gold[r["id"]]["question_type"] != "no_search" for r in recs)  # and searching ones, for real
    assert manifest["backend"] == "rule-based (no LLM)" and manifest["llm_usage"] == {}
    for r in recs:
        assert r["response"] == gold[r["id"]]["response"], r["id"]
        assert r["query_types"] == gold[r["id"]]["query_types"] and r["llm"].startswith("rule-based (no LLM)")
    samples = list(read("trajectories", ObjectStore(), str(tmp_path / "stage2" / "train.jsonl")))
    assert len(samples) == len(recs) and not any(isinstance(s, Rejected) for s in samples)
    regions = [s for s in samples if "REGION" in s.query_types]
    assert regions and all(s.spans for s in regions)  # the entity span is found for the mask loss
