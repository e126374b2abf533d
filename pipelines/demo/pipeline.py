"""The demo pipeline: every step is one of the real jobs, run as its own `pixsearch` process (as a user or Airflow
would run it), and every step resumes: a re-run skips what is finished.

    world     SynthCRAG world (corpus, stage-1/2 data, benchmark)      <out>/world
    index     pixsearch index build (Spark local[*])                     <out>/store/indices/synthcrag
              (demo-summary.json records a sha256 of the world tree and of the index content (`index_digest`:
              every shard file's sha256): equal digests = the same world and index, bit for bit, at any path)
    retrieval region vs whole-image vs text hit@k with gold masks       <out>/report/retrieval.{json,md}
    train     pixsearch train --stage 1, then --stage 2 (DeepSpeed)      <out>/train
    eval      pixsearch eval run, one run per mode (Ray)                 <out>/eval/runs/<run_id>
    report    pixsearch eval report (tables, Figure 4, overlays)        <out>/report
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from pipelines.demo.config import DemoConfig
from pixsearch_core.storage import ObjectStore

log = logging.getLogger(__name__)

STEPS = ("world", "index", "retrieval", "train", "eval", "report")


def tree_sha256(root: Path) -> str:
    """One digest of every file under `root` (relative paths and contents): equal iff the trees are equal."""
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(root)).encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def index_digest(manifest: dict[str, Any]) -> str:
    """One digest of what an index holds: every shard's objects (sha256 of index, embeddings, document store),
    encoders, FAISS factories and counts. Not when, how fast, how (reused embeddings, quantizer) or from which path
    it was built (the version name,
    build/config hashes and the sources' paths name the location), so equal worlds give equal digests anywhere."""
    how = ("embeddings", "quantizer")  # how it was built (reuse counts, the store's path, quantizer diagnostics)
    content = {
        "indices": {k: {f: v for f, v in idx.items() if f not in how} for k, idx in manifest["indices"].items()},
        "counts": manifest["corpus"]["counts"],
        "rejects": {k: manifest["rejects"].get(k) for k in ("total", "by_reason")},
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _pixsearch(step: str, *args: str) -> str:
    """Run `pixsearch ARGS` as its own process (the runner the Airflow DAGs use; it logs the command and its
    time); returns its stdout. A non-zero exit raises `pipelines.steps.JobFailed` naming the command."""
    from pipelines.steps import run_pixsearch

    log.info("[%s]", step)
    return run_pixsearch(list(args))


class Demo:
    def __init__(self, cfg: DemoConfig):
        self.cfg = cfg
        self.out = Path(cfg.output).resolve()
        self.world = str(self.out / "world")
        self.index = str(self.out / "store" / "indices" / "synthcrag")
        self.train_store = str(self.out / "train" / "store")
        self.eval_out = str(self.out / "eval")
        self.report = self.out / "report"
        self.store = ObjectStore()

    # ------------------------------------------------------------------ steps
    def step_world(self) -> dict[str, Any]:
        from pixsearch_core.synthcrag import generate_world
        from pixsearch_core.synthcrag.write import FORMAT, OPTIONAL_META, write_synthcrag

        meta_path = Path(self.world) / "world.json"
        want = {
            "config": self.cfg.world.model_dump(),
            "scenes_per_entity": self.cfg.scenes_per_entity,
            "questions_per_scene": self.cfg.questions_per_scene,
            "refer_scenes_per_entity": self.cfg.refer_scenes_per_entity,
            "unanswerable_share": self.cfg.unanswerable_share,
            "evidence_first_share": self.cfg.evidence_first_share,
            "visual_questions_per_scene": self.cfg.visual_questions_per_scene,
            "fact_tails": self.cfg.fact_tails,
            "format": FORMAT,
        }
        # a world records an option added after its format only when it is not the default (OPTIONAL_META)
        meta = {**OPTIONAL_META, **json.loads(meta_path.read_text())} if meta_path.is_file() else {}
        if meta and {k: meta.get(k) for k in want} == want:
            log.info("[world] %s is up to date: %s", self.world, meta["counts"])
            counts = meta["counts"]
        else:
            counts = write_synthcrag(
                generate_world(self.cfg.world),
                self.world,
                self.store,
                self.cfg.scenes_per_entity,
                self.cfg.questions_per_scene,
                evidence_first_share=self.cfg.evidence_first_share,
                refer_scenes_per_entity=self.cfg.refer_scenes_per_entity,
                unanswerable_share=self.cfg.unanswerable_share,
                visual_questions_per_scene=self.cfg.visual_questions_per_scene,
                fact_tails=self.cfg.fact_tails,
            )
        return {**counts, "sha256": tree_sha256(Path(self.world))}

    def step_index(self) -> dict[str, Any]:
        from indexing.manifest import read_current, read_manifest

        docs = str(Path(self.world) / "corpus" / "docs.jsonl")
        _pixsearch(
            "index",
            "index",
            "build",
            "--config",
            self.cfg.index.config,
            f"output={self.out / 'store'}",
            f"sources=[{{kind: jsonl, path: '{docs}'}}]",
            *self.cfg.index.overrides,
        )
        version = read_current(self.store, self.index)
        manifest = read_manifest(self.store, f"{self.index}/{version}")
        return {"version": version, "sha256": index_digest(manifest)}

    def step_retrieval(self) -> dict[str, Any]:
        from pipelines.demo.retrieval_check import retrieval_check, to_markdown
        from pixsearch_core.config import load_config
        from pixsearch_core.evaluation.config import EvalRunConfig
        from pixsearch_core.evaluation.driver import RunRequest, resolve
        from pixsearch_core.retrieval.backends import make_retriever

        eval_cfg = load_config(EvalRunConfig, self.cfg.eval.config, self.cfg.eval.overrides)
        eval_cfg = resolve(eval_cfg, RunRequest("synthcrag", self.world, "oracle", index=self.index))  # as eval runs
        searcher = make_retriever(
            eval_cfg.retriever.model_copy(update={"cache_dir": str(self.out / "cache")}), self.store
        )
        result = retrieval_check(searcher, self.world, k=self.cfg.retrieval_k, store=self.store)
        self.report.mkdir(parents=True, exist_ok=True)
        (self.report / "retrieval.json").write_text(json.dumps(result, indent=2))
        (self.report / "retrieval.md").write_text(
            "# Retrieval with gold masks: region vs whole image vs question text\n\n" + to_markdown(result) + "\n"
        )
        return result

    def step_train(self) -> None:
        common = [
            "--config",
            self.cfg.train.config,
            f"data.root={self.world}",
            f"output={self.train_store}",
            f"run_dir={self.out / 'train'}",
            *self._sam_cache(),
            *self.cfg.train.overrides,
        ]
        n = self.cfg.train_nproc
        engine = ["engine=torchrun", f"torchrun.nproc_per_node={n}"] if n > 1 else ["engine=sequential"]
        for stage in (1, 2):
            _pixsearch(f"train stage {stage}", "train", "--stage", str(stage), *common, *engine)

    def _sam_cache(self) -> list[str]:
        """The model override that shares the frozen SAM encoder's embeddings between jobs (`sam_embedding_cache`)."""
        return [f"model.sam_embedding_cache={self.out / 'sam-cache'}"] if self.cfg.sam_embedding_cache else []

    def step_eval(self) -> list[str]:
        from pipelines.steps import last_json

        runs = []
        for mode in self.cfg.modes:
            summary = last_json(
                _pixsearch(
                    f"eval {mode}",
                    "eval",
                    "run",
                    "--config",
                    self.cfg.eval.config,
                    "--benchmark",
                    "synthcrag",
                    "--data",
                    self.world,
                    "--model",
                    f"{self.train_store}/stage2/final",
                    "--index",
                    self.index,
                    "--mode",
                    mode,
                    "--out",
                    self.eval_out,
                    *self._sam_cache(),
                    *self.cfg.eval.overrides,
                )
            )
            runs.append(summary["run_uri"])
        (self.out / "eval" / "runs.json").write_text(json.dumps(runs, indent=2))
        return runs

    def check_restate_question(self) -> None:
        """The model and its evaluation must agree on `restate_question` (prompts.restate): a model trained with
        the question restated in every information block reads a block without it (or the reverse) as unseen text."""
        from pixsearch_core.config import load_config
        from pixsearch_core.evaluation.config import EvalRunConfig
        from pixsearch_core.training.config import TrainConfig

        trained = load_config(TrainConfig, self.cfg.train.config, self.cfg.train.overrides).data.restate_question
        decoded = load_config(EvalRunConfig, self.cfg.eval.config, self.cfg.eval.overrides).decode.restate_question
        if trained != decoded:
            raise ValueError(
                f"train data.restate_question={trained} but eval decode.restate_question={decoded}: set both to "
                f"the same value (train.overrides and eval.overrides of the demo config)"
            )

    def step_report(self) -> None:
        runs = json.loads((self.out / "eval" / "runs.json").read_text())
        _pixsearch("report", "eval", "report", *runs, "--out", str(self.report))

    # ------------------------------------------------------------------ driver
    def run(self, steps: tuple[str, ...] = STEPS) -> dict[str, Any]:
        unknown = [s for s in steps if s not in STEPS]
        if unknown:
            raise ValueError(f"unknown demo steps {unknown}; allowed: {', '.join(STEPS)}")
        if "eval" in steps:
            self.check_restate_question()
        results: dict[str, Any] = {}
        for step in STEPS:
            if step in steps:
                t0 = time.monotonic()
                results[step] = getattr(self, f"step_{step}")()
                results[f"{step}_seconds"] = round(time.monotonic() - t0, 1)
                self._save_summary(results)  # after every step: a later step's failure keeps what finished
        return results

    def _save_summary(self, results: dict[str, Any]) -> None:
        summary_path = self.out / "demo-summary.json"  # a partial re-run keeps the other steps' entries
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        summary.update(results)
        tmp = summary_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(summary, indent=2, default=str))
        tmp.replace(summary_path)
