"""Stage-2 training-data construction (paper §4.3, Figure 3): `pixsearch data build-stage2`.

- sources.py: training splits in their published layouts -> `Item`s
- llm.py: chat-completions client (concurrency, retries, cache in the object store, token/cost accounting)
- backends.py: the LLM backend (prompt files, strict parsing) and the rule-based SynthCRAG stand-in
- steps.py: one item through select -> decompose -> generate -> refine -> assign -> search -> verify
- build.py: parts, resume, Ray, quarantine, funnel, manifest
"""
