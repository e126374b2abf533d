"""Official-equivalent metrics, one module per family (what each reproduces: docs/metrics.md, section numbers below).

| module | what | source |
|---|---|---|
| `squad` | SQuAD `normalize_answer`, EM, F1 (v1.1 and the v2.0 empty rule) (§0) | SQuAD `evaluate-v1.1.py` |
| `relaxed` | relaxed EM / F1 of kim-ji-2024-finer (§1) | Finer `llava/eval/eval_fgvc.py` |
| `textqa` | HotpotQA F1 (yes/no rule), PopQA accuracy, MuSiQue F1 (§4) | the datasets' official scripts |
| `infoseek` | InfoSeek string / time / numerical scoring, harmonic mean (§5) | `infoseek_eval.py` |
| `oven` | OVEN per-split accuracy and harmonic means (§6) | `oven_eval.py` |
| `textvqa` | EvalAI answer processing and TextVQA soft accuracy (§7) | mmf `m4c_evaluator.py` |
| `crag` | CRAG-MM missing / exact match / truthfulness (§2.2) | CRAG-MM `evaluation/` |
| `judge` | the CRAG-MM LLM judge over an OpenAI-compatible API, with a verdict cache (§2.3) | CRAG-MM `llm_judge.py` |
| `segmentation` | gIoU / cIoU as LISA computes them, mIoU (mmseg / all-classes), aAcc (§8, §9) | LISA, mmseg |

Every scorer is a plain function over strings or arrays; the benchmark modules (`pixsearch_core.benchmarks`)
apply them per example and aggregate. Metrics are registered (kind "metric") under the names in each module.
"""
