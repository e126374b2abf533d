"""`pixsearch data build-stage2`: stage-2 trajectories from training splits, in parts, resumable, on Ray or not.

    <output>/parts/part-000000.jsonl   one part per batch of `batch_size` questions (in source order): a line per
                                       question (its record, or the stage it dropped out at and why) and a usage
                                       line; written atomically when the batch is done, so a killed run resumes
                                       at the first missing part and never writes a question twice
    <output>/train.jsonl               every verified record, in order (what stage-2 training and the training
                                       DAG's sensor read); written after the last part
    <output>/quarantine.jsonl          every question that did not make it, with its stage and reason
    <output>/manifest.json             written last: funnel per source (read -> selected -> decomposed ->
                                       generated -> refined -> assigned -> searched -> verified), LLM usage and
                                       cost, the backend (an LLM or the rule-based stand-in), prompt version,
                                       config hash, code version, sha256 of every file

Items are split into batches on the driver; a worker (this process, or one Ray actor each) builds its backend,
searcher and tokenizer once and turns a batch into a part.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from tqdm import tqdm

from pixsearch_core import lineage
from pixsearch_core.jsonl import parse_jsonl
from pixsearch_core.stage2.backends import LLMBackend, RuleBackend, prompt_version
from pixsearch_core.stage2.config import Stage2Config
from pixsearch_core.stage2.llm import cost_usd
from pixsearch_core.stage2.sources import Bad, Item, read_source
from pixsearch_core.stage2.steps import STAGES, Builder, Outcome
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)


def _part_uri(cfg: Stage2Config, b: int) -> str:
    return join(cfg.output, "parts", f"part-{b:06d}.jsonl")


def _tokenizer(name: str):
    if name == "tiny":
        from pixsearch_core.modeling.build import tiny_tokenizer

        return tiny_tokenizer()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


class Worker:
    """Builds parts. Constructed once per process (or per Ray actor) from the config as JSON."""

    def __init__(self, cfg_json: str):
        from pixsearch_core.retrieval.backends import make_retriever

        self.cfg = Stage2Config.model_validate_json(cfg_json)
        self.store = ObjectStore(self.cfg.storage)
        if self.cfg.llm.kind == "rule_based":
            backend = RuleBackend()
        elif self.cfg.llm.kind == "openai":
            backend = LLMBackend(self.cfg, self.store, self.cfg.llm.cache or join(self.cfg.output, "llm-cache"))
        else:
            raise ValueError(f"llm.kind {self.cfg.llm.kind!r}; allowed: openai, rule_based")
        r = self.cfg.retrieval
        searcher = make_retriever(r.retriever, self.store)
        self.builder = Builder(self.cfg, backend, searcher, _tokenizer(r.tokenizer), self.store)
        self.builder.prompt_version = (
            "none (rule-based)" if self.cfg.llm.kind == "rule_based" else prompt_version(self.cfg.prompts)
        )

    def part(self, b: int, items: list[Item]) -> bytes:
        client = getattr(self.builder.backend, "client", None)
        before = client.usage.as_dict() if client else {}
        lines = []
        for item in items:
            out = self.builder.build(item)
            lines.append({"kind": "outcome", **asdict(out)})
        after = client.usage.as_dict() if client else {}
        lines.append({"kind": "usage", "batch": b, **{k: after[k] - before.get(k, 0) for k in after}})
        return "".join(json.dumps(x, sort_keys=True, ensure_ascii=False) + "\n" for x in lines).encode()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:  # the Ray Data actor interface
        parts = [
            self.part(int(b), [Item(**i) for i in json.loads(str(js))]) for b, js in zip(batch["b"], batch["items"])
        ]
        return {"b": list(batch["b"]), "part": [p.decode() for p in parts]}


def _items(cfg: Stage2Config, store: ObjectStore) -> tuple[list[Item], list[Bad]]:
    items, bad = [], []
    for src in cfg.sources:
        for it in read_source(src, store, join(cfg.output, "scratch")):
            (items if isinstance(it, Item) else bad).append(it)
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"duplicate item ids across sources (first: {dup}); give each source once")
    return items, bad


def _batches(items: list[Item], size: int) -> list[list[Item]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _run_sequential(cfg: Stage2Config, todo: dict[int, list[Item]]) -> Iterator[tuple[int, bytes]]:
    worker = Worker(cfg.model_dump_json()) if todo else None
    for b, items in todo.items():
        yield b, worker.part(b, items)


def _run_ray(cfg: Stage2Config, todo: dict[int, list[Item]]) -> Iterator[tuple[int, bytes]]:
    import ray
    from ray.data import ActorPoolStrategy

    from pixsearch_core.engines import RayConfig, init_ray, shutdown_ray

    started = init_ray(RayConfig(address=cfg.ray_address))
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        rows = [{"b": b, "items": json.dumps([asdict(i) for i in items])} for b, items in todo.items()]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        ds = ds.map_batches(
            Worker,
            fn_constructor_kwargs={"cfg_json": cfg.model_dump_json()},
            batch_size=1,
            compute=ActorPoolStrategy(size=min(cfg.ray_workers, len(rows))),
            num_cpus=cfg.ray_cpus_per_worker,
            batch_format="numpy",
        )
        for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for b, part in zip(out["b"], out["part"]):
                yield int(b), str(part).encode()
    finally:
        shutdown_ray(started)


def build_stage2(cfg: Stage2Config, store: ObjectStore | None = None, max_parts: int | None = None) -> dict:
    """Build (or resume) the trajectories; returns the manifest. `max_parts` stops after that many new parts
    (what a killed run looks like; the next call resumes)."""
    store = store or ObjectStore(cfg.storage)
    _claim_output(cfg, store)
    items, bad = _items(cfg, store)
    batches = _batches(items, cfg.batch_size)
    todo = {b: its for b, its in enumerate(batches) if not store.exists(_part_uri(cfg, b))}
    log.info(
        "stage-2 build: %d questions (%d unreadable) in %d parts, %d to do, engine %s",
        len(items),
        len(bad),
        len(batches),
        len(todo),
        cfg.engine,
    )
    run = _run_ray if cfg.engine == "ray" and todo else _run_sequential
    t0, done_new = time.time(), 0
    with tqdm(total=sum(len(v) for v in todo.values()), desc="stage-2 questions", unit="q") as bar:
        for b, part in run(cfg, todo):
            store.put_bytes(_part_uri(cfg, b), part)
            bar.update(len(batches[b]))
            done_new += 1
            if max_parts is not None and done_new >= max_parts:
                raise KeyboardInterrupt(f"stopped after {done_new} parts (max_parts)")
    log.info("stage-2 build: %d parts in %.1fs", done_new, time.time() - t0)
    return _assemble(cfg, store, len(batches), bad)


def _claim_output(cfg: Stage2Config, store: ObjectStore) -> None:
    """Parts of a different config must never be mixed in: build.json pins the output to one config."""
    uri = join(cfg.output, "build.json")
    want = {"config_hash": cfg.config_hash()}
    if store.exists(uri):
        have = json.loads(store.get_bytes(uri))
        if have.get("config_hash") != want["config_hash"]:
            raise ValueError(
                f"{cfg.output} holds a stage-2 build of another config (config hash "
                f"{have.get('config_hash')} != {want['config_hash']}): use a new output or delete it"
            )
        return
    store.put_bytes(uri, json.dumps({**want, "config": cfg.model_dump(mode="json")}, indent=2).encode())


def _assemble(cfg: Stage2Config, store: ObjectStore, n_parts: int, bad: list[Bad]) -> dict:
    records, quarantine, usage = [], [asdict(x) | {"reached": "unreadable"} for x in bad], {}
    funnel: dict[str, dict[str, int]] = {}
    parts: dict[str, str] = {}  # name -> sha256, from the same read that is tallied
    for b in range(n_parts):
        data = store.get_bytes(_part_uri(cfg, b))
        parts[f"part-{b:06d}.jsonl"] = hashlib.sha256(data).hexdigest()
        for _, line in parse_jsonl(data, _part_uri(cfg, b)):
            if line["kind"] == "usage":
                for k, v in line.items():
                    if k not in ("kind", "batch"):
                        usage[k] = usage.get(k, 0) + v
                continue
            out = Outcome(**{k: v for k, v in line.items() if k != "kind"})
            counts = funnel.setdefault(out.source, dict.fromkeys(STAGES, 0))
            for stage in STAGES[: STAGES.index(out.reached) + 1]:
                counts[stage] += 1
            if out.record:
                records.append(out.record)
            else:
                quarantine.append(
                    {"id": out.item_id, "source": out.source, "reached": out.reached, "reason": out.reason}
                )
    total = {s: sum(c[s] for c in funnel.values()) for s in STAGES}
    jsonl = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records).encode()
    qjsonl = "".join(json.dumps(q, sort_keys=True, ensure_ascii=False) + "\n" for q in quarantine).encode()
    files = {
        "train.jsonl": store.put_bytes(join(cfg.output, "train.jsonl"), jsonl),
        "quarantine.jsonl": store.put_bytes(join(cfg.output, "quarantine.jsonl"), qjsonl),
    }
    if cfg.llm.kind == "openai":
        usage["cost_usd"] = cost_usd(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0), cfg.llm)
    manifest = {
        "records": len(records),
        "quarantined": len(quarantine),
        "funnel": {"total": total, **funnel},
        "backend": "rule-based (no LLM)" if cfg.llm.kind == "rule_based" else f"llm {cfg.llm.model}",
        "llm_usage": usage,
        "prompt_version": prompt_version(cfg.prompts),
        "config_hash": cfg.config_hash(),
        "code": lineage.code_version(),
        "files": files,
        "parts": parts,
    }
    store.put_bytes(join(cfg.output, "manifest.json"), json.dumps(manifest, indent=2, sort_keys=True).encode())
    log.info("stage-2 funnel: %s", " -> ".join(f"{s} {total[s]}" for s in STAGES))
    return manifest
