"""The end-to-end demo behind `make demo`: SynthCRAG world -> Spark index -> DeepSpeed training -> Ray eval ->
report, on the embedded defaults. See pipeline.py."""
