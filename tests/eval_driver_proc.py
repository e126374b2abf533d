"""`pixsearch eval run` in a child process for the concurrency and kill tests, with one substitution: `--model
oracle` answers through a ScriptedRunner that takes `PIXSEARCH_TEST_DELAY_S` seconds per sample (standing in
for model time, so that two drivers really overlap). Everything else (argument parsing, config, lease, records,
exit codes) is the real command.

    python -m tests.eval_driver_proc eval run --model oracle ... (the `pixsearch` arguments)
"""

from __future__ import annotations

import os
import sys

from jobs.cli import main
from pixsearch_core.evaluation import driver
from pixsearch_core.evaluation.sample_runner import RunnerSpec

_real = driver.runner_spec


def _slow_oracle(req, cfg, retriever=None):
    if req.model != driver.ORACLE:
        return _real(req, cfg, retriever)
    return RunnerSpec(
        "pixsearch_core.evaluation.scripted_runner:ScriptedRunner",
        {"delay_s": float(os.environ.get("PIXSEARCH_TEST_DELAY_S", "0"))},
    )


if __name__ == "__main__":
    driver.runner_spec = _slow_oracle
    sys.exit(main(sys.argv[1:]))
