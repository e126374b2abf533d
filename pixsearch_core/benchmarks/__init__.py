"""Benchmark readers and scorers, one module per benchmark, registered by name (kind "benchmark").

    from pixsearch_core.registry import get
    bench = get("benchmark", "hotpotqa")()              # an instance
    examples = list(bench.load("/data/hotpot", "dev_distractor"))
    scores = [bench.score(ex, pred) for ex, pred in ...]
    bench.aggregate(scores)                            # {"em": ..., "f1": ..., "relaxed_em": ..., ...}

`evaluate.score_predictions` pairs a predictions file with the gold data and applies each benchmark's rule for
missing predictions; `pixsearch eval score` is its command line.
"""
