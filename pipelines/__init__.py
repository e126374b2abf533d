"""Multi-job orchestration above the library: the `make demo` pipeline (`pipelines.demo`) and the steps the
Airflow DAGs call (`pipelines.steps`). Both start `pixsearch` child processes; the library never imports this."""
