"""pixsearch: pixel-grounded retrieval for knowledgeable large multimodal models, at cluster scale.

The library. Importable without pyspark, ray, deepspeed or airflow: engine imports live inside the functions
that use them (tests/test_imports.py enforces it).
"""

__version__ = "0.1.0"
