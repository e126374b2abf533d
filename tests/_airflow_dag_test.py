"""Run one DAG end to end with dag.test() (a child process of tests/airflow_dags/test_airflow_dags.py, with its own
AIRFLOW_HOME): python tests/_airflow_dag_test.py DAG_FILE DAG_ID CONF_JSON -> prints {"state", "tasks"} last."""

from __future__ import annotations

import json
import sys


def main(dag_file: str, dag_id: str, conf: str) -> int:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=dag_file)
    if bag.import_errors:
        print(json.dumps({"import_errors": {k: str(v) for k, v in bag.import_errors.items()}}))
        return 1
    run = bag.dags[dag_id].test(run_conf=json.loads(conf))
    tasks = {}
    for ti in run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        tasks[key] = str(ti.state)
    print(json.dumps({"state": str(run.state), "tasks": tasks}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
