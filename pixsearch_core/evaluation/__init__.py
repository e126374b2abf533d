"""Benchmark evaluation runs and reports: `pixsearch eval run` / `pixsearch eval report`.

- config.py: EvalRunConfig (conf/eval/*.yaml) and the decode modes (full, no_search, ..., no_region, budget2)
- runner.py: the SampleRunner protocol and `process_batch` (error isolation, per-example scoring)
- decoding_runner.py: the real runner (model + searcher + SearchInterleavedDecoder); scripted.py: a test runner
- execute.py: sequential and Ray Data (actor pool of replicas) executors
- run.py: `run_eval` (records, resume, run.json); report.py + plots.py: tables and figures from run records;
  abstention.py and breakdown.py (by question type, target document found): the report's per-question sections
- segmentation.py (driver) + segmentation_runner.py (replica) + seg_report.py: the mask benchmarks (Tables 2-3)
"""
