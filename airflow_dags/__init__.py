"""Airflow DAGs for pixsearch: index_rebuild, benchmark_matrix, training_pipeline (see README "Airflow DAGs")."""
